//go:build tools

// Package tools pins the HashiCorp Vault release that kafkagate's tests and
// dev mode run as a real server. It is built by `make vault`; nothing here is
// imported by the product.
package tools

import _ "github.com/hashicorp/vault"
