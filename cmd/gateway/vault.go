package main

import (
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

func vaultConfig(v *devenv.Vault) vaultclient.Config {
	return vaultclient.Config{Addr: v.Addr, Token: v.Token, Timeout: 10 * time.Second}
}
