package transit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// countingVault counts calls to the real Vault client.
type countingVault struct {
	vaultclient.Logical
	writes atomic.Int64
}

func (c *countingVault) Write(ctx context.Context, path string, data map[string]any) (map[string]any, error) {
	c.writes.Add(1)
	return c.Logical.Write(ctx, path, data)
}

func TestBatchesRoundTripAndSplit(t *testing.T) {
	_, vc := testkit.VaultClient(t)
	cv := &countingVault{Logical: vc}
	tc := transit.New(cv, transit.Options{MaxBatch: 100, MaxInFlight: 3})
	ctx := context.Background()
	if err := tc.EnsureKey(ctx, "k", transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	items := make([]transit.Item, 1050)
	for i := range items {
		items[i] = transit.Item{Plaintext: []byte(fmt.Sprintf("value-%d", i)), AAD: []byte(fmt.Sprintf("aad-%d", i%7))}
	}
	cv.writes.Store(0)
	sealed, err := tc.Encrypt(ctx, "k", items)
	if err != nil {
		t.Fatal(err)
	}
	if got := cv.writes.Load(); got != 11 {
		t.Fatalf("1050 items in batches of 100 took %d calls, want 11", got)
	}
	cts := make([]transit.Ciphertext, len(sealed))
	for i, s := range sealed {
		if s.Err != nil || s.KeyVersion != 1 {
			t.Fatalf("item %d: %+v", i, s)
		}
		cts[i] = transit.Ciphertext{Ciphertext: s.Ciphertext, AAD: items[i].AAD}
	}
	// Corrupt a few: wrong AAD, malformed, and a swapped ciphertext.
	cts[5].AAD = []byte("other")
	cts[6].Ciphertext = "not-a-ciphertext"
	cts[7].Ciphertext = sealed[8].Ciphertext
	opened, err := tc.Decrypt(ctx, "k", cts)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		switch i {
		case 5, 7:
			if !errors.Is(o.Err, transit.ErrDecrypt) {
				t.Errorf("item %d: %v, want ErrDecrypt", i, o.Err)
			}
		case 6:
			if !errors.Is(o.Err, transit.ErrMalformed) {
				t.Errorf("item %d: %v, want ErrMalformed", i, o.Err)
			}
		default:
			if o.Err != nil || string(o.Plaintext) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("item %d: %q %v", i, o.Plaintext, o.Err)
			}
		}
	}
	// Every item failing: Vault answers 400, yet each item keeps its error.
	bad, err := tc.Decrypt(ctx, "k", []transit.Ciphertext{{Ciphertext: sealed[0].Ciphertext, AAD: []byte("x")}})
	if err != nil {
		t.Fatalf("all-failed batch became a whole-call error: %v", err)
	}
	if !errors.Is(bad[0].Err, transit.ErrDecrypt) {
		t.Fatalf("all-failed batch item: %v", bad[0].Err)
	}
}

func TestRotateRetireRewrapAndErrors(t *testing.T) {
	v, vc := testkit.VaultClient(t)
	tc := transit.New(vc, transit.Options{})
	ctx := context.Background()
	if err := tc.EnsureKey(ctx, "r", transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	old, err := tc.Encrypt(ctx, "r", []transit.Item{{Plaintext: []byte("p")}})
	if err != nil || old[0].Err != nil {
		t.Fatal(err, old[0].Err)
	}
	if v, err := tc.Rotate(ctx, "r"); err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	rw, err := tc.Rewrap(ctx, "r", []transit.Ciphertext{{Ciphertext: old[0].Ciphertext}})
	if err != nil || rw[0].Err != nil || rw[0].KeyVersion != 2 {
		t.Fatalf("rewrap: %v %+v", err, rw)
	}
	if err := tc.Configure(ctx, "r", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	got, err := tc.Decrypt(ctx, "r", []transit.Ciphertext{{Ciphertext: old[0].Ciphertext}, {Ciphertext: rw[0].Ciphertext}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(got[0].Err, transit.ErrVersionRetired) || got[1].Err != nil || string(got[1].Plaintext) != "p" {
		t.Fatalf("after retiring v1: %+v", got)
	}
	ki, err := tc.ReadKey(ctx, "r")
	if err != nil || ki.LatestVersion != 2 || ki.MinDecryptionVersion != 2 || len(ki.Versions) != 1 {
		t.Fatalf("key info: %+v %v", ki, err)
	}
	if _, err := tc.ReadKey(ctx, "missing"); !errors.Is(err, vaultclient.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := tc.Encrypt(ctx, "../sys", []transit.Item{{Plaintext: []byte("x")}}); err == nil {
		t.Fatal("path-like key name accepted")
	}
	dk, err := tc.NewDataKey(ctx, "r", 256, false, nil)
	if err != nil || len(dk.Plaintext) != 32 || dk.KeyVersion != 2 {
		t.Fatalf("datakey: %v %d %d", err, len(dk.Plaintext), dk.KeyVersion)
	}
	un, err := tc.Decrypt(ctx, "r", []transit.Ciphertext{{Ciphertext: dk.Ciphertext}})
	if err != nil || string(un[0].Plaintext) != string(dk.Plaintext) {
		t.Fatal("datakey does not unwrap to its plaintext")
	}
	h, errs, err := tc.HMAC(ctx, "r", [][]byte{[]byte("a"), []byte("a"), []byte("b")})
	if err != nil || errs[0] != nil || h[0] != h[1] || h[0] == h[2] {
		t.Fatalf("hmac: %v %v %v", h, errs, err)
	}

	// A token that may encrypt but not decrypt gets ErrDenied.
	lim, limToken := limitedClient(t, v, vc, "enc-only", `path "transit/encrypt/r" { capabilities = ["update"] }`)
	ltc := transit.New(lim, transit.Options{})
	if res, err := ltc.Encrypt(ctx, "r", []transit.Item{{Plaintext: []byte("q")}}); err != nil || res[0].Err != nil {
		t.Fatalf("encrypt-only token cannot encrypt: %v", err)
	}
	if _, err := ltc.Decrypt(ctx, "r", []transit.Ciphertext{{Ciphertext: rw[0].Ciphertext}}); !errors.Is(err, vaultclient.ErrDenied) {
		t.Fatalf("decrypt with encrypt-only token: %v, want ErrDenied", err)
	}
	if err != nil && (containsToken(err.Error(), limToken) || containsToken(err.Error(), v.Token)) {
		t.Fatal("error message contains a token")
	}

	// Vault gone: ErrUnavailable.
	_ = v.Stop()
	if _, err := tc.Encrypt(ctx, "r", []transit.Item{{Plaintext: []byte("x")}}); !errors.Is(err, vaultclient.ErrUnavailable) {
		t.Fatalf("vault stopped: %v, want ErrUnavailable", err)
	}
}

// limitedClient returns a client, and its token, whose only policy is the
// policy text written as name.
func limitedClient(t *testing.T, v *devenv.Vault, root *vaultclient.Client, name, policy string) (*vaultclient.Client, string) {
	t.Helper()
	ctx := context.Background()
	if err := root.API().Sys().PutPolicyWithContext(ctx, name, policy); err != nil {
		t.Fatal(err)
	}
	sec, err := root.API().Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := vaultclient.New(vaultclient.Config{Addr: v.Addr, Token: sec.Auth.ClientToken})
	if err != nil {
		t.Fatal(err)
	}
	return lim, sec.Auth.ClientToken
}

func containsToken(s, tok string) bool { return tok != "" && strings.Contains(s, tok) }

func TestVersion(t *testing.T) {
	for s, want := range map[string]int{"vault:v1:abc": 1, "vault:v12:x": 12} {
		if v, err := transit.Version(s); err != nil || v != want {
			t.Errorf("%s: %d %v", s, v, err)
		}
	}
	for _, s := range []string{"", "vault:", "vault:v:x", "vault:v0:x", "vault:v1:", "vault:vx:y", "plain"} {
		if _, err := transit.Version(s); !errors.Is(err, transit.ErrMalformed) {
			t.Errorf("%q accepted", s)
		}
	}
}
