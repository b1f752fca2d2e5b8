package server

import (
	"context"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
)

// adminService serves the admin endpoints (httpapi/admin.go): only the
// transit keys the policies use can be shown, rotated or configured.
type adminService struct{ c *core.Core }

func (a adminService) ListKeys(ctx context.Context) ([]lifecycle.KeyStatus, error) {
	return lifecycle.ListKeys(ctx, a.c.Transit, a.c.Config.Policies)
}

func (a adminService) ShowKey(ctx context.Context, key string) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.c.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ShowKey(ctx, a.c.Transit, key)
}

func (a adminService) RotateKey(ctx context.Context, key string) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.c.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	if _, err := a.c.Transit.Rotate(ctx, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ShowKey(ctx, a.c.Transit, key)
}

func (a adminService) ConfigureKey(ctx context.Context, key string, c lifecycle.KeyConfig) (lifecycle.KeyStatus, error) {
	if err := lifecycle.CheckPolicyKey(a.c.Config.Policies, key); err != nil {
		return lifecycle.KeyStatus{}, err
	}
	return lifecycle.ConfigureKey(ctx, a.c.Transit, key, c)
}

func (a adminService) RotateTopic(ctx context.Context, topic string) ([]lifecycle.Rotated, error) {
	return a.c.RotateTopicKeys(ctx, topic)
}

func (a adminService) Inventory(ctx context.Context, topic string) (*lifecycle.Inventory, error) {
	return lifecycle.TakeInventory(ctx, a.c.Kafka, a.c.Engine, topic, lifecycle.InventoryOptions{})
}
