package vaultkeyring

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/fpe"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// The tests in this file run against a real Vault dev server (devenv), one
// per test binary, started by the first test that needs it. They fail when
// the vault binary is missing.

type sharedVault struct {
	once sync.Once
	v    *devenv.Vault
	err  error
}

func (s *sharedVault) get(t *testing.T) *devenv.Vault {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		s.v, s.err = devenv.StartVault(ctx, devenv.VaultOptions{})
	})
	if s.err != nil {
		t.Fatalf("start Vault dev server: %v", s.err)
	}
	return s.v
}

var testVault sharedVault

func TestMain(m *testing.M) {
	code := m.Run()
	if testVault.v != nil {
		_ = testVault.v.Stop()
	}
	os.Exit(code)
}

// provision ensures domain d on kr and rotates it rotations times.
func provision(t *testing.T, ctx context.Context, kr *Keyring, d string, rotations int) {
	t.Helper()
	if _, err := kr.Ensure(ctx, d); err != nil {
		t.Fatal(err)
	}
	for range rotations {
		if _, err := kr.Rotate(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
}

// mustRead returns the KV record of domain d.
func mustRead(t *testing.T, ctx context.Context, kr *Keyring, d string) *record {
	t.Helper()
	rec, err := kr.read(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// provisionedRecord is rootSetup with domain d provisioned (see
// provision) and its KV record read.
func provisionedRecord(t *testing.T, d string, rotations int) (*vaultclient.Client, *Keyring, context.Context, *record) {
	t.Helper()
	root, kr, ctx := rootSetup(t)
	provision(t, ctx, kr, d, rotations)
	return root, kr, ctx, mustRead(t, ctx, kr, d)
}

// rootSetup returns a root client and a keyring over it with the KEK made.
func rootSetup(t *testing.T) (*vaultclient.Client, *Keyring, context.Context) {
	t.Helper()
	v := testVault.get(t)
	root, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	kr := New(root, Options{})
	if err := kr.EnsureKEK(ctx); err != nil {
		t.Fatal(err)
	}
	return root, kr, ctx
}

func TestVaultRotation(t *testing.T) {
	root, kr, ctx := rootSetup(t)
	const d = "payments.rotation_test"
	const card = "4111 1111 1111 1111"
	f := fpe.Format{Mode: fpe.ModeFull}

	if created, err := kr.Ensure(ctx, d); err != nil || !created {
		t.Fatalf("Ensure = %v, %v; want created", created, err)
	}
	if created, err := kr.Ensure(ctx, d); err != nil || created {
		t.Fatalf("second Ensure = %v, %v; want existing", created, err)
	}
	if err := kr.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	svc := kr.Service()
	tok1, v, err := svc.Encrypt(d, f, card)
	if err != nil || v != 1 {
		t.Fatalf("encrypt with v1: version %d, %v", v, err)
	}

	// A second gateway process loaded before the rotation.
	other := New(root, Options{})
	if err := other.Load(ctx, d); err != nil {
		t.Fatal(err)
	}

	nv, err := kr.Rotate(ctx, d)
	if err != nil || nv != 2 {
		t.Fatalf("Rotate = %d, %v", nv, err)
	}
	tok2, v, err := svc.Encrypt(d, f, card)
	if err != nil || v != 2 {
		t.Fatalf("after rotation: version %d, %v", v, err)
	}
	if tok2 == tok1 {
		t.Fatal("v2 token equals v1 token")
	}
	for _, c := range []struct {
		v   int
		tok string
	}{{1, tok1}, {2, tok2}} {
		got, err := svc.Decrypt(d, f, c.v, c.tok)
		if err != nil || got != card {
			t.Fatalf("decrypt v%d: %q, %v", c.v, got, err)
		}
	}
	// Decrypting a v1 token with v2 gives a wrong but valid-looking number:
	// FPE has no integrity, the version must travel with the token.
	if got, err := svc.Decrypt(d, f, 2, tok1); err != nil || got == card {
		t.Fatalf("v1 token under v2: %q, %v", got, err)
	}

	// The other process keeps v1 until it refreshes.
	if cur, _ := other.Service().Current(d); cur != 1 {
		t.Fatalf("other process current = %d before Refresh", cur)
	}
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, _ := other.Service().Current(d); cur != 2 {
		t.Fatalf("other process current = %d after Refresh", cur)
	}
	if got, err := other.Service().Decrypt(d, f, 2, tok2); err != nil || got != card {
		t.Fatalf("other process decrypt v2: %v", err)
	}
	if got, _, _ := other.Service().Encrypt(d, f, card); got != tok2 {
		t.Fatal("processes disagree on the v2 token")
	}
	// A refresh without changes unwraps nothing and keeps working.
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	// A fresh start sees both versions.
	fresh := New(root, Options{})
	if err := fresh.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Service().Decrypt(d, f, 1, tok1); err != nil || got != card {
		t.Fatalf("fresh keyring decrypt v1: %v", err)
	}
}

func TestVaultConcurrentRotationsLoseNothing(t *testing.T) {
	root, kr, ctx := rootSetup(t)
	const d = "payments.cas_test"
	provision(t, ctx, kr, d, 0)
	krs := []*Keyring{kr, New(root, Options{}), New(root, Options{})}
	var wg sync.WaitGroup
	got := make(chan int, 9)
	for _, k := range krs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				v, err := k.Rotate(ctx, d)
				if err != nil {
					t.Error(err)
					return
				}
				got <- v
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := map[int]bool{}
	for v := range got {
		if seen[v] {
			t.Fatalf("version %d returned twice", v)
		}
		seen[v] = true
	}
	if err := kr.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	if cur, _ := kr.Service().Current(d); cur != 10 {
		t.Fatalf("current = %d, want 10", cur)
	}
	rec := mustRead(t, ctx, kr, d)
	for v := 1; v <= 10; v++ {
		if rec.wrapped[v] == "" {
			t.Fatalf("version %d lost", v)
		}
	}
}

func TestVaultKVHoldsOnlyWrappedKeys(t *testing.T) {
	root, kr, ctx := rootSetup(t)
	const d = "payments.storage_test"
	provision(t, ctx, kr, d, 1)
	if err := kr.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	raw, err := root.Read(ctx, "secret/data/kafkagate/fpe/"+d)
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := json.Marshal(raw)
	data, _ := raw["data"].(map[string]any)
	for k, val := range data {
		switch k {
		case "v1", "v2":
			s, _ := val.(string)
			if !strings.HasPrefix(s, "vault:v") || !transit.IsCiphertext(s) {
				t.Errorf("field %s is not a wrapped key", k)
			}
		case "current", "kek":
		default:
			t.Errorf("unexpected field %q in the KV record", k)
		}
	}
	if len(data) != 4 {
		t.Errorf("record has %d fields, want v1, v2, current, kek", len(data))
	}

	// Unwrap with the root token to learn the plaintext keys, then check
	// that no encoding of them is stored, and that they are the keys the
	// keyring uses.
	tr := transit.New(root, transit.Options{})
	for v := 1; v <= 2; v++ {
		w, _ := data["v"+strconv.Itoa(v)].(string)
		opened, err := tr.Decrypt(ctx, DefaultKEK, []transit.Ciphertext{{Ciphertext: w, Context: kekContext(d, v)}})
		if err != nil || opened[0].Err != nil {
			t.Fatalf("root unwrap v%d: %v %v", v, err, opened[0].Err)
		}
		key := opened[0].Plaintext
		if len(key) != fpe.KeySize {
			t.Fatalf("unwrapped key has %d bytes", len(key))
		}
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(key),
			base64.RawStdEncoding.EncodeToString(key),
			base64.URLEncoding.EncodeToString(key),
			hex.EncodeToString(key),
			string(key),
		} {
			if strings.Contains(string(dump), enc) || strings.Contains(strings.ToLower(string(dump)), strings.ToLower(enc)) {
				t.Fatalf("KV record contains the plaintext key of v%d", v)
			}
		}
		ref, err := fpe.NewCipher(key, d, v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ref.Encrypt(fpe.Format{}, "4111111111111111")
		tok, err := kr.loaded[d][v].c.Encrypt(fpe.Format{}, "4111111111111111")
		if err != nil || tok != want {
			t.Fatalf("keyring's v%d key is not the stored one", v)
		}
		// The Service has that key too.
		if pt, err := kr.Service().Decrypt(d, fpe.Format{}, v, want); err != nil || pt != "4111111111111111" {
			t.Fatalf("service's v%d key is not the stored one: %v", v, err)
		}
		// The wrapped key is bound to its domain and version by the
		// derived KEK's context.
		opened, err = tr.Decrypt(ctx, DefaultKEK, []transit.Ciphertext{{Ciphertext: w, Context: kekContext("other.domain", v)}})
		if err == nil && opened[0].Err == nil {
			t.Fatalf("v%d unwrapped under another domain's context", v)
		}
	}
}

func TestVaultTamperedRecordDoesNotLoad(t *testing.T) {
	const d = "payments.tamper_test"
	root, _, ctx, rec := provisionedRecord(t, d, 1)
	// Put v2's wrapped key in the v1 slot: its context no longer matches.
	if _, err := root.Write(ctx, "secret/data/kafkagate/fpe/"+d, map[string]any{"data": map[string]any{
		"v1": rec.wrapped[2], "v2": rec.wrapped[2], "current": 2, "kek": DefaultKEK,
	}}); err != nil {
		t.Fatal(err)
	}
	k := New(root, Options{})
	err := k.Load(ctx, d)
	if !errors.Is(err, transit.ErrDecrypt) {
		t.Fatalf("Load of a tampered record: %v, want transit.ErrDecrypt", err)
	}
	if len(k.Service().Domains()) != 0 {
		t.Fatal("a failed Load changed the Service")
	}
	// A missing domain is reported as such.
	err = k.Load(ctx, "payments.never_provisioned")
	if !errors.Is(err, ErrNotProvisioned) || !errors.Is(err, vaultclient.ErrNotFound) {
		t.Fatalf("Load of a missing domain: %v", err)
	}
}

func TestVaultTokenWithoutDecryptCannotStart(t *testing.T) {
	root, kr, ctx := rootSetup(t)
	v := testVault.get(t)
	const d = "payments.denied_test"
	provision(t, ctx, kr, d, 0)
	// A provisioning policy: it may create wrapped keys and records, but
	// not decrypt with the KEK.
	policy := `
path "secret/data/kafkagate/fpe/*" { capabilities = ["create", "read", "update"] }
path "transit/datakey/wrapped/kafkagate-fpe-kek" { capabilities = ["update"] }
`
	if _, err := root.Write(ctx, "sys/policies/acl/fpe-provisioner", map[string]any{"policy": policy}); err != nil {
		t.Fatal(err)
	}
	// vaultclient.Client.Write returns only a response's data, and a token
	// comes back in its auth block, so this one call goes through the API.
	sec, err := root.API().Logical().WriteWithContext(ctx, "auth/token/create", map[string]any{
		"policies": []string{"fpe-provisioner"},
		"ttl":      "10m",
	})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("create token: %v", err)
	}
	limited, err := vaultclient.New(vaultclient.Config{Addr: v.Addr, Token: sec.Auth.ClientToken, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lk := New(limited, Options{})
	err = lk.Load(ctx, d)
	if !errors.Is(err, vaultclient.ErrDenied) {
		t.Fatalf("Load with a token lacking decrypt: %v, want vaultclient.ErrDenied", err)
	}
	if !strings.Contains(err.Error(), DefaultKEK) {
		t.Errorf("error does not name the KEK: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	// The same token can provision a domain without ever seeing its key.
	const d2 = "payments.provisioned_by_limited_token"
	if created, err := lk.Ensure(ctx, d2); err != nil || !created {
		t.Fatalf("Ensure with the provisioning token: %v, %v", created, err)
	}
	if _, err := lk.Rotate(ctx, d2); err != nil {
		t.Fatalf("Rotate with the provisioning token: %v", err)
	}
	if err := lk.Load(ctx, d2); !errors.Is(err, vaultclient.ErrDenied) {
		t.Fatalf("Load of the new domain: %v", err)
	}
	// The root keyring can load what the provisioner made.
	if err := kr.Load(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if cur, _ := kr.Service().Current(d2); cur != 2 {
		t.Fatalf("current = %d", cur)
	}
}

// TestVaultCASMismatchRecognised checks that KV v2's check-and-set
// refusal is recognised (the retry loops of Ensure and Rotate rely on it).
func TestVaultCASMismatchRecognised(t *testing.T) {
	const d = "payments.cas_refusal_test"
	_, kr, ctx, rec := provisionedRecord(t, d, 0)
	for _, cas := range []int{0, rec.kvVersion + 1} {
		err := kr.write(ctx, d, rec, cas)
		if !isCASMismatch(err) {
			t.Fatalf("write with cas=%d (record at %d): %v, want a check-and-set refusal", cas, rec.kvVersion, err)
		}
	}
	if err := kr.write(ctx, d, rec, rec.kvVersion); err != nil {
		t.Fatalf("write with the right cas: %v", err)
	}
}
