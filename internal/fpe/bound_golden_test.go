package fpe

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateBound = flag.Bool("update-bound", false, "rewrite testdata/bound.json")

// boundVector is one FF1 token of the golden file: the tweak binds domain,
// version, mode, length and, for tokens bound to a topic, the topic.
type boundVector struct {
	KeyHex  string `json:"key_hex"`
	Domain  string `json:"domain"`
	Version int    `json:"version"`
	Format  string `json:"format"`
	Bind    string `json:"bind"`
	Input   string `json:"input"`
	Token   string `json:"token"`
}

// TestBoundGoldenVectors pins the tokens of topic-bound and unbound FPE
// (docs/wire-format.md, "FPE tokens"): the same card gives different tokens
// per topic, and tokens written before binding (bind "") keep decrypting.
func TestBoundGoldenVectors(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	c, err := NewCipher(key, "payments.card_number", 1)
	if err != nil {
		t.Fatal(err)
	}
	var vs []boundVector
	for _, f := range []string{"full", "keep-bin-last4"} {
		for _, bind := range []string{"", "cards", "notes"} {
			format, err := ParseFormat(f, "")
			if err != nil {
				t.Fatal(err)
			}
			format.Bind = bind
			tok, err := c.Encrypt(format, "4111-1111-1111-1111")
			if err != nil {
				t.Fatal(err)
			}
			back, err := c.Decrypt(format, tok)
			if err != nil || back != "4111-1111-1111-1111" {
				t.Fatalf("round trip %s/%q: %q %v", f, bind, back, err)
			}
			vs = append(vs, boundVector{KeyHex: hex.EncodeToString(key), Domain: "payments.card_number", Version: 1, Format: f, Bind: bind, Input: "4111-1111-1111-1111", Token: tok})
		}
	}
	path := filepath.Join("testdata", "bound.json")
	if *updateBound {
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with -update-bound)", err)
	}
	var want []boundVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(vs) {
		t.Fatalf("%d vectors, want %d", len(vs), len(want))
	}
	seen := map[string]string{}
	for i := range vs {
		if vs[i] != want[i] {
			t.Errorf("vector %d: %+v, want %+v", i, vs[i], want[i])
		}
		if other, dup := seen[vs[i].Format+vs[i].Token]; dup {
			t.Errorf("binds %q and %q give the same token", other, vs[i].Bind)
		}
		seen[vs[i].Format+vs[i].Token] = vs[i].Bind
	}
}
