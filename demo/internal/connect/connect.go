// Package connect connects a demo program to Kafka and Vault the way the
// gateway does: Kafka from the configuration file's [default] section
// (librdkafka property names), Vault from the VAULT_* environment (TLS
// verified unless VAULT_SKIP_VERIFY). Nothing is hard-coded.
package connect

import (
	"errors"
	"log/slog"
	"os"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Kafka dials the brokers of cfg's [default] section.
func Kafka(cfg *config.File, log *slog.Logger) (*kafka.Client, error) {
	props := cfg.Section("default")
	if props == nil {
		props = map[string]string{}
	}
	s, err := kafka.Configure(props, log)
	if err != nil {
		return nil, err
	}
	return kafka.Dial(s)
}

// Core opens a core.Core (Kafka client, protect engine with the policies'
// FPE keys) for cfg, with Vault from the environment.
func Core(cfg *config.File, log *slog.Logger) (*core.Core, error) {
	vc := vaultclient.FromEnv()
	if vc.Addr == "" || (vc.Token == "" && os.Getenv("VAULT_TOKEN") == "") {
		return nil, errors.New("set VAULT_ADDR and VAULT_TOKEN (and VAULT_NAMESPACE if your Vault uses namespaces)")
	}
	vc.Logger = log
	return core.Open(core.Options{Config: cfg, Vault: vc, Logger: log})
}
