package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"

	"github.com/kafkagate/kafkagate/internal/kms"
)

// dekBytes is the DEK size: 256 bits.
const dekBytes = 32

// KeyService generates and unwraps DEKs. KMSKeys implements it over a KMS
// (Vault transit, or kms/memkms in tests); tests of pure crypto may use a
// local one.
type KeyService interface {
	// Mount names the service's transit mount, written into kafkagate.kek.
	Mount() string
	// NewDataKey returns a fresh 256-bit DEK and its wrapped form under kek.
	// derivation is the key-derivation context (nil for a non-derived kek).
	NewDataKey(ctx context.Context, kek string, derivation []byte) (DataKey, error)
	// Unwrap unwraps keys under kek, in one call where the service allows.
	// The result has one entry per input, in order; the error is non-nil
	// only when the whole call failed.
	Unwrap(ctx context.Context, kek string, keys []WrappedKey) ([]UnwrappedKey, error)
}

// DataKey is a DEK and its wrapped form (vault:vN:...).
type DataKey struct {
	Plaintext []byte
	Wrapped   string
}

// WrappedKey is one DEK to unwrap.
type WrappedKey struct {
	Wrapped string
	Context []byte // derivation context; nil for non-derived KEKs
}

// UnwrappedKey is the result of unwrapping one DEK.
type UnwrappedKey struct {
	Plaintext []byte
	Err       error
}

// KMS is what KMSKeys needs of a key management service: *transit.Client
// provides it over Vault, kms/memkms in memory.
type KMS interface {
	// Mount names the KMS's key namespace (the transit mount).
	Mount() string
	// NewDataKey returns a fresh key of bits under key; see
	// transit.Client.NewDataKey.
	NewDataKey(ctx context.Context, key string, bits int, wrappedOnly bool, ctxt []byte) (kms.DataKey, error)
	// Decrypt decrypts items with key: one result per item, in order; the
	// error is non-nil only when the whole call failed.
	Decrypt(ctx context.Context, key string, items []kms.Ciphertext) ([]kms.Opened, error)
}

// KMSKeys is a KeyService over a KMS: DEKs are KMS data keys, wrapped by
// the KEK.
type KMSKeys struct {
	k KMS
}

// NewKMSKeys returns a KeyService using k.
func NewKMSKeys(k KMS) *KMSKeys { return &KMSKeys{k: k} }

// TransitKeys is the former name of KMSKeys.
//
// Deprecated: use KMSKeys.
type TransitKeys = KMSKeys

// NewTransitKeys is the former name of NewKMSKeys.
//
// Deprecated: use NewKMSKeys.
func NewTransitKeys(k KMS) *KMSKeys { return NewKMSKeys(k) }

// Mount implements KeyService.
func (t *KMSKeys) Mount() string { return t.k.Mount() }

// NewDataKey implements KeyService with the KMS's data keys (Vault:
// transit/datakey/plaintext/<kek>).
func (t *KMSKeys) NewDataKey(ctx context.Context, kek string, derivation []byte) (DataKey, error) {
	dk, err := t.k.NewDataKey(ctx, kek, dekBytes*8, false, derivation)
	if err != nil {
		return DataKey{}, err
	}
	return DataKey{Plaintext: dk.Plaintext, Wrapped: dk.Ciphertext}, nil
}

// Unwrap implements KeyService with one batched decrypt call (Vault:
// transit/decrypt/<kek>, split by the transit client only above its batch
// size).
func (t *KMSKeys) Unwrap(ctx context.Context, kek string, keys []WrappedKey) ([]UnwrappedKey, error) {
	items := make([]kms.Ciphertext, len(keys))
	for i, k := range keys {
		items[i] = kms.Ciphertext{Ciphertext: k.Wrapped, Context: k.Context}
	}
	res, err := t.k.Decrypt(ctx, kek, items)
	if err != nil {
		return nil, err
	}
	out := make([]UnwrappedKey, len(res))
	for i, r := range res {
		out[i] = UnwrappedKey{Plaintext: r.Plaintext, Err: r.Err}
	}
	return out, nil
}

// wholeCallRefusal reports whether a whole-call unwrap error is really a
// refusal of every item: Vault answers HTTP 400 without per-item results
// when all items of a batch fail (bad ciphertext, wrong context, ...).
func wholeCallRefusal(err error) bool {
	return errors.Is(err, kms.ErrInvalid)
}

// dekCipher is a DEK turned into AES: the raw key bytes are gone.
type dekCipher struct {
	block cipher.Block
	gcm   cipher.AEAD // 12-byte nonce, 16-byte tag
}

// newDEKCipher builds the ciphers and zeroes raw.
func newDEKCipher(raw []byte) (*dekCipher, error) {
	defer clear(raw)
	if len(raw) != dekBytes {
		return nil, fmt.Errorf("data key has %d bytes, want %d", len(raw), dekBytes)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &dekCipher{block: block, gcm: gcm}, nil
}
