package kgclient

import (
	"fmt"
	"log/slog"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Keys is kafkagate's engine as a Go program outside this module uses it:
// the policies of a kafkagate configuration file and their Vault keys.
// Close releases it.
type Keys struct {
	gw *core.Core
}

// Open reads a kafkagate configuration file (its [policy:<topic>] sections,
// [kafkagate] transit and FPE settings and [default] Kafka settings) and
// reaches Vault as VAULT_ADDR, VAULT_TOKEN and the other VAULT_* variables
// say. Vault is asked per call, failing closed, as in the gateway.
func Open(path string, log *slog.Logger) (*Keys, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("kgclient: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	vcfg := vaultclient.FromEnv()
	vcfg.Logger = log
	gw, err := core.Open(core.Options{Config: cfg, Vault: vcfg, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("kgclient: %w", err)
	}
	return &Keys{gw: gw}, nil
}

// Producer returns a Producer that encrypts with k before sp sends.
func (k *Keys) Producer(sp sarama.SyncProducer) *Producer {
	return NewProducer(sp, k.gw.Engine, k.gw.Config.Policies)
}

// Decoder returns a Decoder that decrypts with k.
func (k *Keys) Decoder() *Decoder { return NewDecoder(k.gw.Engine) }

// Close releases the Vault client and Kafka connections.
func (k *Keys) Close() error { return k.gw.Close() }
