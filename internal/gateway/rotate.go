package gateway

import (
	"context"

	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
)

// Rotated is a key version created by RotateTopicKeys.
type Rotated = lifecycle.Rotated

// RotateTopicKeys adds a version to every key that topic's policy
// encrypts new records with (lifecycle.RotateTopic). New records use the
// new versions at once in this gateway (its FPE keyring is reloaded);
// older records keep decrypting. Other processes pick up FPE versions at
// their next refresh ([kafkagate] fpe_refresh).
func (g *Gateway) RotateTopicKeys(ctx context.Context, topic string) ([]Rotated, error) {
	return lifecycle.RotateTopic(ctx, g.Transit, func() lifecycle.DomainRotator {
		if g.FPEKeys != nil {
			return g.FPEKeys
		}
		return vaultkeyring.New(g.Vault, KeyringOptions(g.Config))
	}, g.Config.Policies, topic)
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
