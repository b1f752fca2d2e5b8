package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"

	"github.com/kafkagate/kafkagate/transit"
	"github.com/kafkagate/kafkagate/vaultclient"
)

// dekBytes is the DEK size: 256 bits.
const dekBytes = 32

// KeyService generates and unwraps DEKs. TransitKeys is the Vault
// implementation; tests of pure crypto may use a local one.
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

// TransitKeys is a KeyService over Vault transit.
type TransitKeys struct {
	c *transit.Client
}

// NewTransitKeys returns a KeyService using c.
func NewTransitKeys(c *transit.Client) *TransitKeys { return &TransitKeys{c: c} }

// Mount implements KeyService.
func (t *TransitKeys) Mount() string { return t.c.Mount() }

// NewDataKey implements KeyService with transit/datakey/plaintext/<kek>.
func (t *TransitKeys) NewDataKey(ctx context.Context, kek string, derivation []byte) (DataKey, error) {
	dk, err := t.c.NewDataKey(ctx, kek, dekBytes*8, false, derivation)
	if err != nil {
		return DataKey{}, err
	}
	return DataKey{Plaintext: dk.Plaintext, Wrapped: dk.Ciphertext}, nil
}

// Unwrap implements KeyService with one batched transit/decrypt/<kek> call
// (split by the transit client only above its batch size).
func (t *TransitKeys) Unwrap(ctx context.Context, kek string, keys []WrappedKey) ([]UnwrappedKey, error) {
	items := make([]transit.Ciphertext, len(keys))
	for i, k := range keys {
		items[i] = transit.Ciphertext{Ciphertext: k.Wrapped, Context: k.Context}
	}
	res, err := t.c.Decrypt(ctx, kek, items)
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
	return errors.Is(err, vaultclient.ErrInvalid)
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
