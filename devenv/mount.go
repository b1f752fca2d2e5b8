package devenv

import "github.com/hashicorp/vault/api"

var vaultapiMountInput = api.MountInput{Type: "transit", Description: "kafkagate transit"}
