package envelope

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/testkit/demorules"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// legacyDecodeByTheDemoRules decrypts a legacy message step by step as
// consumer_file_transfer.py does, without the package's legacy code: unwrap
// X-encryptionkey with transit/decrypt/transit (no context), then
// b64decode(AES-GCM(key, b64decode(nonce)).decrypt_and_verify(fromhex(ct), fromhex(tag))).
func legacyDecodeByTheDemoRules(t *testing.T, tc *transit.Client, hs []Header, value []byte) (string, []byte) {
	t.Helper()
	h := map[string]string{}
	for _, x := range hs {
		h[x.Key] = string(x.Value)
	}
	return h["X-filename"], demorules.OpenFile(t, tc, h["X-encryptionkey"], value)
}

func TestLegacyVault(t *testing.T) {
	ctx := context.Background()
	ks, tc := vaultTransit(t)
	data := append([]byte(`{"value": "café", "transformation": "name"}`+"\n"), randBytes(100_000)...)

	hs, value, err := EncodeLegacy(ctx, ks, "", "large-set-of-info.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Key != "X-encryptionkey" || hs[1].Key != "X-filename" || !strings.HasPrefix(string(hs[0].Value), "vault:v1:") {
		t.Fatalf("headers %v", hs)
	}
	if !bytes.HasPrefix(value, []byte(`{"ciphertext": "`)) || !bytes.Contains(value, []byte(`", "tag": "`)) || !bytes.Contains(value, []byte(`", "nonce": "`)) {
		t.Fatalf("value is not in json.dumps layout: %.80s", value)
	}

	t.Run("decrypts with the demo's rules", func(t *testing.T) {
		name, got := legacyDecodeByTheDemoRules(t, tc, hs, value)
		if name != "large-set-of-info.json" || !bytes.Equal(got, data) {
			t.Fatal("legacy rules did not recover the file")
		}
	})
	t.Run("DecodeLegacy and OpenLegacy", func(t *testing.T) {
		op := newOpener(t, ks, OpenerOptions{})
		lf, err := DecodeLegacy(ctx, hs, value, op.LegacyUnwrapper())
		if err != nil || !bytes.Equal(lf.Data, data) || lf.Name != "large-set-of-info.json" {
			t.Fatalf("DecodeLegacy: %v", err)
		}
		before := ks.unwraps.Load()
		for range 3 {
			lf, err = op.OpenLegacy(ctx, Record{Topic: "purchases_large_encrypted", Headers: hs, Value: value})
			if err != nil || !bytes.Equal(lf.Data, data) {
				t.Fatalf("OpenLegacy: %v", err)
			}
		}
		if n := ks.unwraps.Load() - before; n != 1 {
			t.Fatalf("%d unwrap calls for 3 opens of one message", n)
		}
	})
	t.Run("tampering and malformed input", func(t *testing.T) {
		op := newOpener(t, ks, OpenerOptions{})
		bad := bytes.Clone(value)
		i := bytes.Index(bad, []byte(`"ciphertext": "`)) + len(`"ciphertext": "`)
		bad[i] = "10"[boolInt(bad[i] == '1')]
		_, err := op.OpenLegacy(ctx, Record{Headers: hs, Value: bad})
		mustIs(t, err, ErrTampered)
		_, err = op.OpenLegacy(ctx, Record{Headers: hs[:1], Value: value})
		mustIs(t, err, ErrBadHeader)
		_, err = op.OpenLegacy(ctx, Record{Headers: hs, Value: []byte(`{"ciphertext": "00"}`)})
		mustIs(t, err, ErrUnknownFormat)
		_, err = op.Open(ctx, Record{Topic: "t", Headers: hs, Value: value})
		mustIs(t, err, ErrUnknownFormat)
		// A swapped X-encryptionkey (another message's DEK) fails authentication.
		hs2, _, err := EncodeLegacy(ctx, ks, "", "other.txt", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = op.OpenLegacy(ctx, Record{Headers: []Header{hs2[0], hs[1]}, Value: value})
		mustIs(t, err, ErrTampered)
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
