package terraformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// provisioned is what lifecycle.Provision created in a real Vault, read
// back from it.
type provisioned struct {
	transitMount string
	approleMount string
	keys         map[string]bool   // transit key -> derived
	policies     map[string]string // policy name -> text as stored
	roles        map[string]roleSettings
}

type roleSettings struct {
	policies         []string
	ttl, maxTTL      int64
	tokenType        string
	fromTerraformRes string // for messages: the resource instance
}

// provisionDefaultConfig runs lifecycle.Provision (AppRole roles
// included, no Kafka) for the embedded default configuration against a
// fresh Vault dev server and reads back what it created.
func provisionDefaultConfig(t *testing.T) provisioned {
	t.Helper()
	cfg, err := config.Parse(kafkagate.DefaultConfig)
	if err != nil {
		t.Fatalf("embedded default configuration: %v", err)
	}
	vc, err := testkit.StartVault(t).Client()
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := lifecycle.ProvisionOptions{
		Policies:       cfg.Policies,
		TransitMount:   cfg.Get("kafkagate", "transit_mount", "transit"),
		FPE:            core.KeyringOptions(cfg),
		CredentialsDir: filepath.Join(t.TempDir(), "credentials"),
	}
	rep, err := lifecycle.Provision(ctx, vc, o)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	if n := rep.Count(lifecycle.StatusDrift); n != 0 {
		t.Fatalf("provision into a fresh Vault reported %d drifted items", n)
	}
	p := provisioned{keys: map[string]bool{}, policies: map[string]string{}, roles: map[string]roleSettings{}}
	tc := transit.New(vc, transit.Options{Mount: o.TransitMount})
	for _, a := range rep.Actions {
		switch a.Kind {
		case lifecycle.KindMount:
			p.transitMount = a.Name
		case lifecycle.KindAuth:
			p.approleMount = a.Name
		case lifecycle.KindKey, lifecycle.KindFPEKEK:
			ki, err := tc.ReadKey(ctx, a.Name)
			if err != nil {
				t.Fatalf("read key %s: %v", a.Name, err)
			}
			p.keys[a.Name] = ki.Derived
		case lifecycle.KindPolicy:
			text, err := vc.API().Sys().GetPolicyWithContext(ctx, a.Name)
			if err != nil || text == "" {
				t.Fatalf("read policy %s: %q %v", a.Name, text, err)
			}
			p.policies[a.Name] = text
		case lifecycle.KindRole:
			d, err := vc.Read(ctx, "auth/"+p.approleMount+"/role/"+a.Name)
			if err != nil {
				t.Fatalf("read role %s: %v", a.Name, err)
			}
			var rs roleSettings
			if ps, ok := d["token_policies"].([]any); ok {
				for _, v := range ps {
					rs.policies = append(rs.policies, fmt.Sprint(v))
				}
			}
			rs.ttl, rs.maxTTL, rs.tokenType = jsonInt(d["token_ttl"]), jsonInt(d["token_max_ttl"]), fmt.Sprint(d["token_type"])
			p.roles[a.Name] = rs
		}
	}
	if len(p.policies) == 0 || len(p.roles) != len(p.policies) || len(p.keys) == 0 {
		t.Fatalf("provision created %d policies, %d roles, %d keys", len(p.policies), len(p.roles), len(p.keys))
	}
	return p
}

func jsonInt(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case float64:
		return int64(x)
	}
	return -1
}

// pathCaps is path -> sorted capabilities (the union where a path occurs
// twice, as Vault merges them).
func pathCaps(rules []policyRule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		for _, c := range r.caps {
			if !slices.Contains(out[r.path], c) {
				out[r.path] = append(out[r.path], c)
			}
		}
	}
	for _, cs := range out {
		slices.Sort(cs)
	}
	return out
}

// provisionMismatches compares terraform/vault, evaluated with its
// defaults, with what gateway provision created: policy names, each
// policy's paths and capabilities and its text (provision reports a
// different text as drift), AppRole role names and settings, transit keys
// and mounts.
func provisionMismatches(want provisioned, ev *evaluator) []string {
	var problems []string
	pols, err := ev.vaultPolicies()
	if err != nil {
		return []string{err.Error()}
	}
	for _, name := range sortedKeys(want.policies) {
		tp, ok := pols[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("policy %s: created by gateway provision, not declared by terraform/vault", name))
			continue
		}
		wr, err := parsePolicy(name, want.policies[name])
		if err != nil {
			problems = append(problems, "gateway provision's "+err.Error())
			continue
		}
		w, g := pathCaps(wr), pathCaps(tp.rules)
		for _, p := range sortedKeys(w) {
			if !slices.Equal(w[p], g[p]) {
				problems = append(problems, fmt.Sprintf("policy %s: path %q has capabilities %q in terraform/vault, %q from gateway provision", name, p, g[p], w[p]))
			}
		}
		for _, p := range sortedKeys(g) {
			if _, ok := w[p]; !ok {
				problems = append(problems, fmt.Sprintf("policy %s: path %q with %q in terraform/vault only", name, p, g[p]))
			}
		}
		if strings.TrimSpace(tp.text) != strings.TrimSpace(want.policies[name]) {
			problems = append(problems, fmt.Sprintf("policy %s: text differs from gateway provision's, which would report it as drift:\n--- terraform/vault\n%s--- gateway provision\n%s", name, tp.text, want.policies[name]))
		}
	}
	for _, name := range sortedKeys(pols) {
		if _, ok := want.policies[name]; !ok {
			problems = append(problems, fmt.Sprintf("policy %s: declared by terraform/vault, not created by gateway provision", name))
		}
	}

	roles := map[string]roleSettings{}
	for inst, a := range ev.instances("vault_approle_auth_backend_role") {
		var ttl, maxTTL int64 = -1, -1
		if v := a["token_ttl"]; v != cty.NilVal && v.Type() == cty.Number {
			ttl, _ = v.AsBigFloat().Int64()
		}
		if v := a["token_max_ttl"]; v != cty.NilVal && v.Type() == cty.Number {
			maxTTL, _ = v.AsBigFloat().Int64()
		}
		tokenType := str(a["token_type"])
		if tokenType == "" {
			tokenType = "default"
		}
		roles[str(a["role_name"])] = roleSettings{policies: strs(a["token_policies"]), ttl: ttl, maxTTL: maxTTL, tokenType: tokenType, fromTerraformRes: "vault_approle_auth_backend_role." + inst}
		if b := str(a["backend"]); b != want.approleMount {
			problems = append(problems, fmt.Sprintf("vault_approle_auth_backend_role.%s: backend %q, gateway provision uses %q", inst, b, want.approleMount))
		}
	}
	for _, name := range sortedKeys(want.roles) {
		w, g := want.roles[name], roles[name]
		if _, ok := roles[name]; !ok {
			problems = append(problems, fmt.Sprintf("AppRole role %s: created by gateway provision, not declared by terraform/vault", name))
			continue
		}
		if !slices.Equal(w.policies, g.policies) || w.ttl != g.ttl || w.maxTTL != g.maxTTL || w.tokenType != g.tokenType {
			problems = append(problems, fmt.Sprintf("AppRole role %s: %s has token_policies %q ttl %d max_ttl %d type %s; gateway provision: %q %d %d %s",
				name, g.fromTerraformRes, g.policies, g.ttl, g.maxTTL, g.tokenType, w.policies, w.ttl, w.maxTTL, w.tokenType))
		}
	}
	for _, name := range sortedKeys(roles) {
		if _, ok := want.roles[name]; !ok {
			problems = append(problems, fmt.Sprintf("AppRole role %s: declared by terraform/vault, not created by gateway provision", name))
		}
	}

	keys := map[string]bool{}
	for _, a := range ev.instances("vault_transit_secret_backend_key") {
		keys[str(a["name"])] = isTrue(a["derived"])
	}
	for _, name := range sortedKeys(want.keys) {
		if d, ok := keys[name]; !ok || d != want.keys[name] {
			problems = append(problems, fmt.Sprintf("transit key %s: gateway provision creates it with derived=%v; terraform/vault: declared %v, derived=%v", name, want.keys[name], ok, d))
		}
	}
	legacy := str(ev.variableDefault("legacy_transit_key_name"))
	for _, name := range sortedKeys(keys) {
		if _, ok := want.keys[name]; !ok && name != legacy {
			problems = append(problems, fmt.Sprintf("transit key %s: declared by terraform/vault, not used by any policy", name))
		}
	}
	for _, c := range []struct{ resource, typ, want string }{
		{"vault_mount", "transit", want.transitMount},
		{"vault_auth_backend", "approle", want.approleMount},
	} {
		var paths []string
		for _, a := range ev.instances(c.resource) {
			if str(a["type"]) == c.typ {
				paths = append(paths, str(a["path"]))
			}
		}
		if !slices.Equal(paths, []string{c.want}) {
			problems = append(problems, fmt.Sprintf("%s mounts %q, gateway provision uses %q", c.typ, paths, c.want))
		}
	}
	return problems
}

// mutated is module m with old replaced by repl in its file named file.
func mutated(t *testing.T, m *module, file, old, repl string) *evaluator {
	t.Helper()
	files := map[string][]byte{}
	found := false
	for fn, b := range m.src {
		if filepath.Base(fn) == file {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("%s: %q not found", fn, old)
			}
			b, found = bytes.Replace(b, []byte(old), []byte(repl), 1), true
		}
		files[fn] = b
	}
	if !found {
		t.Fatalf("module %s has no %s", m.name, file)
	}
	mm, diags := parseModule(m.name, files)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	ev, err := newEvaluator(mm)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestVaultMatchesProvision: terraform/vault declares exactly the
// policies (names, paths, capabilities, text), AppRole roles (names,
// policies, TTLs, token type), transit keys (derived or not) and mounts
// that `gateway provision` creates in a real Vault for the embedded
// default configuration (getting_started.ini.orig); and the comparison
// reports a changed capability, name, text or role binding.
func TestVaultMatchesProvision(t *testing.T) {
	want := provisionDefaultConfig(t)
	m := loadModules(t)["vault"]
	ev, err := newEvaluator(m)
	if err != nil {
		t.Fatal(err)
	}
	problems := provisionMismatches(want, ev)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) == 0 {
		paths := 0
		for _, text := range want.policies {
			r, _ := parsePolicy("", text)
			paths += len(r)
		}
		t.Logf("agree: %d policies (%d path rules), %d AppRole roles, %d transit keys %v, mounts %s and %s",
			len(want.policies), paths, len(want.roles), len(want.keys), sortedKeys(want.keys), want.transitMount, want.approleMount)
	}

	for _, c := range []struct {
		name, file, old, repl, report string
	}{
		{"capability added", "policies.tf",
			`{ path = "${var.transit_mount}/keys/${k}/rotate", capabilities = ["update"] },`,
			`{ path = "${var.transit_mount}/keys/${k}/rotate", capabilities = ["update", "sudo"] },`,
			`policy kafkagate-purchases-admin: path "transit/keys/kafka-purchases/rotate" has capabilities ["sudo" "update"] in terraform/vault, ["update"] from gateway provision`},
		{"path dropped", "policies.tf",
			`{ path = "${local.fpe_kv_metadata}/${d}", capabilities = ["read"] },`, ``,
			`policy kafkagate-purchases_encrypted-admin: path "secret/metadata/kafkagate/fpe/payments.card_number" has capabilities [] in terraform/vault, ["read"] from gateway provision`},
		{"policy names", "policies.tf", `"kafkagate-${topic}-${role}"`, `"kafkagate-${role}-${topic}"`,
			"policy kafkagate-purchases-producer: created by gateway provision, not declared by terraform/vault"},
		{"text only", "policies.tf", `(generated by gateway provision)`, `(generated by terraform)`,
			"policy kafkagate-purchases-consumer: text differs"},
		{"role bound to another policy", "main.tf", `token_policies        = [vault_policy.topic[each.key].name]`, `token_policies        = [vault_policy.topic[each.key].name, "default"]`,
			`AppRole role kafkagate-purchases-admin: vault_approle_auth_backend_role.topic[kafkagate-purchases-admin] has token_policies ["kafkagate-purchases-admin" "default"]`},
		{"envelope KEK not derived", "main.tf", "  derived            = true\n", "", "transit key kafkagate-envelope: gateway provision creates it with derived=true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(provisionMismatches(want, mutated(t, m, c.file, c.old, c.repl)), "\n")
			if !strings.Contains(got, c.report) {
				t.Errorf("after replacing %q with %q in %s, the comparison does not report %q; it reports:\n%s", c.old, c.repl, c.file, c.report, got)
			}
		})
	}
}

// TestPolicyLocalsMatchTerraform evaluates policies.tf (only locals, no
// provider) with Terraform itself and compares the result with this
// package's evaluator, on which the other tests rely.
func TestPolicyLocalsMatchTerraform(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed: policies.tf is checked with this package's evaluator only")
	}
	m := loadModules(t)["vault"]
	dir := t.TempDir()
	for fn, b := range m.src {
		if base := filepath.Base(fn); base == "variables.tf" || base == "policies.tf" {
			if err := os.WriteFile(filepath.Join(dir, base), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tf, "-chdir="+dir, "console")
	cmd.Stdin = strings.NewReader("jsonencode({ policy_hcl = local.policy_hcl, fields_keys = local.fields_keys, envelope_keys = local.envelope_keys })\n")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_CLI_CONFIG_FILE="+filepath.Join(dir, "none.tfrc"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("terraform console: %v\n%s", err, stderr.String())
	}
	// The console prints the JSON text as an HCL string literal.
	expr, diags := hclsyntax.ParseExpression(bytes.TrimSpace(out), "console", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("terraform console output %q: %s", out, diags.Error())
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String {
		t.Fatalf("terraform console output %q is not a string: %s", out, diags.Error())
	}
	var byTerraform struct {
		PolicyHCL    map[string]string `json:"policy_hcl"`
		FieldsKeys   []string          `json:"fields_keys"`
		EnvelopeKeys []string          `json:"envelope_keys"`
	}
	if err := json.Unmarshal([]byte(v.AsString()), &byTerraform); err != nil {
		t.Fatalf("terraform console output: %v", err)
	}

	ev, err := newEvaluator(m)
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]string{}
	for name, pv := range ev.locals["policy_hcl"].AsValueMap() {
		mine[name] = pv.AsString()
	}
	if len(mine) != 9 || len(byTerraform.PolicyHCL) != len(mine) {
		t.Fatalf("policy_hcl: %d policies by Terraform, %d by the evaluator", len(byTerraform.PolicyHCL), len(mine))
	}
	for name, text := range byTerraform.PolicyHCL {
		if mine[name] != text {
			t.Errorf("policy %s: Terraform renders\n%s\nthe evaluator\n%s", name, text, mine[name])
		}
	}
	for local, got := range map[string][]string{"fields_keys": byTerraform.FieldsKeys, "envelope_keys": byTerraform.EnvelopeKeys} {
		if evd := strs(ev.locals[local]); !slices.Equal(got, evd) || len(got) == 0 {
			t.Errorf("local.%s: Terraform %q, the evaluator %q", local, got, evd)
		}
	}
	t.Logf("Terraform and the evaluator agree on %d policy texts, fields keys %q, envelope keys %q", len(mine), byTerraform.FieldsKeys, byTerraform.EnvelopeKeys)
}
