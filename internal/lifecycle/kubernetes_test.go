package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const k8sConfig = `
[policy:orders]
fields = Name transit

[policy:docs]
mode = envelope

[kubernetes]
namespace = kafkagate, batch
service_account = gw-{topic}-{role}
mount = k8s
`

// TestProvisionKubernetesRoles: with a [kubernetes] section, provision
// creates one Kubernetes auth role per Vault policy (token policy of the
// same name, bound to its service account and the namespaces) on a real
// Vault with the auth method enabled and configured with a dummy cluster;
// a second run leaves everything ok; a role edited by hand is drift, left
// alone.
func TestProvisionKubernetesRoles(t *testing.T) {
	env := testkit.Start(t)
	ctx := context.Background()
	cfg := testkit.Config(t, k8sConfig)
	k8s, err := lifecycle.KubernetesFromConfig(cfg)
	if err != nil || k8s == nil {
		t.Fatalf("KubernetesFromConfig: %+v %v", k8s, err)
	}
	if err := env.VC.API().Sys().EnableAuthWithOptionsWithContext(ctx, "k8s", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.VC.Write(ctx, "auth/k8s/config", map[string]any{"kubernetes_host": "https://127.0.0.1:6443", "disable_local_ca_jwt": true}); err != nil {
		t.Fatal(err)
	}
	o := lifecycle.ProvisionOptions{Policies: cfg.Policies, Kubernetes: k8s}
	first, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, a := range first.Actions {
		if a.Kind == lifecycle.KindK8sAuth && a.Status != lifecycle.StatusOK {
			t.Fatalf("auth method: %+v", a)
		}
		if a.Kind == lifecycle.KindK8sRole {
			if a.Status != lifecycle.StatusCreated {
				t.Fatalf("first run: %+v", a)
			}
			roles = append(roles, a.Name)
		}
	}
	if len(roles) != 6 {
		t.Fatalf("%d kubernetes roles created: %v", len(roles), roles)
	}
	for _, tp := range []string{"orders", "docs"} {
		for _, role := range []string{lifecycle.RoleProducer, lifecycle.RoleConsumer, lifecycle.RoleAdmin} {
			name := lifecycle.RoleName(tp, role)
			d, err := env.VC.Read(ctx, "auth/k8s/role/"+name)
			if err != nil {
				t.Fatalf("role %s: %v", name, err)
			}
			sas, nss := fmt.Sprint(d["bound_service_account_names"]), fmt.Sprint(d["bound_service_account_namespaces"])
			if fmt.Sprint(d["token_policies"]) != "["+name+"]" || sas != "[gw-"+tp+"-"+role+"]" || nss != "[kafkagate batch]" ||
				fmt.Sprint(d["token_ttl"]) != "3600" || fmt.Sprint(d["token_max_ttl"]) != "86400" {
				t.Fatalf("role %s: %v", name, d)
			}
			// The policy it names exists.
			if pol, err := env.VC.API().Sys().GetPolicyWithContext(ctx, name); err != nil || !strings.Contains(pol, "transit/") {
				t.Fatalf("policy %s: %q %v", name, pol, err)
			}
		}
	}
	second, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Count(lifecycle.StatusOK) != len(second.Actions) || len(second.Actions) != len(first.Actions) {
		t.Fatalf("second run: %+v", second.Actions)
	}

	name := lifecycle.RoleName("orders", lifecycle.RoleConsumer)
	if _, err := env.VC.Write(ctx, "auth/k8s/role/"+name, map[string]any{"bound_service_account_names": []string{"intruder"}, "token_max_ttl": 7200}); err != nil {
		t.Fatal(err)
	}
	third, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	drift := drifted(third)
	want := "kubernetes_role " + name + ": token_max_ttl 7200, want 86400; bound_service_account_names [intruder], want [gw-orders-consumer]"
	if !slices.Equal(drift, []string{want}) {
		t.Fatalf("third run drift %q, want %q", drift, want)
	}
	if d, err := env.VC.Read(ctx, "auth/k8s/role/"+name); err != nil || fmt.Sprint(d["bound_service_account_names"]) != "[intruder]" {
		t.Fatalf("provision changed a drifted role: %v %v", d, err)
	}
	t.Logf("6 kubernetes roles created, second run %d/%d ok, drift: %q", second.Count(lifecycle.StatusOK), len(second.Actions), drift)

	// Without a namespace the section is refused.
	bad, _ := config.Parse([]byte("[kubernetes]\nmount = k8s\n"))
	if _, err := lifecycle.KubernetesFromConfig(bad); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("no namespace: %v", err)
	}
}
