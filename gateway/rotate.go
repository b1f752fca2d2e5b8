package gateway

import (
	"context"
	"fmt"

	"github.com/kafkagate/kafkagate/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/lifecycle"
)

// Rotated is a key version created by RotateTopicKeys.
type Rotated = lifecycle.Rotated

// RotateTopicKeys adds a version to every key that topic's policy
// encrypts new records with (see lifecycle.TopicKeys). New records use the new
// versions at once in this gateway (its FPE keyring is reloaded); older
// records keep decrypting. Other processes pick up FPE versions at their
// next refresh ([kafkagate] fpe_refresh). An envelope KEK may be shared by
// several topics: they all move to the new version.
func (g *Gateway) RotateTopicKeys(ctx context.Context, topic string) ([]Rotated, error) {
	p, ok := g.Config.Policies.For(topic)
	if !ok {
		return nil, fmt.Errorf("topic %q: no keys to rotate: %w", topic, lifecycle.ErrNoPolicy)
	}
	keys, domains := lifecycle.TopicKeys(p)
	var out []Rotated
	for _, k := range keys {
		v, err := g.Transit.Rotate(ctx, k)
		if err != nil {
			return out, fmt.Errorf("rotate transit key %s: %w", k, err)
		}
		out = append(out, Rotated{Kind: "transit", Key: k, Version: v})
	}
	kr := g.FPEKeys
	if kr == nil && len(domains) > 0 {
		kr = vaultkeyring.New(g.Vault, KeyringOptions(g.Config))
	}
	for _, d := range domains {
		v, err := kr.Rotate(ctx, d)
		if err != nil {
			return out, fmt.Errorf("rotate fpe domain %s: %w", d, err)
		}
		out = append(out, Rotated{Kind: "fpe", Domain: d, Version: v})
	}
	return out, nil
}

// adminService serves the admin endpoints (httpapi/admin.go): only the
// transit keys the policies use can be shown, rotated or configured.
type adminService struct{ g *Gateway }

func (a adminService) ListKeys(ctx context.Context) ([]lifecycle.KeyStatus, error) {
	return lifecycle.ListKeys(ctx, a.g.Transit, a.g.Config.Policies)
}

func (a adminService) ShowKey(ctx context.Context, key string) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.g.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ShowKey(ctx, a.g.Transit, key)
}

func (a adminService) RotateKey(ctx context.Context, key string) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.g.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	if _, err := a.g.Transit.Rotate(ctx, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ShowKey(ctx, a.g.Transit, key)
}

func (a adminService) ConfigureKey(ctx context.Context, key string, c lifecycle.KeyConfig) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.g.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ConfigureKey(ctx, a.g.Transit, key, c)
}

func (a adminService) RotateTopic(ctx context.Context, topic string) ([]lifecycle.Rotated, error) {
	return a.g.RotateTopicKeys(ctx, topic)
}

func (a adminService) Inventory(ctx context.Context, topic string) (*lifecycle.Inventory, error) {
	return lifecycle.TakeInventory(ctx, a.g.Kafka, a.g.Engine, topic, lifecycle.InventoryOptions{})
}
