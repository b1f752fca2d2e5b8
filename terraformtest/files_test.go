package terraformtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Tests: Terraform files

func TestTerraformFilesParse(t *testing.T) {
	mods := loadModules(t)
	for _, name := range []string{"confluent", "vault"} {
		for _, fn := range []string{"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} {
			if _, err := os.Stat(filepath.Join(terraformDir, name, fn)); err != nil {
				t.Errorf("terraform/%s: %v", name, err)
			}
		}
	}
	for _, name := range sortedKeys(mods) {
		t.Logf("module %s: %d files, %d top-level blocks", name, len(mods[name].src), len(mods[name].blocks))
	}
}

func TestVariableReferencesAreDeclared(t *testing.T) { reportEach(t, checkReferences) }

// reportEach runs check on every module, in name order, and reports each
// problem it finds as an error of t.
func reportEach(t *testing.T, check func(*module) []string) {
	t.Helper()
	mods := loadModules(t)
	for _, name := range sortedKeys(mods) {
		for _, p := range check(mods[name]) {
			t.Error(p)
		}
	}
}

func TestVariablesAreDocumented(t *testing.T) {
	mods := loadModules(t)
	for _, name := range sortedKeys(mods) {
		for vn, b := range mods[name].variables() {
			d, ok := b.Body.Attributes["description"]
			if s, lit := literalString(exprOf(d, ok)); !lit || len(strings.TrimSpace(s)) < 10 {
				t.Errorf("%s: variable %q has no real description", b.DefRange(), vn)
			}
			if _, ok := b.Body.Attributes["type"]; !ok {
				t.Errorf("%s: variable %q has no type", b.DefRange(), vn)
			}
		}
	}
}

func exprOf(a *hclsyntax.Attribute, ok bool) hclsyntax.Expression {
	if !ok {
		return &hclsyntax.LiteralValueExpr{Val: cty.NullVal(cty.String)}
	}
	return a.Expr
}

func TestNoCredentialsInTerraform(t *testing.T) { reportEach(t, findCredentials) }

func TestProviders(t *testing.T) {
	mods := loadModules(t)
	want := map[string]struct{ provider, source, version string }{
		"confluent": {"confluent", "confluentinc/confluent", "~> 2.28"},
		"vault":     {"vault", "hashicorp/vault", "~> 4.8"},
	}
	for mod, w := range want {
		m := mods[mod]
		var found bool
		for _, tb := range m.top("terraform") {
			for _, rp := range tb.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				a, ok := rp.Body.Attributes[w.provider]
				if !ok {
					continue
				}
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() {
					t.Fatalf("%s: %s", a.SrcRange, diags.Error())
				}
				found = true
				if got := str(v.GetAttr("source")); got != w.source {
					t.Errorf("%s: source %q, want %q", a.SrcRange, got, w.source)
				}
				if got := str(v.GetAttr("version")); got != w.version {
					t.Errorf("%s: version %q, want %q", a.SrcRange, got, w.version)
				}
			}
		}
		if !found {
			t.Errorf("terraform/%s: no required_providers entry for %s", mod, w.provider)
		}
		// Credentials and the address come from the environment; TLS
		// verification stays on.
		for _, pb := range m.top("provider") {
			for name := range pb.Body.Attributes {
				switch name {
				case "namespace", "alias":
				default:
					t.Errorf("%s: provider %s sets %s; it must come from the environment (or not be set at all)", pb.Body.Attributes[name].SrcRange, pb.Labels[0], name)
				}
			}
		}
		for _, b := range m.blocks {
			walkAttrs(b.Body, []string{b.Type}, func(_ []string, a *hclsyntax.Attribute) {
				if a.Name == "skip_tls_verify" || a.Name == "insecure" {
					t.Errorf("%s: %s must not be set", a.SrcRange, a.Name)
				}
			})
		}
	}
}
