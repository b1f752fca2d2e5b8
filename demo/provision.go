package demo

import (
	"context"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Provision creates in Vault what cfg's policies name, as a development
// stack needs it (`gateway provision` and terraform/vault do the same for
// a real one): the transit mount, each fields policy's transit key, each
// envelope policy's KEK (derived), the FPE KEK and one FPE key per domain,
// and the per-topic Vault policies. Existing items are left as they are;
// no AppRole credentials are written and no Kafka topic is created.
func Provision(ctx context.Context, vc *vaultclient.Client, cfg *config.File) error {
	_, err := lifecycle.Provision(ctx, vc, lifecycle.ProvisionOptions{
		Policies:     cfg.Policies,
		TransitMount: cfg.Get("kafkagate", "transit_mount", "transit"),
		FPE:          core.KeyringOptions(cfg),
	})
	return err
}
