package memkms_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/kms/memkms"
)

// memkms is a KMS for envelope's KMSKeys.
var _ envelope.KMS = (*memkms.KMS)(nil)

func newKMS(t *testing.T, keys map[string]bool) (*memkms.KMS, context.Context) {
	t.Helper()
	m := memkms.New(memkms.Options{})
	ctx := context.Background()
	for name, derived := range keys {
		if err := m.EnsureKey(ctx, name, kms.KeySpec{Derived: derived}); err != nil {
			t.Fatal(err)
		}
	}
	return m, ctx
}

func TestRoundTripAADAndMalformed(t *testing.T) {
	m, ctx := newKMS(t, map[string]bool{"k": false})
	sealed, err := m.Encrypt(ctx, "k", []kms.Item{{Plaintext: []byte("a"), AAD: []byte("x")}, {Plaintext: []byte("b")}})
	if err != nil || sealed[0].Err != nil || sealed[0].KeyVersion != 1 {
		t.Fatalf("encrypt: %v %+v", err, sealed)
	}
	if v, err := kms.Version(sealed[1].Ciphertext); err != nil || v != 1 {
		t.Fatalf("ciphertext %q: %d %v", sealed[1].Ciphertext, v, err)
	}
	got, err := m.Decrypt(ctx, "k", []kms.Ciphertext{
		{Ciphertext: sealed[0].Ciphertext, AAD: []byte("x")},
		{Ciphertext: sealed[0].Ciphertext, AAD: []byte("y")},
		{Ciphertext: sealed[1].Ciphertext},
		{Ciphertext: "plain"},
		{Ciphertext: "vault:v1:!!"},
		{Ciphertext: "vault:v7:" + sealed[1].Ciphertext[len("vault:v1:"):]},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Plaintext) != "a" || got[0].Err != nil || string(got[2].Plaintext) != "b" {
		t.Fatalf("round trip: %+v", got)
	}
	for i, want := range map[int]error{1: kms.ErrDecrypt, 3: kms.ErrMalformed, 4: kms.ErrMalformed, 5: kms.ErrMalformed} {
		var ie *kms.ItemError
		if !errors.Is(got[i].Err, want) || !errors.As(got[i].Err, &ie) || ie.Index != i {
			t.Errorf("item %d: %v, want %v", i, got[i].Err, want)
		}
	}
	if _, err := m.Decrypt(ctx, "missing", []kms.Ciphertext{{Ciphertext: sealed[1].Ciphertext}}); !errors.Is(err, kms.ErrInvalid) {
		t.Errorf("missing key: %v, want ErrInvalid", err)
	}
	if _, err := m.Encrypt(ctx, "missing", []kms.Item{{Plaintext: []byte("x")}}); !errors.Is(err, kms.ErrDenied) {
		t.Errorf("encrypt with a missing key: %v, want ErrDenied", err)
	}
	if _, err := m.Encrypt(ctx, "../sys", []kms.Item{{Plaintext: []byte("x")}}); err == nil {
		t.Error("path-like key name accepted")
	}
}

func TestRotateRetireRewrapHMAC(t *testing.T) {
	m, ctx := newKMS(t, map[string]bool{"r": false})
	old, _ := m.Encrypt(ctx, "r", []kms.Item{{Plaintext: []byte("p")}})
	if v, err := m.Rotate(ctx, "r"); err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	rw, err := m.Rewrap(ctx, "r", []kms.Ciphertext{{Ciphertext: old[0].Ciphertext}})
	if err != nil || rw[0].Err != nil || rw[0].KeyVersion != 2 {
		t.Fatalf("rewrap: %v %+v", err, rw)
	}
	if err := m.Configure(ctx, "r", map[string]any{"min_decryption_version": 3}); !errors.Is(err, kms.ErrInvalid) {
		t.Fatalf("min_decryption_version above latest: %v", err)
	}
	if err := m.Configure(ctx, "r", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Decrypt(ctx, "r", []kms.Ciphertext{{Ciphertext: old[0].Ciphertext}, {Ciphertext: rw[0].Ciphertext}})
	if !errors.Is(got[0].Err, kms.ErrVersionRetired) || got[0].KeyVersion != 1 || string(got[1].Plaintext) != "p" {
		t.Fatalf("after retiring v1: %+v", got)
	}
	ki, err := m.ReadKey(ctx, "r")
	if err != nil || ki.LatestVersion != 2 || ki.MinDecryptionVersion != 2 || len(ki.Versions) != 1 {
		t.Fatalf("key info: %+v %v", ki, err)
	}
	h, errs, err := m.HMAC(ctx, "r", [][]byte{[]byte("a"), []byte("a"), []byte("b")})
	if err != nil || errs[0] != nil || h[0] != h[1] || h[0] == h[2] || !kms.IsCiphertext(h[0]) {
		t.Fatalf("hmac: %v %v %v", h, errs, err)
	}
	if _, err := m.ReadKey(ctx, "missing"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestDerivedKeysAndDataKeys(t *testing.T) {
	m, ctx := newKMS(t, map[string]bool{"d": true})
	s, _ := m.Encrypt(ctx, "d", []kms.Item{{Plaintext: []byte("v"), Context: []byte("t1")}})
	got, _ := m.Decrypt(ctx, "d", []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, Context: []byte("t2")}})
	if !errors.Is(got[0].Err, kms.ErrDecrypt) {
		t.Fatalf("other context: %v", got[0].Err)
	}
	if _, err := m.Decrypt(ctx, "d", []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, Context: []byte("t1")}, {Ciphertext: s[0].Ciphertext}}); !errors.Is(err, kms.ErrInvalid) {
		t.Fatalf("mixed context: %v", err)
	}
	if r, _ := m.Encrypt(ctx, "d", []kms.Item{{Plaintext: []byte("v")}}); !errors.Is(r[0].Err, kms.ErrItem) {
		t.Fatalf("derived key without context: %v", r[0].Err)
	}
	dk, err := m.NewDataKey(ctx, "d", 256, false, []byte("topic"))
	if err != nil || len(dk.Plaintext) != 32 || dk.KeyVersion != 1 {
		t.Fatalf("datakey: %v %+v", err, dk)
	}
	un, _ := m.Decrypt(ctx, "d", []kms.Ciphertext{{Ciphertext: dk.Ciphertext, Context: []byte("topic")}})
	if !bytes.Equal(un[0].Plaintext, dk.Plaintext) {
		t.Fatal("datakey does not unwrap to its plaintext")
	}
	if w, err := m.NewDataKey(ctx, "d", 256, true, []byte("topic")); err != nil || w.Plaintext != nil {
		t.Fatalf("wrapped-only datakey: %v %+v", err, w)
	}
	if _, err := m.NewDataKey(ctx, "d", 256, false, nil); !errors.Is(err, kms.ErrInvalid) {
		t.Fatalf("datakey without context on a derived key: %v", err)
	}
}

func TestUnavailableAndCalls(t *testing.T) {
	m, ctx := newKMS(t, map[string]bool{"k": false})
	m.SetUnavailable(true)
	if _, err := m.Encrypt(ctx, "k", []kms.Item{{Plaintext: []byte("x")}}); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("unavailable: %v", err)
	}
	if _, err := m.NewDataKey(ctx, "k", 256, false, nil); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("unavailable datakey: %v", err)
	}
	// Like transit, a call without items does not reach the KMS.
	if _, err := m.Encrypt(ctx, "k", nil); err != nil {
		t.Fatalf("empty call: %v", err)
	}
	m.FailCalls(kms.ErrDenied)
	if _, err := m.Decrypt(ctx, "k", []kms.Ciphertext{{Ciphertext: "vault:v1:AAAA"}}); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("denied: %v", err)
	}
	m.SetUnavailable(false)
	if r, err := m.Encrypt(ctx, "k", []kms.Item{{Plaintext: []byte("x")}}); err != nil || r[0].Err != nil {
		t.Fatalf("available again: %v", err)
	}
	if n := m.Calls("encrypt"); n != 2 {
		t.Fatalf("encrypt calls = %d, want 2", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Encrypt(cctx, "k", []kms.Item{{Plaintext: []byte("x")}}); !errors.Is(err, context.Canceled) || kms.IsCallError(err) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestEnvelopeOverMemKMS seals and opens a record with envelope's KMSKeys
// over memkms: envelope needs no Vault to be tested.
func TestEnvelopeOverMemKMS(t *testing.T) {
	m, ctx := newKMS(t, map[string]bool{envelope.DefaultKEK: true})
	ks := envelope.NewKMSKeys(m)
	s, err := envelope.NewSealer(ks, envelope.SealerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := envelope.NewOpener(ks, envelope.OpenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	sealed, err := s.Seal(ctx, envelope.Record{Topic: "t", Key: []byte("k"), Value: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := o.Open(ctx, sealed); err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q %v", pt, err)
	}
	m.SetUnavailable(true)
	if _, err := s.Seal(ctx, envelope.Record{Topic: "t", Value: []byte("x")}); !errors.Is(err, kms.ErrUnavailable) || !errors.Is(err, envelope.ErrDataKey) {
		t.Fatalf("seal with the KMS down: %v", err)
	}
}
