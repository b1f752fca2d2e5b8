package core

import (
	"context"

	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
)

// Rotated is a key version created by RotateTopicKeys.
type Rotated = lifecycle.Rotated

// RotateTopicKeys adds a version to every key that topic's policy
// encrypts new records with (lifecycle.RotateTopic). New records use the
// new versions at once in this process (its FPE keyring is reloaded);
// older records keep decrypting. Other processes pick up FPE versions at
// their next refresh ([kafkagate] fpe_refresh).
func (c *Core) RotateTopicKeys(ctx context.Context, topic string) ([]Rotated, error) {
	return lifecycle.RotateTopic(ctx, c.Transit, func() lifecycle.DomainRotator {
		if c.FPEKeys != nil {
			return c.FPEKeys
		}
		return vaultkeyring.New(c.Vault, KeyringOptions(c.Config))
	}, c.Config.Policies, topic)
}
