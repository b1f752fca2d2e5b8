package transit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/kms/memkms"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// conformKMS is the method set that transit and memkms share.
type conformKMS interface {
	Mount() string
	Encrypt(ctx context.Context, key string, items []kms.Item) ([]kms.Sealed, error)
	Decrypt(ctx context.Context, key string, items []kms.Ciphertext) ([]kms.Opened, error)
	Rewrap(ctx context.Context, key string, items []kms.Ciphertext) ([]kms.Sealed, error)
	HMAC(ctx context.Context, key string, inputs [][]byte) ([]string, []error, error)
	NewDataKey(ctx context.Context, key string, bits int, wrappedOnly bool, ctxt []byte) (kms.DataKey, error)
	EnsureKey(ctx context.Context, key string, spec kms.KeySpec) error
	ReadKey(ctx context.Context, key string) (kms.KeyInfo, error)
	Rotate(ctx context.Context, key string) (int, error)
	Configure(ctx context.Context, key string, cfg map[string]any) error
}

var (
	_ conformKMS = (*transit.Client)(nil)
	_ conformKMS = (*memkms.KMS)(nil)
)

// kind names the error class of err: "ok", a kms sentinel, or "other".
func kind(err error) string {
	if err == nil {
		return "ok"
	}
	for _, k := range []struct {
		err  error
		name string
	}{
		{kms.ErrDecrypt, "decrypt"}, {kms.ErrVersionRetired, "retired"}, {kms.ErrMalformed, "malformed"}, {kms.ErrItem, "item"},
		{kms.ErrUnavailable, "unavailable"}, {kms.ErrDenied, "denied"}, {kms.ErrNotFound, "notfound"}, {kms.ErrInvalid, "invalid"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

// recorder collects what a case observes; both KMSs must observe the same.
type recorder struct {
	t   *testing.T
	obs []string
}

func (r *recorder) see(format string, args ...any) {
	r.obs = append(r.obs, fmt.Sprintf(format, args...))
}

// must fails the case on an unexpected error of a set-up step.
func (r *recorder) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *recorder) sealed(what string, res []kms.Sealed, err error) {
	parts := []string{kind(err)}
	for _, s := range res {
		if s.Err != nil {
			parts = append(parts, kind(s.Err))
		} else {
			v, verr := kms.Version(s.Ciphertext)
			parts = append(parts, fmt.Sprintf("v%d/%d/%s", s.KeyVersion, v, kind(verr)))
		}
	}
	r.see("%s: %s", what, strings.Join(parts, " "))
}

func (r *recorder) opened(what string, res []kms.Opened, err error, want ...string) {
	parts := []string{kind(err)}
	for i, o := range res {
		if o.Err != nil {
			parts = append(parts, fmt.Sprintf("%s@v%d", kind(o.Err), o.KeyVersion))
			continue
		}
		match := "?"
		if i < len(want) && string(o.Plaintext) == want[i] {
			match = "="
		}
		parts = append(parts, fmt.Sprintf("%s@v%d", match, o.KeyVersion))
	}
	r.see("%s: %s", what, strings.Join(parts, " "))
}

// conformCase is one behaviour: run drives a KMS with key names that start
// with prefix and records what it sees; want is what Vault and memkms
// must both record.
type conformCase struct {
	name string
	run  func(ctx context.Context, r *recorder, k conformKMS, key string)
	want []string
}

var conformCases = []conformCase{
	{
		name: "round trip with and without AAD",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a")}, {Plaintext: []byte("b"), AAD: []byte("ad")}, {Plaintext: []byte{}}})
			r.sealed("encrypt", s, err)
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext}, {Ciphertext: s[1].Ciphertext, AAD: []byte("ad")}, {Ciphertext: s[2].Ciphertext}})
			r.opened("decrypt", o, err, "a", "b", "")
			r.see("distinct ciphertexts: %v", s[0].Ciphertext != s[1].Ciphertext)
		},
		want: []string{"encrypt: ok v1/1/ok v1/1/ok v1/1/ok", "decrypt: ok =@v1 =@v1 =@v1", "distinct ciphertexts: true"},
	},
	{
		name: "AAD mismatch and swapped ciphertexts",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			r.must(k.EnsureKey(ctx, key+"-other", kms.KeySpec{}))
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a"), AAD: []byte("x")}, {Plaintext: []byte("b")}})
			r.must(err)
			other, err := k.Encrypt(ctx, key+"-other", []kms.Item{{Plaintext: []byte("c")}})
			r.must(err)
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{
				{Ciphertext: s[0].Ciphertext, AAD: []byte("y")},
				{Ciphertext: s[0].Ciphertext},
				{Ciphertext: s[1].Ciphertext, AAD: []byte("x")},
				{Ciphertext: other[0].Ciphertext},
				{Ciphertext: s[1].Ciphertext},
			})
			r.opened("decrypt", o, err, "", "", "", "", "b")
			// Every item failing is still a per-item result.
			o, err = k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, AAD: []byte("z")}})
			r.opened("all fail", o, err)
		},
		want: []string{"decrypt: ok decrypt@v1 decrypt@v1 decrypt@v1 decrypt@v1 =@v1", "all fail: ok decrypt@v1"},
	},
	{
		name: "malformed ciphertexts",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a")}})
			r.must(err)
			body := strings.TrimPrefix(s[0].Ciphertext, "vault:v1:")
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{
				{Ciphertext: "not-a-ciphertext"},
				{Ciphertext: "vault:v1:!!!not base64"},
				{Ciphertext: "vault:v9:" + body},
				{Ciphertext: "vault:v1:" + body[:len(body)-8] + "AAAAAAAA"},
				{Ciphertext: "vault:v1:" + base64.StdEncoding.EncodeToString(make([]byte, 8))},
				{Ciphertext: "vault:v1:" + base64.StdEncoding.EncodeToString(make([]byte, 20))},
				{Ciphertext: s[0].Ciphertext},
			})
			r.opened("decrypt", o, err, "", "", "", "", "", "", "a")
			rw, err := k.Rewrap(ctx, key, []kms.Ciphertext{{Ciphertext: "vault:v1:!!!not base64"}, {Ciphertext: s[0].Ciphertext}})
			r.sealed("rewrap", rw, err)
		},
		want: []string{"decrypt: ok malformed@v0 malformed@v1 malformed@v9 decrypt@v1 malformed@v1 decrypt@v1 =@v1", "rewrap: ok malformed v1/1/ok"},
	},
	{
		name: "rotate, rewrap, retire",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			old, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("p")}, {Plaintext: []byte("q"), AAD: []byte("ad")}})
			r.must(err)
			v, err := k.Rotate(ctx, key)
			r.see("rotate: %d %s", v, kind(err))
			cur, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("p")}})
			r.sealed("encrypt after rotate", cur, err)
			rw, err := k.Rewrap(ctx, key, []kms.Ciphertext{{Ciphertext: old[0].Ciphertext}, {Ciphertext: old[1].Ciphertext, AAD: []byte("ad")}})
			r.sealed("rewrap", rw, err)
			r.see("configure above latest: %s", kind(k.Configure(ctx, key, map[string]any{"min_decryption_version": 3})))
			r.see("configure: %s", kind(k.Configure(ctx, key, map[string]any{"min_decryption_version": 2})))
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: old[0].Ciphertext}, {Ciphertext: rw[0].Ciphertext}, {Ciphertext: cur[0].Ciphertext}})
			r.opened("decrypt", o, err, "", "p", "p")
			rw, err = k.Rewrap(ctx, key, []kms.Ciphertext{{Ciphertext: old[0].Ciphertext}})
			r.sealed("rewrap retired", rw, err)
			ki, err := k.ReadKey(ctx, key)
			r.see("key: %s latest=%d min_dec=%d min_enc=%d versions=%v derived=%v type=%s", kind(err), ki.LatestVersion, ki.MinDecryptionVersion, ki.MinEncryptionVersion, ki.Versions, ki.Derived, ki.Type)
		},
		want: []string{
			"rotate: 2 ok",
			"encrypt after rotate: ok v2/2/ok",
			"rewrap: ok v2/2/ok decrypt",
			"configure above latest: invalid",
			"configure: ok",
			"decrypt: ok retired@v1 =@v2 =@v2",
			"rewrap retired: ok retired",
			"key: ok latest=2 min_dec=2 min_enc=0 versions=[2] derived=false type=aes256-gcm96",
		},
	},
	{
		name: "derived keys bind the context",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{Derived: true}))
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a"), Context: []byte("t1")}, {Plaintext: []byte("b"), Context: []byte("t2"), AAD: []byte("ad")}})
			r.sealed("encrypt", s, err)
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{
				{Ciphertext: s[0].Ciphertext, Context: []byte("t1")},
				{Ciphertext: s[0].Ciphertext, Context: []byte("t2")},
				{Ciphertext: s[1].Ciphertext, Context: []byte("t2"), AAD: []byte("ad")},
				{Ciphertext: s[1].Ciphertext, Context: []byte("t2")},
			})
			r.opened("decrypt", o, err, "a", "", "b", "")
			none, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a")}})
			r.sealed("encrypt without context", none, err)
			_, err = k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a"), Context: []byte("t1")}, {Plaintext: []byte("b")}})
			r.see("encrypt mixed: %s", kind(err))
			_, err = k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, Context: []byte("t1")}, {Ciphertext: s[0].Ciphertext}})
			r.see("decrypt mixed: %s", kind(err))
			rw, err := k.Rewrap(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, Context: []byte("t1")}, {Ciphertext: s[0].Ciphertext, Context: []byte("t9")}})
			r.sealed("rewrap", rw, err)
			ki, err := k.ReadKey(ctx, key)
			r.see("key: %s derived=%v", kind(err), ki.Derived)
		},
		want: []string{
			"encrypt: ok v1/1/ok v1/1/ok",
			"decrypt: ok =@v1 decrypt@v1 =@v1 decrypt@v1",
			"encrypt without context: ok item",
			"encrypt mixed: invalid",
			"decrypt mixed: invalid",
			"rewrap: ok v1/1/ok decrypt",
			"key: ok derived=true",
		},
	},
	{
		name: "a non-derived key ignores the context",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a"), Context: []byte("t1")}})
			r.sealed("encrypt", s, err)
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext}})
			r.opened("decrypt without", o, err, "a")
			o, err = k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: s[0].Ciphertext, Context: []byte("t2")}})
			r.opened("decrypt with another", o, err, "a")
		},
		want: []string{"encrypt: ok v1/1/ok", "decrypt without: ok =@v1", "decrypt with another: ok =@v1"},
	},
	{
		name: "data keys",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{Derived: true}))
			dk, err := k.NewDataKey(ctx, key, 256, false, []byte("topic"))
			r.see("datakey: %s len=%d v=%d", kind(err), len(dk.Plaintext), dk.KeyVersion)
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: dk.Ciphertext, Context: []byte("topic")}, {Ciphertext: dk.Ciphertext, Context: []byte("other")}})
			r.see("unwrap: %s %v %s", kind(err), len(o) == 2 && bytes.Equal(o[0].Plaintext, dk.Plaintext), kind(o[1].Err))
			w, err := k.NewDataKey(ctx, key, 128, true, []byte("topic"))
			r.see("wrapped only: %s plaintext=%v wrapped=%v", kind(err), w.Plaintext != nil, kms.IsCiphertext(w.Ciphertext))
			_, err = k.NewDataKey(ctx, key, 256, false, nil)
			r.see("no context: %s", kind(err))
			_, err = k.NewDataKey(ctx, key, 100, false, []byte("topic"))
			r.see("bad bits: %s", kind(err))
		},
		want: []string{"datakey: ok len=32 v=1", "unwrap: ok true decrypt", "wrapped only: ok plaintext=false wrapped=true", "no context: invalid", "bad bits: invalid"},
	},
	{
		name: "HMAC",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			r.must(k.EnsureKey(ctx, key, kms.KeySpec{}))
			h, errs, err := k.HMAC(ctx, key, [][]byte{[]byte("a"), []byte("a"), []byte("b")})
			r.see("hmac: %s %s %v %v %s", kind(err), kind(errors.Join(errs...)), h[0] == h[1], h[0] == h[2], h[0][:len("vault:v1:")])
			_, err = k.Rotate(ctx, key)
			r.must(err)
			h2, _, err := k.HMAC(ctx, key, [][]byte{[]byte("a")})
			r.see("after rotate: %s %v %s", kind(err), h2[0] == h[0], h2[0][:len("vault:v2:")])
		},
		want: []string{"hmac: ok ok true false vault:v1:", "after rotate: ok false vault:v2:"},
	},
	{
		name: "missing key",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			ct := "vault:v1:" + strings.Repeat("A", 40)
			_, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: ct}})
			r.see("decrypt: %s", kind(err))
			_, err = k.Rewrap(ctx, key, []kms.Ciphertext{{Ciphertext: ct}})
			r.see("rewrap: %s", kind(err))
			_, _, err = k.HMAC(ctx, key, [][]byte{[]byte("a")})
			r.see("hmac: %s", kind(err))
			_, err = k.NewDataKey(ctx, key, 256, false, nil)
			r.see("datakey: %s", kind(err))
			_, err = k.Rotate(ctx, key)
			r.see("rotate: %s", kind(err))
			r.see("configure: %s", kind(k.Configure(ctx, key, map[string]any{"min_decryption_version": 1})))
			_, err = k.ReadKey(ctx, key)
			r.see("read: %s", kind(err))
			// Only malformed items: nothing is sent, nothing fails as a whole.
			o, err := k.Decrypt(ctx, key, []kms.Ciphertext{{Ciphertext: "x"}})
			r.opened("decrypt malformed only", o, err)
			_, err = k.Encrypt(ctx, "../"+key, []kms.Item{{Plaintext: []byte("x")}})
			r.see("path-like name: %s", kind(err))
		},
		want: []string{"decrypt: invalid", "rewrap: invalid", "hmac: invalid", "datakey: invalid", "rotate: invalid", "configure: invalid", "read: notfound", "decrypt malformed only: ok malformed@v0", "path-like name: other"},
	},
	{
		name: "encrypt creates a missing key with a token that may",
		run: func(ctx context.Context, r *recorder, k conformKMS, key string) {
			s, err := k.Encrypt(ctx, key, []kms.Item{{Plaintext: []byte("a")}})
			r.sealed("encrypt", s, err)
			ki, err := k.ReadKey(ctx, key)
			r.see("key: %s derived=%v", kind(err), ki.Derived)
			s, err = k.Encrypt(ctx, key+"-d", []kms.Item{{Plaintext: []byte("a"), Context: []byte("c")}})
			r.sealed("encrypt with context", s, err)
			ki, err = k.ReadKey(ctx, key+"-d")
			r.see("key: %s derived=%v", kind(err), ki.Derived)
		},
		want: []string{"encrypt: ok v1/1/ok", "key: ok derived=false", "encrypt with context: ok v1/1/ok", "key: ok derived=true"},
	},
}

// runConformance runs every case against k and checks what it records.
func runConformance(t *testing.T, k conformKMS) {
	for i, c := range conformCases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			r := &recorder{t: t}
			c.run(ctx, r, k, fmt.Sprintf("conform-%d", i))
			if strings.Join(r.obs, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("observed:\n  %s\nwant:\n  %s", strings.Join(r.obs, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// The same behaviour table runs against real Vault transit (root token) and
// against memkms (with Upsert, as a root token may create keys), so the
// fake is faithful where the table looks. Both then fail closed with
// ErrUnavailable when the KMS is gone.

func TestConformanceVault(t *testing.T) {
	v, vc := testkit.VaultClient(t)
	tc := transit.New(vc, transit.Options{})
	runConformance(t, tc)
	_ = v.Stop()
	checkUnavailable(t, tc)
}

func TestConformanceMemKMS(t *testing.T) {
	mem := memkms.New(memkms.Options{Upsert: true})
	runConformance(t, mem)
	mem.SetUnavailable(true)
	checkUnavailable(t, mem)
}

func checkUnavailable(t *testing.T, k conformKMS) {
	t.Helper()
	ctx := context.Background()
	_, err := k.Encrypt(ctx, "conform-0", []kms.Item{{Plaintext: []byte("x")}})
	_, derr := k.Decrypt(ctx, "conform-0", []kms.Ciphertext{{Ciphertext: "vault:v1:AAAA"}})
	_, kerr := k.NewDataKey(ctx, "conform-0", 256, false, nil)
	if got := kind(err) + " " + kind(derr) + " " + kind(kerr); got != "unavailable unavailable unavailable" {
		t.Errorf("with the KMS gone: %s (%v)", got, err)
	}
}

// TestMemKMSDeniesLikeAGatewayToken checks that memkms without Upsert
// refuses to encrypt with a missing key as Vault refuses a token that may
// only update transit/encrypt (the gateway's).
func TestMemKMSDeniesLikeAGatewayToken(t *testing.T) {
	v, vc := testkit.VaultClient(t)
	ctx := context.Background()
	lim, _ := limitedClient(t, v, vc, "enc-update", `path "transit/encrypt/*" { capabilities = ["update"] }`)
	for name, k := range map[string]conformKMS{"vault": transit.New(lim, transit.Options{}), "memkms": memkms.New(memkms.Options{})} {
		_, err := k.Encrypt(ctx, "never-created", []kms.Item{{Plaintext: []byte("x")}})
		if kind(err) != "denied" {
			t.Errorf("%s: encrypt with a missing key and an update-only token: %v, want ErrDenied", name, err)
		}
	}
}
