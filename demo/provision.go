package demo

import (
	"context"
	"fmt"

	"github.com/kafkagate/kafkagate/config"
	"github.com/kafkagate/kafkagate/fpe"
	"github.com/kafkagate/kafkagate/gateway"
	"github.com/kafkagate/kafkagate/policy"
	"github.com/kafkagate/kafkagate/transit"
	"github.com/kafkagate/kafkagate/vaultclient"
)

// Provision creates in Vault what cfg's policies name, as a development
// stack needs it (terraform/vault does the same for a real one): each
// fields policy's transit key, each envelope policy's KEK (a derived key:
// the topic is its context), and, when a policy uses fpe, the FPE KEK and
// one FPE key per domain. Existing keys are left as they are.
func Provision(ctx context.Context, vc *vaultclient.Client, cfg *config.File) error {
	tc := transit.New(vc, transit.Options{Mount: cfg.Get("kafkagate", "transit_mount", "transit")})
	for _, t := range cfg.Policies.Topics() {
		p, _ := cfg.Policies.For(t)
		key, spec := p.TransitKey, transit.KeySpec{}
		switch p.Mode {
		case policy.Passthrough:
			continue
		case policy.Envelope:
			key, spec = p.Envelope.Key, transit.KeySpec{Derived: true}
		}
		if err := tc.EnsureKey(ctx, key, spec); err != nil {
			return fmt.Errorf("provision [policy:%s]: %w", t, err)
		}
	}
	domains := gateway.FPEDomains(cfg.Policies)
	if len(domains) == 0 {
		return nil
	}
	kr := fpe.NewKeyring(vc, gateway.KeyringOptions(cfg))
	if err := kr.EnsureKEK(ctx); err != nil {
		return fmt.Errorf("provision FPE KEK: %w", err)
	}
	for _, dom := range domains {
		if _, err := kr.Ensure(ctx, dom); err != nil {
			return fmt.Errorf("provision FPE domain %s: %w", dom, err)
		}
	}
	return nil
}
