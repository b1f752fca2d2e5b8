package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/gateway"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Topics of the sections that go through an assembled gateway.
const (
	restTopic     = "bench-rest"
	bridgeSource  = "bench-bridge-in"
	bridgeTarget  = "bench-bridge-out"
	envelopeTopic = "bench-envelope"
	benchFPE      = "bench.card_number"
)

// benchConfig is the configuration of the gateway the sections assemble:
// a transit policy with three fields for REST produce, one transit and
// one FPE field for the bridge, cached-DEK envelope records.
const benchConfig = `
[policy:` + restTopic + `]
fields = Name transit, Address transit, credit_card transit

[policy:` + bridgeTarget + `]
fields = Address transit, credit_card fpe format=full domain=` + benchFPE + `

[policy:` + envelopeTopic + `]
mode = envelope
dek = cached
` + proxyConfig

// benchPolicies parses benchConfig.
func benchPolicies() (*config.File, error) {
	cfg, err := config.Parse([]byte(benchConfig))
	if err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	return cfg, nil
}

// ensureKeys creates the Vault keys benchConfig's policies use (transit
// keys, the FPE keyring's KEK and domain key, the envelope KEK), once.
func (e *env) ensureKeys(ctx context.Context, cfg *config.File) error {
	if e.keysReady {
		return nil
	}
	kr := vaultkeyring.New(e.vc, gateway.KeyringOptions(cfg))
	if err := kr.EnsureKEK(ctx); err != nil {
		return fmt.Errorf("bench keys: %w", err)
	}
	if _, err := kr.Ensure(ctx, benchFPE); err != nil {
		return fmt.Errorf("bench keys: %w", err)
	}
	tc := e.transit()
	if err := tc.EnsureKey(ctx, envelope.DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		return fmt.Errorf("bench keys: %w", err)
	}
	for _, topic := range cfg.Policies.Topics() {
		p, _ := cfg.Policies.For(topic)
		if p.TransitKey != "" {
			if err := tc.EnsureKey(ctx, p.TransitKey, transit.KeySpec{}); err != nil {
				return fmt.Errorf("bench keys: %w", err)
			}
		}
	}
	e.keysReady = true
	return nil
}

// gateway assembles a kafkagate in this process exactly as `kafkagate
// serve` does (gateway.New: Vault client, coalescing transit client,
// protect engine, HTTP API, metrics) against the bench's Vault and broker,
// once: the envelope section's producing client, which seals records
// itself. REST and the bridge run the built gateway as a process of its
// own (gwproc.go).
func (e *env) gateway(ctx context.Context) (*gateway.Gateway, error) {
	if e.gw != nil {
		return e.gw, nil
	}
	cfg, err := benchPolicies()
	if err != nil {
		return nil, err
	}
	if err := e.ensureKeys(ctx, cfg); err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Options{
		Config:  cfg,
		Vault:   vaultclient.Config{Addr: e.vault.Addr, Token: e.vault.Token, Timeout: 60 * time.Second},
		Logger:  e.log,
		Brokers: e.brokers,
	})
	if err != nil {
		return nil, fmt.Errorf("bench gateway: %w", err)
	}
	e.gw = gw
	return gw, nil
}
