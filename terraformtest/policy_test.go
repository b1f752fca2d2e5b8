package terraformtest

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Vault policies

type policyRule struct {
	path string
	caps []string
}

// parsePolicy parses a Vault policy (HCL: path "<path>" { capabilities =
// [...] } blocks) into its rules, in order.
func parsePolicy(name, text string) ([]policyRule, error) {
	f, diags := hclsyntax.ParseConfig([]byte(text), name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("policy %s: %s", name, diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	if len(body.Attributes) > 0 {
		return nil, fmt.Errorf("policy %s: attributes outside a path block", name)
	}
	var rules []policyRule
	for _, b := range body.Blocks {
		if b.Type != "path" || len(b.Labels) != 1 {
			return nil, fmt.Errorf("%s: block %s %q, want path \"<path>\"", b.DefRange(), b.Type, b.Labels)
		}
		a, ok := b.Body.Attributes["capabilities"]
		if !ok || len(b.Body.Attributes) != 1 || len(b.Body.Blocks) != 0 {
			return nil, fmt.Errorf("%s: path %q needs capabilities and nothing else", b.DefRange(), b.Labels[0])
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s", a.SrcRange, diags.Error())
		}
		rules = append(rules, policyRule{path: b.Labels[0], caps: strs(v)})
	}
	return rules, nil
}

// terraformPolicy is a vault_policy of the module, evaluated.
type terraformPolicy struct {
	text  string
	rules []policyRule
}

// vaultPolicies maps each vault_policy name to its text and rules.
func (e *evaluator) vaultPolicies() (map[string]terraformPolicy, error) {
	out := map[string]terraformPolicy{}
	for inst, attrs := range e.instances("vault_policy") {
		name, text := str(attrs["name"]), str(attrs["policy"])
		if name == "" || text == "" {
			return nil, fmt.Errorf("vault_policy.%s: name or policy is not known from the defaults", inst)
		}
		rules, err := parsePolicy(name, text)
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("vault_policy.%s: policy %s is declared twice", inst, name)
		}
		out[name] = terraformPolicy{text: text, rules: rules}
	}
	return out, nil
}

// vaultMatch reports whether policy path pattern covers request path p
// ("+" is one path segment, a trailing "*" any suffix).
func vaultMatch(pattern, p string) bool {
	glob := strings.HasSuffix(pattern, "*")
	var re strings.Builder
	re.WriteString("^")
	for i, seg := range strings.Split(strings.TrimSuffix(pattern, "*"), "/") {
		if i > 0 {
			re.WriteString("/")
		}
		if seg == "+" {
			re.WriteString("[^/]+")
		} else {
			re.WriteString(regexp.QuoteMeta(seg))
		}
	}
	if glob {
		re.WriteString(".*")
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(p)
}

// capsFor is the union of the capabilities of every rule matching p.
func capsFor(rules []policyRule, p string) []string {
	var out []string
	for _, r := range rules {
		if vaultMatch(r.path, p) {
			for _, c := range r.caps {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
