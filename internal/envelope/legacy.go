package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kafkagate/kafkagate/internal/kms"
)

// The legacy demo format (docs/wire-format.md §4.5): a whole file in one
// message, AES-256-GCM with a 32-byte nonce over the standard base64 text of
// the file, no associated data, value JSON {"ciphertext": hex, "tag": hex,
// "nonce": base64}.
const (
	legacyNonceSize = 32
	legacyTagSize   = 16
)

// LegacyFile is a decoded legacy message.
type LegacyFile struct {
	// Name is the X-filename header as sent: NOT authenticated and NOT
	// sanitised; callers must clean it before using it as a path.
	Name string
	Data []byte
	// Wrapped is the X-encryptionkey header (vault:vN:...).
	Wrapped string
}

// DEKUnwrapper turns a legacy wrapped DEK (transit key "transit", no
// context) into the raw 32-byte DEK. The callee owns nothing afterwards;
// DecodeLegacy zeroes the returned slice.
type DEKUnwrapper func(ctx context.Context, wrapped string) ([]byte, error)

// LegacyUnwrapper returns a DEKUnwrapper that asks the Opener's KeyService
// (key OpenerOptions.LegacyKEK, no context), without caching.
func (o *Opener) LegacyUnwrapper() DEKUnwrapper {
	return func(ctx context.Context, wrapped string) ([]byte, error) {
		return o.unwrapRaw(ctx, o.legacyKEK, nil, wrapped)
	}
}

// EncodeLegacy encodes data as the demo's producer_file_transfer.py did,
// with a fresh DEK from transit/datakey/plaintext/<kek> (kek "transit" in
// the demo; not derived, no context) and a random 32-byte nonce. It returns
// the two headers and the JSON value.
func EncodeLegacy(ctx context.Context, ks KeyService, kek, name string, data []byte) ([]Header, []byte, error) {
	if !ValidFileName(name) {
		return nil, nil, errorf(ErrBadHeader, "file name is not a bare UTF-8 name")
	}
	if kek == "" {
		kek = DefaultLegacyKEK
	}
	dk, err := ks.NewDataKey(ctx, kek, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	nonce := make([]byte, legacyNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		clear(dk.Plaintext)
		return nil, nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return encodeLegacyWith(dk.Plaintext, dk.Wrapped, nonce, name, data)
}

// encodeLegacyWith encodes with a given DEK (zeroed here) and nonce.
func encodeLegacyWith(dek []byte, wrapped string, nonce []byte, name string, data []byte) ([]Header, []byte, error) {
	gcm, err := legacyGCM(dek)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	if len(nonce) != legacyNonceSize {
		return nil, nil, fmt.Errorf("envelope: legacy nonce must be %d bytes", legacyNonceSize)
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	if len(b64) > maxGCMPlaintext {
		return nil, nil, errorf(ErrTooLarge, "file of %d bytes exceeds the AES-GCM limit", len(data))
	}
	sealed := gcm.Seal(nil, nonce, []byte(b64), nil)
	ct, tag := sealed[:len(sealed)-legacyTagSize], sealed[len(sealed)-legacyTagSize:]
	// Python json.dumps' default layout; hex and base64 need no escaping.
	value := fmt.Appendf(nil, `{"ciphertext": "%s", "tag": "%s", "nonce": "%s"}`,
		hex.EncodeToString(ct), hex.EncodeToString(tag), base64.StdEncoding.EncodeToString(nonce))
	hs := []Header{
		{Key: LegacyKeyHeader, Value: []byte(wrapped)},
		{Key: LegacyNameHeader, Value: []byte(name)},
	}
	return hs, value, nil
}

// legacyGCM builds the 32-byte-nonce AES-GCM from dek and zeroes dek.
func legacyGCM(dek []byte) (cipher.AEAD, error) {
	defer clear(dek)
	if len(dek) != dekBytes {
		return nil, fmt.Errorf("data key has %d bytes, want %d", len(dek), dekBytes)
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(block, legacyNonceSize)
}

// legacyMessage is a parsed legacy message before decryption.
type legacyMessage struct {
	wrapped, name string
	nonce, sealed []byte // sealed = ciphertext ‖ tag
}

func parseLegacy(hs []Header, value []byte) (legacyMessage, error) {
	var m legacyMessage
	nk, nn := 0, 0
	for _, h := range hs {
		switch h.Key {
		case HeaderFormat:
			return m, errorf(ErrUnknownFormat, "a kafkagate %s record, not a legacy message", printable(h.Value))
		case LegacyKeyHeader:
			m.wrapped = string(h.Value)
			nk++
		case LegacyNameHeader:
			m.name = string(h.Value)
			nn++
		}
	}
	if nk != 1 || nn != 1 {
		return m, errorf(ErrBadHeader, "legacy message needs exactly one %s and one %s header", LegacyKeyHeader, LegacyNameHeader)
	}
	if !kms.IsCiphertext(m.wrapped) {
		return m, errorf(ErrBadHeader, "%s is not a vault:vN: ciphertext", LegacyKeyHeader)
	}
	var v struct {
		Ciphertext *string `json:"ciphertext"`
		Tag        *string `json:"tag"`
		Nonce      *string `json:"nonce"`
	}
	if err := json.Unmarshal(value, &v); err != nil || v.Ciphertext == nil || v.Tag == nil || v.Nonce == nil {
		return m, errorf(ErrUnknownFormat, "legacy value is not JSON with ciphertext, tag and nonce")
	}
	ct, err1 := hex.DecodeString(*v.Ciphertext)
	tag, err2 := hex.DecodeString(*v.Tag)
	nonce, err3 := base64.StdEncoding.Strict().DecodeString(*v.Nonce)
	switch {
	case err1 != nil || err2 != nil || err3 != nil:
		return m, errorf(ErrUnknownFormat, "legacy value has bad hex or base64")
	case len(tag) != legacyTagSize:
		return m, errorf(ErrUnknownFormat, "legacy tag has %d bytes, want %d", len(tag), legacyTagSize)
	case len(nonce) != legacyNonceSize:
		return m, errorf(ErrUnknownFormat, "legacy nonce has %d bytes, want %d", len(nonce), legacyNonceSize)
	}
	m.nonce, m.sealed = nonce, append(ct, tag...)
	return m, nil
}

func openLegacy(gcm cipher.AEAD, m legacyMessage) (LegacyFile, error) {
	b64, err := gcm.Open(nil, m.nonce, m.sealed, nil)
	if err != nil {
		return LegacyFile{}, ErrTampered
	}
	data, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil {
		return LegacyFile{}, errorf(ErrUnknownFormat, "decrypted legacy payload is not standard base64")
	}
	return LegacyFile{Name: m.name, Data: data, Wrapped: m.wrapped}, nil
}

// DecodeLegacy decodes a legacy demo message with unwrap.
func DecodeLegacy(ctx context.Context, hs []Header, value []byte, unwrap DEKUnwrapper) (LegacyFile, error) {
	m, err := parseLegacy(hs, value)
	if err != nil {
		return LegacyFile{}, err
	}
	dek, err := unwrap(ctx, m.wrapped)
	if err != nil {
		if errors.Is(err, ErrKeyUnwrap) {
			return LegacyFile{}, err
		}
		return LegacyFile{}, fmt.Errorf("%w: %w", ErrKeyUnwrap, err)
	}
	gcm, err := legacyGCM(dek) // zeroes dek
	if err != nil {
		return LegacyFile{}, fmt.Errorf("%w: %w", ErrKeyUnwrap, err)
	}
	return openLegacy(gcm, m)
}

// OpenLegacy decodes a legacy demo message, unwrapping its DEK through the
// Opener's cache (key OpenerOptions.LegacyKEK, no context).
func (o *Opener) OpenLegacy(ctx context.Context, rec Record) (LegacyFile, error) {
	m, err := parseLegacy(rec.Headers, rec.Value)
	if err != nil {
		return LegacyFile{}, err
	}
	cs, errs, err := o.deks(ctx, []dekReq{{kek: o.legacyKEK, wrapped: m.wrapped}})
	if err != nil {
		return LegacyFile{}, err
	}
	if errs[0] != nil {
		return LegacyFile{}, errs[0]
	}
	gcm, err := cipher.NewGCMWithNonceSize(cs[0].block, legacyNonceSize)
	if err != nil {
		return LegacyFile{}, fmt.Errorf("envelope: %w", err)
	}
	return openLegacy(gcm, m)
}
