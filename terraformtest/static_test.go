package terraformtest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Static checks

// checkReferences reports var.X and local.X references to undeclared names
// and variables that nothing outside their own block uses.
func checkReferences(m *module) []string {
	vars := m.variables()
	locals := map[string]bool{}
	for _, b := range m.top("locals") {
		for name := range b.Body.Attributes {
			locals[name] = true
		}
	}
	used := map[string]bool{}
	var problems []string
	for _, b := range m.blocks {
		walkAttrs(b.Body, []string{b.Type}, func(_ []string, a *hclsyntax.Attribute) {
			for _, tr := range a.Expr.Variables() {
				root := tr.RootName()
				if root != "var" && root != "local" {
					continue
				}
				rng := tr.SourceRange()
				var name string
				if len(tr) > 1 {
					if step, isAttr := tr[1].(hcl.TraverseAttr); isAttr {
						name = step.Name
					}
				}
				if name == "" {
					problems = append(problems, fmt.Sprintf("%s: %s reference without a plain name", rng, root))
					continue
				}
				switch {
				case root == "var" && vars[name] == nil:
					problems = append(problems, fmt.Sprintf("%s: var.%s is not declared in module %s", rng, name, m.name))
				case root == "local" && !locals[name]:
					problems = append(problems, fmt.Sprintf("%s: local.%s is not declared in module %s", rng, name, m.name))
				}
				if root == "var" && !(b.Type == "variable" && len(b.Labels) == 1 && b.Labels[0] == name) {
					used[name] = true
				}
			}
		})
	}
	for _, name := range sortedKeys(vars) {
		if !used[name] {
			problems = append(problems, fmt.Sprintf("%s: variable %q is declared but never used", vars[name].DefRange(), name))
		}
	}
	return problems
}

var (
	// Attribute names whose value is a credential.
	credentialAttr = regexp.MustCompile(`(?i)^(token|password|passwd|secret|api_?key|api_?secret|secret_?id|client_secret|private_key|access_key|secret_key|(cloud|kafka)_api_(key|secret)|.*_(token|password|secret))$`)
	// Credential-looking strings anywhere in the text.
	credentialText = []*regexp.Regexp{
		regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`),      // Vault token
		regexp.MustCompile(`\bs\.[A-Za-z0-9]{24}\b`),             // legacy Vault token
		regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`),        // AWS access key
		regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`), // PEM private key
	}
)

// findCredentials reports literal strings assigned to credential
// attributes (token = "...", credentials { key = "..." }), literal defaults
// of credential-named variables, and credential-looking text.
func findCredentials(m *module) []string {
	var problems []string
	for _, b := range m.blocks {
		credVar := b.Type == "variable" && len(b.Labels) == 1 && credentialAttr.MatchString(b.Labels[0])
		walkAttrs(b.Body, []string{b.Type}, func(path []string, a *hclsyntax.Attribute) {
			inCredentials := path[len(path)-1] == "credentials"
			isCred := credentialAttr.MatchString(a.Name) ||
				(inCredentials && (a.Name == "key" || a.Name == "secret")) ||
				(credVar && a.Name == "default" && len(path) == 1)
			if !isCred {
				return
			}
			if s, lit := literalString(a.Expr); lit && s != "" {
				problems = append(problems, fmt.Sprintf("%s: %s is assigned a literal string", a.SrcRange, a.Name))
			}
		})
	}
	for _, fn := range sortedKeys(m.src) {
		for _, re := range credentialText {
			if loc := re.FindIndex(m.src[fn]); loc != nil {
				line := 1 + strings.Count(string(m.src[fn][:loc[0]]), "\n")
				problems = append(problems, fmt.Sprintf("%s:%d: credential-looking text matching %s", fn, line, re))
			}
		}
	}
	return problems
}

func literalString(e hclsyntax.Expression) (string, bool) {
	switch x := e.(type) {
	case *hclsyntax.TemplateExpr:
		if x.IsStringLiteral() {
			v, diags := x.Value(nil)
			if !diags.HasErrors() && v.Type() == cty.String && !v.IsNull() {
				return v.AsString(), true
			}
		}
	case *hclsyntax.LiteralValueExpr:
		if x.Val.Type() == cty.String && !x.Val.IsNull() {
			return x.Val.AsString(), true
		}
	}
	return "", false
}
