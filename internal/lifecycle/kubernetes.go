package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Provisioned item kinds of Kubernetes authentication.
const (
	KindK8sAuth = "kubernetes_auth"
	KindK8sRole = "kubernetes_role"
)

// KubernetesRoles asks provision for a Kubernetes auth role per Vault
// policy: role kafkagate-<topic>-<role> (what a gateway names in
// VAULT_K8S_ROLE, with VAULT_K8S_MOUNT = Mount), token policy of the same
// name, bound to one service account in Namespaces.
type KubernetesRoles struct {
	// Mount is the Kubernetes auth mount; default "kubernetes". Provision
	// enables it when missing; its config (auth/<mount>/config:
	// kubernetes_host, CA) is the operator's, as it depends on the cluster.
	Mount string
	// Namespaces the service accounts live in (at least one).
	Namespaces []string
	// ServiceAccount names the bound service account; {topic} and {role}
	// are replaced. Default "kafkagate-{topic}-{role}".
	ServiceAccount string
}

// KubernetesFromConfig reads the [kubernetes] section of a configuration:
//
//	[kubernetes]
//	namespace       = kafkagate            ; comma-separated; required
//	service_account = kafkagate-{topic}-{role}
//	mount           = kubernetes
//
// It returns nil, nil when the section is absent.
func KubernetesFromConfig(cfg *config.File) (*KubernetesRoles, error) {
	if !cfg.Has("kubernetes") {
		return nil, nil
	}
	k := &KubernetesRoles{
		Mount:          cfg.Get("kubernetes", "mount", "kubernetes"),
		ServiceAccount: cfg.Get("kubernetes", "service_account", "kafkagate-{topic}-{role}"),
	}
	for _, ns := range strings.Split(cfg.Get("kubernetes", "namespace", ""), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			k.Namespaces = append(k.Namespaces, ns)
		}
	}
	if len(k.Namespaces) == 0 {
		return nil, fmt.Errorf("[kubernetes] namespace: name the namespace(s) of the gateways' service accounts")
	}
	return k, nil
}

func (k *KubernetesRoles) defaults() {
	orDefault(&k.Mount, "kubernetes")
	orDefault(&k.ServiceAccount, "kafkagate-{topic}-{role}")
}

// serviceAccount is the service account bound to topic's role.
func (k *KubernetesRoles) serviceAccount(topic, role string) string {
	return strings.NewReplacer("{topic}", topic, "{role}", role).Replace(k.ServiceAccount)
}

// k8sRole creates the Kubernetes auth role name for topic's role, or
// compares the existing one (bound service account and namespaces, token
// settings) and reports drift.
func (p *provisioner) k8sRole(ctx context.Context, topic, role, name string) error {
	k := p.o.Kubernetes
	base := "auth/" + k.Mount + "/role/" + name
	sa := k.serviceAccount(topic, role)
	d, err := p.vc.Read(ctx, base)
	switch {
	case err == nil:
		diffs := p.tokenDrift(name, d)
		if got := sortedStrings(d["bound_service_account_names"]); !slices.Equal(got, []string{sa}) {
			diffs = append(diffs, fmt.Sprintf("bound_service_account_names %v, want [%s]", got, sa))
		}
		if got, want := sortedStrings(d["bound_service_account_namespaces"]), slices.Sorted(slices.Values(k.Namespaces)); !slices.Equal(got, want) {
			diffs = append(diffs, fmt.Sprintf("bound_service_account_namespaces %v, want %v", got, want))
		}
		if len(diffs) > 0 {
			p.add(KindK8sRole, name, StatusDrift, strings.Join(diffs, "; "))
		} else {
			p.add(KindK8sRole, name, StatusOK, "")
		}
		return nil
	case errors.Is(err, vaultclient.ErrNotFound):
		return p.missing(KindK8sRole, name, "service account "+strings.Join(k.Namespaces, ",")+"/"+sa+", token policy "+name, func() error {
			body := p.tokenSettings(name)
			maps.Copy(body, map[string]any{
				"bound_service_account_names":      []string{sa},
				"bound_service_account_namespaces": k.Namespaces,
			})
			_, err := p.vc.Write(ctx, base, body)
			return err
		})
	default:
		return fmt.Errorf("provision kubernetes role %s: %w", name, err)
	}
}

// sortedStrings reads a list of strings from a Vault response field.
func sortedStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	case []string:
		out = append(out, x...)
	}
	slices.Sort(out)
	return out
}
