package main

import (
	"time"

	"github.com/kafkagate/kafkagate/devenv"
	"github.com/kafkagate/kafkagate/vaultclient"
)

func vaultConfig(v *devenv.Vault) vaultclient.Config {
	return vaultclient.Config{Addr: v.Addr, Token: v.Token, Timeout: 10 * time.Second}
}
