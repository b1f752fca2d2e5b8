package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// The package's tests share one real Vault dev server (started on first
// use, stopped by TestMain). Tests that need Vault FAIL if the binary is
// missing; they never fall back to a fake.
var shared struct {
	once sync.Once
	v    *devenv.Vault
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.v != nil {
		_ = shared.v.Stop()
	}
	os.Exit(code)
}

// realVault returns the shared Vault dev server.
func realVault(t testing.TB) *devenv.Vault {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		shared.v, shared.err = devenv.StartVault(ctx, devenv.VaultOptions{})
		if shared.err == nil {
			shared.err = setupKeys(ctx, shared.v)
		}
	})
	if shared.err != nil {
		t.Fatalf("this test needs a real Vault (devenv): %v", shared.err)
	}
	return shared.v
}

// setupKeys creates the envelope KEK (derived) and the demo's legacy key.
func setupKeys(ctx context.Context, v *devenv.Vault) error {
	c, err := v.Client()
	if err != nil {
		return err
	}
	tc := transit.New(c, transit.Options{})
	if err := tc.EnsureKey(ctx, DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		return err
	}
	return tc.EnsureKey(ctx, DefaultLegacyKEK, transit.KeySpec{Derived: false})
}

// vaultKeys returns a KMSKeys on v, wrapped in a pass-through counter.
func vaultKeys(t testing.TB, v *devenv.Vault) *countingKeys {
	t.Helper()
	c, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	return &countingKeys{KeyService: NewKMSKeys(transit.New(c, transit.Options{}))}
}

// vaultTransit returns the shared Vault's keys (as vaultKeys) and a
// transit client on it, for tests that also manage keys; it first creates
// the derived KEKs keks.
func vaultTransit(t testing.TB, keks ...string) (*countingKeys, *transit.Client) {
	t.Helper()
	v := realVault(t)
	c, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	tc := transit.New(c, transit.Options{})
	for _, kek := range keks {
		if err := tc.EnsureKey(context.Background(), kek, transit.KeySpec{Derived: true}); err != nil {
			t.Fatal(err)
		}
	}
	return vaultKeys(t, v), tc
}

// countingKeys passes every call through to a real KeyService and counts
// them (it is not a fake: the keys come from Vault).
type countingKeys struct {
	KeyService
	dataKeys, unwraps, unwrappedItems atomic.Int64
}

func (c *countingKeys) NewDataKey(ctx context.Context, kek string, d []byte) (DataKey, error) {
	c.dataKeys.Add(1)
	return c.KeyService.NewDataKey(ctx, kek, d)
}

func (c *countingKeys) Unwrap(ctx context.Context, kek string, keys []WrappedKey) ([]UnwrappedKey, error) {
	c.unwraps.Add(1)
	c.unwrappedItems.Add(int64(len(keys)))
	return c.KeyService.Unwrap(ctx, kek, keys)
}

// inMemoryKeyServiceForTests is a LOCAL, IN-MEMORY stand-in for Vault
// transit, for pure-crypto tests and benchmarks only. It wraps DEKs with
// AES-GCM under a per-(KEK, context) key derived from a random local root,
// in the vault:v1:<base64> shape. No test that claims to test against Vault
// uses it.
type inMemoryKeyServiceForTests struct {
	root  []byte
	fixed map[string][]byte // wrapped -> DEK, for golden vectors
}

func newInMemoryKeyServiceForTests() *inMemoryKeyServiceForTests {
	root := make([]byte, 32)
	_, _ = rand.Read(root)
	return &inMemoryKeyServiceForTests{root: root, fixed: map[string][]byte{}}
}

func (m *inMemoryKeyServiceForTests) Mount() string { return "transit" }

func (m *inMemoryKeyServiceForTests) kekAEAD(kek string, d []byte) cipher.AEAD {
	h := hmac.New(sha256.New, m.root)
	fmt.Fprintf(h, "%d:%s|%d:%s", len(kek), kek, len(d), d)
	block, _ := aes.NewCipher(h.Sum(nil))
	g, _ := cipher.NewGCM(block)
	return g
}

func (m *inMemoryKeyServiceForTests) NewDataKey(_ context.Context, kek string, d []byte) (DataKey, error) {
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	g := m.kekAEAD(kek, d)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	w := g.Seal(nonce, nonce, dek, nil)
	return DataKey{Plaintext: dek, Wrapped: "vault:v1:" + base64.StdEncoding.EncodeToString(w)}, nil
}

func (m *inMemoryKeyServiceForTests) Unwrap(_ context.Context, kek string, keys []WrappedKey) ([]UnwrappedKey, error) {
	out := make([]UnwrappedKey, len(keys))
	for i, k := range keys {
		if dek, ok := m.fixed[k.Wrapped]; ok {
			out[i].Plaintext = append([]byte(nil), dek...)
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k.Wrapped, "vault:v1:"))
		if err != nil || len(b) < 12 {
			out[i].Err = errors.New("in-memory test keys: malformed")
			continue
		}
		pt, err := m.kekAEAD(kek, k.Context).Open(nil, b[:12], b[12:], nil)
		if err != nil {
			out[i].Err = errors.New("in-memory test keys: cipher: message authentication failed")
			continue
		}
		out[i].Plaintext = pt
	}
	return out, nil
}

// mustIs fails unless errors.Is(err, target) for every target.
func mustIs(t testing.TB, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error matching %v, got nil", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q does not match %v", err, target)
		}
	}
}

// cloneRecord deep-copies a record so tests can tamper with it.
func cloneRecord(r Record) Record {
	c := Record{Topic: r.Topic, Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...)}
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, Header{Key: h.Key, Value: append([]byte(nil), h.Value...)})
	}
	return c
}

// setHeader replaces (or adds) header name.
func setHeader(r *Record, name string, value []byte) {
	for i := range r.Headers {
		if r.Headers[i].Key == name {
			r.Headers[i].Value = value
			return
		}
	}
	r.Headers = append(r.Headers, Header{Key: name, Value: value})
}

func hdr(r Record, name string) string {
	v, _ := HeaderValue(r.Headers, name)
	return string(v)
}
