package devenv

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Env is a Vault dev server and a kfake broker, with a root-token Vault
// client and a transit client on that server.
type Env struct {
	Vault   *Vault
	VC      *vaultclient.Client // root-token client
	Transit *transit.Client
	Kafka   *kfake.Cluster
	Brokers []string
}

// StartEnv starts Vault (vo), then the broker (ko). On error nothing is
// left running; otherwise Close stops both.
func StartEnv(ctx context.Context, vo VaultOptions, ko KafkaOptions) (*Env, error) {
	v, err := StartVault(ctx, vo)
	if err != nil {
		return nil, fmt.Errorf("start vault dev server: %w", err)
	}
	env := &Env{Vault: v}
	if env.VC, err = v.Client(); err != nil {
		env.Close()
		return nil, err
	}
	env.Transit = transit.New(env.VC, transit.Options{})
	if env.Kafka, err = StartKafka(ko); err != nil {
		env.Close()
		return nil, err
	}
	env.Brokers = env.Kafka.ListenAddrs()
	return env, nil
}

// Close stops the broker, then Vault.
func (e *Env) Close() {
	if e.Kafka != nil {
		e.Kafka.Close()
	}
	_ = e.Vault.Stop()
}
