package protect

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// Micro-benchmarks of the engine's own work on the produce path, the KMS
// excluded (echoCipher answers at once): make bench-micro.

// benchDoc is a purchase-shaped record value, as the REST bench posts.
func benchDoc(i int) []byte {
	return []byte(fmt.Sprintf(`{"Name":"Customer %d","Address":"%d Main Street, Springfield","credit_card":"4111111111111111","amount":%d,"currency":"EUR","meta":{"source":"web","tags":["a","b"]}}`, i, i, i%1000))
}

var benchPaths = [][]string{{"Name"}, {"Address"}, {"credit_card"}}

// BenchmarkLocate validates one record value and finds three fields.
func BenchmarkLocate(b *testing.B) {
	doc := benchDoc(7)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := locate(doc, benchPaths, DefaultMaxDepth); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFieldsHeaderEncode builds the kafkagate.fields header of a
// record with three transit fields.
func BenchmarkFieldsHeaderEncode(b *testing.B) {
	fs := []FieldInfo{{Path: "Name", Mode: "transit", Key: "kafka-purchases", KeyVersion: 1},
		{Path: "Address", Mode: "transit", Key: "kafka-purchases", KeyVersion: 1},
		{Path: "credit_card", Mode: "transit", Key: "kafka-purchases", KeyVersion: 1}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeFieldsHeader(fs, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFieldsHeaderDecode reads the same header, as a consumer does.
func BenchmarkFieldsHeaderDecode(b *testing.B) {
	h := []byte(`{"v":1,"f":[{"p":"Name","m":"transit","k":"kafka-purchases","a":1},{"p":"Address","m":"transit","k":"kafka-purchases","a":1},{"p":"credit_card","m":"transit","k":"kafka-purchases","a":1}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFieldsHeader(h); err != nil {
			b.Fatal(err)
		}
	}
}

// echoCipher "encrypts" at no cost: vault:v1: and the plaintext in base64.
type echoCipher struct{}

func (echoCipher) Mount() string { return "transit" }
func (echoCipher) Encrypt(_ context.Context, _ string, items []kms.Item) ([]kms.Sealed, error) {
	out := make([]kms.Sealed, len(items))
	for i, it := range items {
		out[i] = kms.Sealed{Ciphertext: "vault:v1:" + base64.StdEncoding.EncodeToString(it.Plaintext), KeyVersion: 1}
	}
	return out, nil
}
func (echoCipher) Decrypt(context.Context, string, []kms.Ciphertext) ([]kms.Opened, error) {
	return nil, kms.ErrUnavailable
}
func (echoCipher) Rewrap(context.Context, string, []kms.Ciphertext) ([]kms.Sealed, error) {
	return nil, kms.ErrUnavailable
}
func (echoCipher) HMAC(context.Context, string, [][]byte) ([]string, []error, error) {
	return nil, nil, kms.ErrUnavailable
}

// benchEncrypt protects n purchase records (three transit fields with
// associated data) per iteration; ns/op is per call of n records.
func benchEncrypt(b *testing.B, n int) {
	p, err := policy.Parse("purchases", map[string]string{"transit_key": "kafka-purchases", "aad": "on",
		"fields": "Name transit\nAddress transit\ncredit_card transit"})
	if err != nil {
		b.Fatal(err)
	}
	e := New(echoCipher{}, Options{})
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Topic: "purchases", Value: benchDoc(i)}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		out, err := e.EncryptRecords(ctx, p, recs)
		if err != nil || out[0].Err != nil {
			b.Fatal(err, out[0].Err)
		}
	}
}

func BenchmarkEncryptRecords1(b *testing.B)  { benchEncrypt(b, 1) }
func BenchmarkEncryptRecords10(b *testing.B) { benchEncrypt(b, 10) }
