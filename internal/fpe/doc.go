// Package fpe is kafkagate's format-preserving encryption of card numbers
// and other numeric identifiers: FF1 (NIST SP 800-38G) in radix 10 over
// AES-256, through github.com/capitalone/fpe's ff1 package. The keys are
// kept by a KMS; package fpe imports none (fpe/vaultkeyring keeps them in
// HashiCorp Vault, wrapped by a transit KEK).
//
// Layers, bottom up:
//
//   - Cipher: one raw 32-byte key of one domain and version (no Vault).
//     Cipher.Encrypt and Cipher.Decrypt apply a Format: ModeFull (all digits
//     but the Luhn check digit, which is recomputed), ModeKeepBINLast4
//     (first 6 and last 4 kept, the middle cycle-walked until the number is
//     Luhn-valid), ModeKeepBINLast4NoLuhn, and ModeDigits for other
//     numeric values. Separators (space, hyphen) stay in place.
//   - Service: the keys of several domains and versions; Encrypt uses a
//     domain's current version and returns it, Decrypt takes it back.
//   - Service.SetDomains installs the keys of whole domains at once; a
//     keyring (fpe/vaultkeyring.Keyring) calls it to keep a Service's keys
//     in step with its KMS.
//
// The FF1 tweak binds the domain, key version, mode and digit count, plus
// the BIN and last 4 in the keep modes, so the same number gives unrelated
// tokens in different domains, versions and modes. Tokens are deterministic
// per domain and version and carry no integrity protection; docs/fpe.md
// says what each mode reveals.
//
// Refusals are *Error values with a stable Code (fpe_too_short, ...) that
// also match sentinel errors such as ErrTooShort with errors.Is. Their
// messages never contain the value. Key-storage failures come from the
// keyring and wrap the kms errors (ErrDenied, ErrUnavailable, ...).
package fpe
