// Package kms is the neutral vocabulary of key management in kafkagate: the
// errors a key management service (KMS) reports and the values that field
// ciphers, data keys and key administration exchange with it. It holds no
// implementation and imports nothing of Vault. The packages that call a KMS
// declare the few methods they call as small interfaces of their own, in
// these types (envelope.KMS, for one); those that only classify failures
// (the HTTP error mapping) match the errors below.
//
// Vault (packages vaultclient and transit) is one implementation: it maps
// Vault's HTTP and per-item failures onto the errors below. kms/memkms is an
// in-memory one for unit tests.
//
// Errors come in two layers. A whole call fails with an error matching one
// of ErrUnavailable, ErrDenied, ErrNotFound or ErrInvalid (see IsCallError);
// then no item has a result. Otherwise each item carries its own error, an
// *ItemError matching one of ErrDecrypt, ErrVersionRetired, ErrMalformed or
// ErrItem.
//
// Ciphertexts and wrapped keys have the form vault:vN:<base64>, the format
// of Vault's transit engine, whatever the implementation: records written
// through one KMS parse the same with another. Version reads N.
package kms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Whole-call errors: the call as a whole failed and no item has a result.
var (
	// ErrUnavailable means the KMS could not be reached, is sealed, or
	// failed internally: the caller should refuse and retry later.
	ErrUnavailable = errors.New("kms unavailable")
	// ErrDenied means the KMS refused the caller's credentials.
	ErrDenied = errors.New("kms permission denied")
	// ErrNotFound means the key (or storage path) does not exist.
	ErrNotFound = errors.New("kms key or path not found")
	// ErrInvalid means the KMS rejected the request as malformed.
	ErrInvalid = errors.New("kms rejected the request")
)

// IsCallError reports whether err is a whole-call failure of a KMS: it
// matches ErrUnavailable, ErrDenied, ErrNotFound or ErrInvalid.
func IsCallError(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDenied) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid)
}

// Per-item errors. An *ItemError wraps one of these.
var (
	// ErrDecrypt: the ciphertext did not authenticate (wrong key, wrong
	// associated data or context, or tampering).
	ErrDecrypt = errors.New("ciphertext failed authentication")
	// ErrVersionRetired: the ciphertext's key version is below the key's
	// min_decryption_version.
	ErrVersionRetired = errors.New("key version retired")
	// ErrMalformed: the ciphertext is not of the form vault:vN:<base64>.
	ErrMalformed = errors.New("malformed ciphertext")
	// ErrItem: the KMS refused the item for another reason.
	ErrItem = errors.New("item refused by the kms")
)

// ItemError is the failure of one item in a batch.
type ItemError struct {
	Index int
	Msg   string // the KMS's message, which never contains the plaintext
	Kind  error
}

func (e *ItemError) Error() string { return fmt.Sprintf("item %d: %v: %s", e.Index, e.Kind, e.Msg) }

// Is matches the error's kind.
func (e *ItemError) Is(target error) bool { return target == e.Kind }

// Item is one value to encrypt.
type Item struct {
	Plaintext []byte
	AAD       []byte // associated data; nil for none (AEAD key types only)
	Context   []byte // key-derivation context; derived keys only
}

// Sealed is one encrypted value.
type Sealed struct {
	Ciphertext string // vault:vN:...
	KeyVersion int
	Err        error // *ItemError when this item failed
}

// Ciphertext is one value to decrypt.
type Ciphertext struct {
	Ciphertext string
	AAD        []byte
	Context    []byte
}

// Opened is one decrypted value.
type Opened struct {
	Plaintext  []byte
	KeyVersion int
	Err        error
}

// DataKey is a fresh data-encryption key made by the KMS.
type DataKey struct {
	Plaintext  []byte // nil for wrapped-only keys
	Ciphertext string // the key wrapped by the KMS key: vault:vN:...
	KeyVersion int
}

// KeyInfo describes a key.
type KeyInfo struct {
	Name                 string
	Type                 string
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int
	Versions             []int
	Derived              bool
	DeletionAllowed      bool
	AutoRotatePeriod     string
}

// KeySpec says how to create a key.
type KeySpec struct {
	Type    string // default aes256-gcm96
	Derived bool
}

// Version returns N from a "vault:vN:..." ciphertext, or an error wrapping
// ErrMalformed.
func Version(ct string) (int, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0, fmt.Errorf("%w: no vault:v prefix", ErrMalformed)
	}
	num, body, ok := strings.Cut(rest, ":")
	if !ok || body == "" {
		return 0, fmt.Errorf("%w: no version separator", ErrMalformed)
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: bad version", ErrMalformed)
	}
	return v, nil
}

// CheckKeyName refuses a key name that is not one path segment (empty, ".",
// "..", or containing '/', '?', '#', '%' or a space), before any call.
func CheckKeyName(key string) error {
	if key == "" || strings.ContainsAny(key, "/?#% ") || key == "." || key == ".." {
		return fmt.Errorf("invalid transit key name %q", key)
	}
	return nil
}

// IsCiphertext reports whether s looks like a KMS ciphertext.
func IsCiphertext(s string) bool { _, err := Version(s); return err == nil }
