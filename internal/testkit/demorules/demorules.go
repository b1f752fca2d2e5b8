// Package demorules decrypts what the original Python demo's file consumer
// (consumer_file_transfer.py) reads, step by step as that script does and
// without kafkagate's own legacy code, so tests can check that kafkagate's
// legacy messages are what the demo expects.
package demorules

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/kafkagate/kafkagate/internal/transit"
)

// OpenFile unwraps the X-encryptionkey header's value wrapped with
// transit/decrypt/transit (no context), then returns
// b64decode(AES-GCM(key, b64decode(nonce)).decrypt_and_verify(fromhex(ct), fromhex(tag)))
// of the JSON message value. It fails t on any step.
func OpenFile(t testing.TB, tc *transit.Client, wrapped string, value []byte) []byte {
	t.Helper()
	var v map[string]string
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatal(err)
	}
	res, err := tc.Decrypt(context.Background(), "transit", []transit.Ciphertext{{Ciphertext: wrapped}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("unwrap: %v %v", err, res[0].Err)
	}
	block, err := aes.NewCipher(res[0].Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, 32)
	if err != nil {
		t.Fatal(err)
	}
	nonce, _ := base64.StdEncoding.DecodeString(v["nonce"])
	ct, _ := hex.DecodeString(v["ciphertext"])
	tag, _ := hex.DecodeString(v["tag"])
	b64, err := gcm.Open(nil, nonce, append(ct, tag...), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
