// Package vaulttest holds protect's integration tests against a real Vault
// dev server (tampering with fields sealed by Vault transit). protect's own
// unit tests run on the in-memory KMS and need no Vault binary.
package vaulttest
