package envelope

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// -update rewrites testdata/record.json and testdata/chunks.json from the
// current code. Never run by default; review the diff before committing.
// testdata/legacy.json comes from testdata/gen_legacy.py (Python).
var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

type goldenHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func toGolden(hs []Header) []goldenHeader {
	out := make([]goldenHeader, len(hs))
	for i, h := range hs {
		out[i] = goldenHeader{h.Key, string(h.Value)}
	}
	return out
}

func fromGolden(hs []goldenHeader) []Header {
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{Key: h.Key, Value: []byte(h.Value)}
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenFile reads testdata/name into v, or with -update writes v.
func goldenFile(t *testing.T, name string, v any, fresh any) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		b, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (regenerate with -update)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

type goldenRecord struct {
	Comment      string         `json:"comment"`
	DEK          string         `json:"dek"`
	Wrapped      string         `json:"wrapped"`
	KEKHeader    string         `json:"kek_header"`
	Nonce        string         `json:"nonce"`
	Topic        string         `json:"topic"`
	Key          string         `json:"key"`
	Plaintext    string         `json:"plaintext"`
	InputHeaders []goldenHeader `json:"input_headers"`
	Headers      []goldenHeader `json:"headers"`
	AAD          string         `json:"aad"`
	Value        string         `json:"value"`
}

const (
	goldenWrapped   = "vault:v3:Z29sZGVuLXZlY3Rvci13cmFwcGVkLWRlay1ub3QtYS1yZWFsLXZhdWx0LWNpcGhlcnRleHQ="
	goldenKEKHeader = "transit/kafkagate-envelope"
)

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestGoldenRecord(t *testing.T) {
	dek, nonce := seq(0x00, 32), seq(0x10, 12)
	in := Record{
		Topic: "purchases",
		Key:   []byte("customer-42"),
		Headers: []Header{
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "kafkagate.note.source", Value: []byte("not authenticated")},
			{Key: "kafkagate.tenant", Value: []byte("acme")},
		},
		Value: []byte(`{"Name":"Ada","credit_card":"4111111111111111"}`),
	}
	c, err := newDEKCipher(append([]byte(nil), dek...))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sealWith(c, goldenWrapped, goldenKEKHeader, in, nonce)
	if err != nil {
		t.Fatal(err)
	}
	sorted, _ := authHeaders(got.Headers)
	aad := buildAAD(got.Topic, got.Key, sorted)
	fresh := goldenRecord{
		Comment: "record/1: value = nonce || AES-256-GCM(dek, nonce, plaintext, aad); see docs/wire-format.md",
		DEK:     hex.EncodeToString(dek), Wrapped: goldenWrapped, KEKHeader: goldenKEKHeader,
		Nonce: hex.EncodeToString(nonce), Topic: in.Topic, Key: string(in.Key), Plaintext: string(in.Value),
		InputHeaders: toGolden(in.Headers), Headers: toGolden(got.Headers),
		AAD: hex.EncodeToString(aad), Value: hex.EncodeToString(got.Value),
	}
	var g goldenRecord
	goldenFile(t, "record.json", &g, fresh)

	if hex.EncodeToString(aad) != g.AAD {
		t.Errorf("AAD differs from golden:\n got %x\nwant %s", aad, g.AAD)
	}
	if hex.EncodeToString(got.Value) != g.Value {
		t.Errorf("value differs from golden")
	}
	if !equalHeaders(toGolden(got.Headers), g.Headers) {
		t.Errorf("headers differ from golden:\n got %v\nwant %v", toGolden(got.Headers), g.Headers)
	}
	// The golden bytes open with the golden DEK, through the Opener.
	ks := newInMemoryKeyServiceForTests()
	ks.fixed[g.Wrapped] = unhex(t, g.DEK)
	o, err := NewOpener(ks, OpenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := o.Open(context.Background(), Record{Topic: g.Topic, Key: []byte(g.Key), Headers: fromGolden(g.Headers), Value: unhex(t, g.Value)})
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != g.Plaintext {
		t.Errorf("golden record opened to %q", pt)
	}
}

func equalHeaders(a, b []goldenHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type goldenChunks struct {
	Comment   string `json:"comment"`
	DEK       string `json:"dek"`
	Wrapped   string `json:"wrapped"`
	KEKHeader string `json:"kek_header"`
	FileID    string `json:"file_id"`
	Topic     string `json:"topic"`
	Name      string `json:"name"`
	ChunkSize int    `json:"chunk_size"`
	Plaintext string `json:"plaintext"`
	FileKey   string `json:"file_key"`
	Prefix    string `json:"nonce_prefix"`
	Records   []struct {
		Key     string         `json:"key"`
		Headers []goldenHeader `json:"headers"`
		Value   string         `json:"value"`
	} `json:"records"`
}

func TestGoldenChunks(t *testing.T) {
	dek, id := seq(0x20, 32), seq(0xa0, 16)
	const topic, name, chunk = "files", "fox.txt", 16
	plain := "The quick brown fox jumps over the lazy dog." // 44 bytes: 16 + 16 + 12
	enc, err := newFileEncoder(append([]byte(nil), dek...), goldenWrapped, goldenKEKHeader, id, topic, name,
		bytes.NewReader([]byte(plain)), FileOptions{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for {
		r, err := enc.Next(context.Background())
		if err != nil {
			break
		}
		recs = append(recs, r)
	}
	fresh := goldenChunks{
		Comment: "chunk/1: okm = HKDF-SHA256(dek, salt=file id, info, 39); key = okm[:32], prefix = okm[32:]; see docs/wire-format.md",
		DEK:     hex.EncodeToString(dek), Wrapped: goldenWrapped, KEKHeader: goldenKEKHeader,
		FileID: hex.EncodeToString(id), Topic: topic, Name: name, ChunkSize: chunk, Plaintext: plain,
	}
	okm := hkdfForTest(t, dek, id)
	fresh.FileKey, fresh.Prefix = hex.EncodeToString(okm[:32]), hex.EncodeToString(okm[32:])
	for _, r := range recs {
		fresh.Records = append(fresh.Records, struct {
			Key     string         `json:"key"`
			Headers []goldenHeader `json:"headers"`
			Value   string         `json:"value"`
		}{string(r.Key), toGolden(r.Headers), hex.EncodeToString(r.Value)})
	}
	var g goldenChunks
	goldenFile(t, "chunks.json", &g, fresh)

	if len(recs) != 3 || len(g.Records) != 3 {
		t.Fatalf("want 3 chunks, got %d (golden %d)", len(recs), len(g.Records))
	}
	if g.FileKey != fresh.FileKey || g.Prefix != fresh.Prefix {
		t.Errorf("derived file key or prefix differs from golden")
	}
	for i, r := range recs {
		if hex.EncodeToString(r.Value) != g.Records[i].Value || !equalHeaders(toGolden(r.Headers), g.Records[i].Headers) || string(r.Key) != g.Records[i].Key {
			t.Errorf("chunk %d differs from golden", i)
		}
	}
	// The golden chunks decode through the Opener.
	ks := newInMemoryKeyServiceForTests()
	ks.fixed[g.Wrapped] = unhex(t, g.DEK)
	o, _ := NewOpener(ks, OpenerOptions{})
	var out bytes.Buffer
	d := o.NewFileDecoder(&out)
	for i, gr := range g.Records {
		if _, err := d.Write(context.Background(), Record{Topic: g.Topic, Key: []byte(gr.Key), Headers: fromGolden(gr.Headers), Value: unhex(t, gr.Value)}); err != nil {
			t.Fatalf("golden chunk %d: %v", i, err)
		}
	}
	m, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != g.Plaintext || m.Name != g.Name || m.Size != int64(len(g.Plaintext)) {
		t.Errorf("golden chunks decoded to %q, manifest %+v", out.String(), m)
	}
}

type goldenLegacy struct {
	DEK      string         `json:"dek"`
	NonceB64 string         `json:"nonce_b64"`
	Headers  []goldenHeader `json:"headers"`
	DataHex  string         `json:"data_hex"`
	Value    string         `json:"value"`
}

// TestGoldenLegacy: a message made by Python (gen_legacy.py) with the demo's
// rules decrypts, and the Go encoder reproduces it byte for byte.
func TestGoldenLegacy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "legacy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenLegacy
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	dek := unhex(t, g.DEK)
	hs := fromGolden(g.Headers)
	if f, err := DetectFormat(hs); err != nil || f != FormatLegacy {
		t.Fatalf("DetectFormat = %v, %v", f, err)
	}
	unwrap := func(_ context.Context, wrapped string) ([]byte, error) {
		if wrapped != g.Headers[0].Value {
			t.Errorf("unwrap got %q", wrapped)
		}
		return append([]byte(nil), dek...), nil
	}
	lf, err := DecodeLegacy(context.Background(), hs, []byte(g.Value), unwrap)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(lf.Data) != g.DataHex || lf.Name != g.Headers[1].Value {
		t.Errorf("legacy golden decoded to name %q data %x", lf.Name, lf.Data)
	}
	nonce, _ := base64.StdEncoding.DecodeString(g.NonceB64)
	ghs, value, err := encodeLegacyWith(append([]byte(nil), dek...), g.Headers[0].Value, nonce, g.Headers[1].Value, unhex(t, g.DataHex))
	if err != nil {
		t.Fatal(err)
	}
	if string(value) != g.Value {
		t.Errorf("Go legacy encoding differs from Python's:\n got %s\nwant %s", value, g.Value)
	}
	if !equalHeaders(toGolden(ghs), g.Headers) {
		t.Errorf("legacy headers %v, want %v", toGolden(ghs), g.Headers)
	}
	// A flipped bit in the ciphertext is detected.
	bad := []byte(g.Value)
	i := bytes.Index(bad, []byte(`"ciphertext": "`)) + len(`"ciphertext": "`)
	bad[i] ^= 0x01 // '0'..'f' stay hex digits when flipping bit 0 of most; check below
	if _, err := hex.DecodeString(string(bad[i : i+2])); err == nil {
		_, err := DecodeLegacy(context.Background(), hs, bad, unwrap)
		mustIs(t, err, ErrTampered)
	}
}

// hkdfForTest is RFC 5869 HKDF-SHA256 written out with HMAC, independent of
// crypto/hkdf, for the 39 bytes of docs/wire-format.md §4.2.
func hkdfForTest(t *testing.T, ikm, salt []byte) []byte {
	t.Helper()
	mac := func(k, m []byte) []byte { h := hmac.New(sha256.New, k); h.Write(m); return h.Sum(nil) }
	prk := mac(salt, ikm)
	info := []byte("kafkagate chunk/1 A256GCM-HKDF-SHA256-STREAM")
	t1 := mac(prk, append(append([]byte(nil), info...), 1))
	t2 := mac(prk, append(append(append([]byte(nil), t1...), info...), 2))
	return append(t1, t2[:7]...)
}
