// Package memkms is an in-memory KMS for unit tests: it has the method set
// that kafkagate's KMS users call on *transit.Client (Encrypt, Decrypt,
// Rewrap, HMAC, NewDataKey, Mount, and the key administration EnsureKey,
// ReadKey, Rotate, Configure) and behaves as Vault's transit engine does,
// item for item and error for error, so code tested against it behaves the
// same against Vault. transit's conformance test runs one behaviour table
// against both.
//
// Keys are aes256-gcm96 with versions, min_decryption_version and derived
// keys (HKDF-SHA256 of the version key with the context). Ciphertexts are
// vault:vN:<base64(nonce ‖ AES-256-GCM ciphertext)>, as Vault writes them,
// and HMACs vault:vN:<base64(HMAC-SHA256)>. Errors are the kms ones: a
// missing key, a bad configuration or a batch that mixes items with and
// without context fails the whole call with kms.ErrInvalid (Vault's HTTP
// 400); items fail alone with an *kms.ItemError (ErrDecrypt,
// ErrVersionRetired, ErrMalformed, ErrItem). SetUnavailable and FailCalls
// make every call fail, for fail-closed tests.
//
// It is for tests only: production code must not import it. Key material
// lives in process memory and is never persisted.
package memkms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kafkagate/kafkagate/internal/kms"
)

// Vault's per-item messages, kept so that logs read the same.
const (
	msgAuth     = "cipher: message authentication failed"
	msgTooOld   = "ciphertext or signature version is disallowed by policy (too old)"
	msgNoPrefix = "invalid ciphertext: no prefix"
	msgDecode   = "invalid ciphertext: could not decode base64"
	msgLength   = "invalid ciphertext length"
	msgTooNew   = "invalid ciphertext: version is too new"
	msgContext  = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
	msgMixed    = "context should be set either in all the request blocks or in none"
	msgNotFound = "encryption key not found"
)

// Options configure a KMS.
type Options struct {
	// Mount is what Mount returns; default "transit".
	Mount string
	// Upsert makes Encrypt create a missing key (derived when the items
	// carry context), as Vault does for a token that may create keys (a
	// root token). Without it Encrypt with a missing key fails with
	// kms.ErrDenied, as Vault answers a token that may only update, such
	// as the gateway's.
	Upsert bool
}

// KMS is an in-memory transit engine. It is safe for concurrent use.
type KMS struct {
	mount  string
	upsert bool

	mu    sync.Mutex
	keys  map[string]*key
	fail  error
	calls map[string]int
}

type key struct {
	derived         bool
	latest          int
	minDecrypt      int // 1 unless configured
	minEncrypt      int // 0 unless configured
	deletionAllowed bool
	autoRotate      int64 // seconds
	versions        map[int]*version
}

type version struct {
	enc  []byte // AES-256 key, or HKDF secret for derived keys
	hmac []byte // HMAC-SHA256 key
}

// New returns an empty KMS.
func New(o Options) *KMS {
	if o.Mount == "" {
		o.Mount = "transit"
	}
	return &KMS{mount: strings.Trim(o.Mount, "/"), upsert: o.Upsert, keys: map[string]*key{}, calls: map[string]int{}}
}

// Mount is the mount name given in Options.
func (m *KMS) Mount() string { return m.mount }

// SetUnavailable makes every call fail as a whole with kms.ErrUnavailable
// (on), or work again (off), as a stopped or sealed Vault.
func (m *KMS) SetUnavailable(on bool) {
	if on {
		m.FailCalls(kms.ErrUnavailable)
	} else {
		m.FailCalls(nil)
	}
}

// FailCalls makes every call fail as a whole with an error wrapping err
// (kms.ErrDenied, kms.ErrUnavailable, ...); nil makes calls work again.
func (m *KMS) FailCalls(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Calls reports how many calls of op ("encrypt", "decrypt", "rewrap",
// "hmac", "datakey", "read", "create", "rotate", "config") reached the
// KMS. Like transit, calls without items, and with an invalid key name,
// do not reach it.
func (m *KMS) Calls(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// call counts a call of op and returns key's state (nil if missing), or
// the whole-call error of an unavailable KMS or a finished context.
func (m *KMS) call(ctx context.Context, op, name string) (*key, error) {
	if err := ctx.Err(); err != nil {
		if err == context.Canceled {
			return nil, fmt.Errorf("memkms %s with key %q: %w", op, name, err)
		}
		return nil, fmt.Errorf("memkms %s with key %q: %w: %w", op, name, kms.ErrUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[op]++
	if m.fail != nil {
		return nil, fmt.Errorf("memkms %s with key %q: %w", op, name, m.fail)
	}
	return m.keys[name], nil
}

// snapshot is a key's state for one call: the versions it may use.
type snapshot struct {
	derived    bool
	latest     int
	minDecrypt int
	versions   map[int]*version
}

// view returns a snapshot of k; m.mu must not be held.
func (m *KMS) view(k *key) snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return snapshot{derived: k.derived, latest: k.latest, minDecrypt: k.minDecrypt, versions: k.versions}
}

func invalid(op, name, msg string) error {
	return fmt.Errorf("memkms %s with key %q: %s: %w", op, name, msg, kms.ErrInvalid)
}

func itemErr(idx int, msg string, kind error) error {
	return &kms.ItemError{Index: idx, Msg: msg, Kind: kind}
}

// existingKey returns key name for op after checking the name and making
// the call (see call); missing is the error when the key does not exist.
func (m *KMS) existingKey(ctx context.Context, op, name string, missing error) (*key, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	k, err := m.call(ctx, op, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, missing
	}
	return k, nil
}

// batchKey returns the key for a batch of n items of op after the checks
// every batch passes: the call reaches the KMS and is allowed, and has(i)
// (item i carries a context) is the same for all items. A missing key
// fails the batch, except that encrypt creates it (derived when the items
// carry a context) if this KMS may.
func (m *KMS) batchKey(ctx context.Context, op, name string, n int, has func(i int) bool) (*key, error) {
	k, err := m.call(ctx, op, name)
	if err != nil {
		return nil, err
	}
	if mixedContext(n, has) {
		return nil, invalid(op, name, msgMixed)
	}
	switch {
	case k != nil:
		return k, nil
	case op != "encrypt":
		return nil, invalid(op, name, msgNotFound)
	case !m.upsert:
		return nil, fmt.Errorf("memkms encrypt with key %q: key does not exist and this KMS may not create it: %w", name, kms.ErrDenied)
	}
	return m.create(name, kms.KeySpec{Derived: has(0)})
}

// mixedContext reports whether some items carry a context and others not.
func mixedContext(n int, has func(i int) bool) bool {
	for i := 1; i < n; i++ {
		if has(i) != has(0) {
			return true
		}
	}
	return false
}

// Encrypt encrypts items with key's latest version; see
// transit.Client.Encrypt for the contract.
func (m *KMS) Encrypt(ctx context.Context, name string, items []kms.Item) ([]kms.Sealed, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	out := make([]kms.Sealed, len(items))
	if len(items) == 0 {
		return out, nil
	}
	has := func(i int) bool { return len(items[i].Context) > 0 }
	k, err := m.batchKey(ctx, "encrypt", name, len(items), has)
	if err != nil {
		return out, err
	}
	s := m.view(k)
	for i, it := range items {
		out[i] = s.seal(i, it.Plaintext, it.AAD, it.Context)
	}
	return out, nil
}

// Decrypt decrypts items with key; see transit.Client.Decrypt. Malformed
// ciphertexts fail locally without reaching the KMS.
func (m *KMS) Decrypt(ctx context.Context, name string, items []kms.Ciphertext) ([]kms.Opened, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	out := make([]kms.Opened, len(items))
	send := make([]int, 0, len(items))
	for i, it := range items {
		v, err := kms.Version(it.Ciphertext)
		if err != nil {
			out[i].Err = itemErr(i, err.Error(), kms.ErrMalformed)
			continue
		}
		out[i].KeyVersion = v
		send = append(send, i)
	}
	if len(send) == 0 {
		return out, nil
	}
	k, err := m.batchKey(ctx, "decrypt", name, len(send), func(i int) bool { return len(items[send[i]].Context) > 0 })
	if err != nil {
		return out, err
	}
	s := m.view(k)
	for _, i := range send {
		pt, err := s.open(i, items[i].Ciphertext, items[i].AAD, items[i].Context)
		if err != nil {
			out[i].Err = err
			continue
		}
		if pt == nil {
			pt = []byte{}
		}
		out[i].Plaintext = pt
	}
	return out, nil
}

// Rewrap moves ciphertexts to key's latest version; see
// transit.Client.Rewrap. Like Vault's rewrap it ignores AAD: a ciphertext
// sealed with associated data fails with ErrDecrypt.
func (m *KMS) Rewrap(ctx context.Context, name string, items []kms.Ciphertext) ([]kms.Sealed, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	out := make([]kms.Sealed, len(items))
	if len(items) == 0 {
		return out, nil
	}
	k, err := m.batchKey(ctx, "rewrap", name, len(items), func(i int) bool { return len(items[i].Context) > 0 })
	if err != nil {
		return out, err
	}
	s := m.view(k)
	for i, it := range items {
		pt, err := s.open(i, it.Ciphertext, nil, it.Context)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i] = s.seal(i, pt, nil, it.Context)
	}
	return out, nil
}

// HMAC computes HMAC-SHA256 of inputs with key's latest version; see
// transit.Client.HMAC.
func (m *KMS) HMAC(ctx context.Context, name string, inputs [][]byte) ([]string, []error, error) {
	if err := checkKeyName(name); err != nil {
		return nil, nil, err
	}
	out := make([]string, len(inputs))
	errs := make([]error, len(inputs))
	if len(inputs) == 0 {
		return out, errs, nil
	}
	k, err := m.existingKey(ctx, "hmac", name, invalid("hmac", name, msgNotFound))
	if err != nil {
		return out, errs, err
	}
	s := m.view(k)
	prefix := "vault:v" + strconv.Itoa(s.latest) + ":"
	for i, in := range inputs {
		h := hmac.New(sha256.New, s.versions[s.latest].hmac)
		h.Write(in)
		out[i] = prefix + base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	return out, errs, nil
}

// NewDataKey returns a fresh key of bits (128, 256 or 512) wrapped by
// key's latest version; see transit.Client.NewDataKey.
func (m *KMS) NewDataKey(ctx context.Context, name string, bits int, wrappedOnly bool, ctxt []byte) (kms.DataKey, error) {
	k, err := m.existingKey(ctx, "datakey", name, invalid("datakey", name, msgNotFound))
	if err != nil {
		return kms.DataKey{}, err
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return kms.DataKey{}, invalid("datakey", name, "invalid bits")
	}
	s := m.view(k)
	if s.derived && len(ctxt) == 0 {
		return kms.DataKey{}, invalid("datakey", name, msgContext)
	}
	raw := make([]byte, bits/8)
	rand.Read(raw)
	sealed := s.seal(0, raw, nil, ctxt)
	if sealed.Err != nil {
		return kms.DataKey{}, fmt.Errorf("memkms datakey with key %q: %w", name, sealed.Err)
	}
	dk := kms.DataKey{Ciphertext: sealed.Ciphertext, KeyVersion: sealed.KeyVersion}
	if !wrappedOnly {
		dk.Plaintext = raw
	}
	return dk, nil
}

// seal encrypts pt with the latest version as item idx.
func (s snapshot) seal(idx int, pt, aad, ctxt []byte) kms.Sealed {
	aead, err := s.aead(s.latest, ctxt)
	if err != nil {
		return kms.Sealed{Err: itemErr(idx, err.Error(), kms.ErrItem)}
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	body := aead.Seal(nonce, nonce, pt, aad)
	return kms.Sealed{
		Ciphertext: "vault:v" + strconv.Itoa(s.latest) + ":" + base64.StdEncoding.EncodeToString(body),
		KeyVersion: s.latest,
	}
}

// open decrypts ct as item idx and returns Vault's per-item error for it,
// checked in Vault's order: form, version, encoding, key, authentication.
func (s snapshot) open(idx int, ct string, aad, ctxt []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return nil, itemErr(idx, msgNoPrefix, kms.ErrMalformed)
	}
	num, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, itemErr(idx, "invalid ciphertext: wrong number of fields", kms.ErrMalformed)
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return nil, itemErr(idx, "invalid ciphertext: version number could not be decoded", kms.ErrMalformed)
	}
	if v == 0 {
		v = 1 // as Vault reads it
	}
	if v < s.minDecrypt {
		return nil, itemErr(idx, msgTooOld, kms.ErrVersionRetired)
	}
	if v > s.latest {
		return nil, itemErr(idx, msgTooNew, kms.ErrMalformed)
	}
	body, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, itemErr(idx, msgDecode, kms.ErrMalformed)
	}
	aead, err := s.aead(v, ctxt)
	if err != nil {
		return nil, itemErr(idx, err.Error(), kms.ErrItem)
	}
	if len(body) < aead.NonceSize() {
		return nil, itemErr(idx, msgLength, kms.ErrMalformed)
	}
	pt, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], aad)
	if err != nil {
		return nil, itemErr(idx, msgAuth, kms.ErrDecrypt)
	}
	return pt, nil
}

// aead returns the cipher of version v, derived with ctxt for derived keys
// (a non-derived key ignores the context, as Vault does).
func (s snapshot) aead(v int, ctxt []byte) (cipher.AEAD, error) {
	kv := s.versions[v]
	if kv == nil {
		return nil, fmt.Errorf("key version %d not found", v)
	}
	raw := kv.enc
	if s.derived {
		if len(ctxt) == 0 {
			return nil, fmt.Errorf("%s", msgContext)
		}
		d, err := hkdf.Key(sha256.New, kv.enc, nil, string(ctxt), 32)
		if err != nil {
			return nil, err
		}
		raw = d
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// EnsureKey creates key if it does not exist; an existing key is left
// alone. Only aes256-gcm96 keys are supported.
func (m *KMS) EnsureKey(ctx context.Context, name string, spec kms.KeySpec) error {
	if _, err := m.ReadKey(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, kms.ErrNotFound) {
		return err
	}
	if _, err := m.call(ctx, "create", name); err != nil {
		return err
	}
	_, err := m.create(name, spec)
	return err
}

// create adds key at version 1, or returns the existing one.
func (m *KMS) create(name string, spec kms.KeySpec) (*key, error) {
	if spec.Type != "" && spec.Type != "aes256-gcm96" {
		return nil, invalid("create", name, "memkms supports only aes256-gcm96 keys, not "+spec.Type)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.keys[name]; k != nil {
		return k, nil
	}
	k := &key{derived: spec.Derived, minDecrypt: 1, versions: map[int]*version{}}
	addVersion(k)
	m.keys[name] = k
	return k, nil
}

// addVersion adds the next version to k; the KMS lock is held. The map is
// replaced, not changed, so snapshots taken before stay valid.
func addVersion(k *key) {
	vs := make(map[int]*version, len(k.versions)+1)
	for v, kv := range k.versions {
		vs[v] = kv
	}
	kv := &version{enc: make([]byte, 32), hmac: make([]byte, 32)}
	rand.Read(kv.enc)
	rand.Read(kv.hmac)
	k.latest++
	vs[k.latest] = kv
	k.versions = vs
}

// ReadKey returns key's metadata, or an error wrapping kms.ErrNotFound.
// Versions lists the versions that may still decrypt (from
// min_decryption_version on), as Vault does.
func (m *KMS) ReadKey(ctx context.Context, name string) (kms.KeyInfo, error) {
	k, err := m.existingKey(ctx, "read", name, fmt.Errorf("read transit key %q: %w", name, kms.ErrNotFound))
	if err != nil {
		return kms.KeyInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ki := kms.KeyInfo{
		Name:                 name,
		Type:                 "aes256-gcm96",
		LatestVersion:        k.latest,
		MinDecryptionVersion: k.minDecrypt,
		MinEncryptionVersion: k.minEncrypt,
		Derived:              k.derived,
		DeletionAllowed:      k.deletionAllowed,
		AutoRotatePeriod:     strconv.FormatInt(k.autoRotate, 10),
	}
	for v := range k.versions {
		if v >= k.minDecrypt {
			ki.Versions = append(ki.Versions, v)
		}
	}
	slices.Sort(ki.Versions)
	return ki, nil
}

// Rotate adds a version to key and returns it.
func (m *KMS) Rotate(ctx context.Context, name string) (int, error) {
	k, err := m.existingKey(ctx, "rotate", name, invalid("rotate", name, "key not found"))
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	addVersion(k)
	return k.latest, nil
}

// Configure applies min_decryption_version, min_encryption_version,
// deletion_allowed and auto_rotate_period (seconds) to key, refusing what
// Vault refuses (a version above the latest, a minimum decryption version
// above the minimum encryption version) with kms.ErrInvalid. Other fields
// are refused too.
func (m *KMS) Configure(ctx context.Context, name string, cfg map[string]any) error {
	k, err := m.existingKey(ctx, "config", name, invalid("config", name, "no existing key named "+name+" could be found"))
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := *k
	for f, raw := range cfg {
		n, ok := toInt(raw)
		switch f {
		case "min_decryption_version":
			if !ok || n < 0 {
				return invalid("config", name, "min decryption version cannot be negative")
			}
			if n == 0 {
				n = 1
			}
			if n > int64(k.latest) {
				return invalid("config", name, fmt.Sprintf("cannot set min decryption version of %d, latest key version is %d", n, k.latest))
			}
			next.minDecrypt = int(n)
		case "min_encryption_version":
			if !ok || n < 0 {
				return invalid("config", name, "min encryption version cannot be negative")
			}
			if n > int64(k.latest) {
				return invalid("config", name, fmt.Sprintf("cannot set min encryption version of %d, latest key version is %d", n, k.latest))
			}
			next.minEncrypt = int(n)
		case "deletion_allowed":
			b, isBool := raw.(bool)
			if !isBool {
				return invalid("config", name, "deletion_allowed is not a boolean")
			}
			next.deletionAllowed = b
		case "auto_rotate_period":
			if !ok || (n != 0 && n < 3600) {
				return invalid("config", name, "auto rotate period must be 0 to disable or at least an hour")
			}
			next.autoRotate = n
		default:
			return invalid("config", name, "memkms does not support the field "+f)
		}
	}
	if next.minEncrypt > 0 && next.minEncrypt < next.minDecrypt {
		return invalid("config", name, "min decryption version should not be less then min available encryption version")
	}
	*k = next
	return nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		return int64(n), n == float64(int64(n))
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// checkKeyName refuses names that are not one path segment, as transit
// does before any call.
func checkKeyName(key string) error { return kms.CheckKeyName(key) }
