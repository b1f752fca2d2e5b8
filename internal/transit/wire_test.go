package transit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/hashicorp/vault/api"
)

// wireEntries covers every entry shape: base64 values with and without
// associated data and context (nil and empty differ: empty is sent), and
// ciphertext texts that JSON must escape.
func wireEntries() []entry {
	return []entry{
		{name: "plaintext", raw: []byte("4111 1111 1111 1111"), b64: true, aad: []byte("kafkagate/v1\x00t\x00card")},
		{name: "plaintext", raw: nil, b64: true},
		{name: "plaintext", raw: []byte{0, 1, 2, 0xff}, b64: true, aad: []byte{}, context: []byte("tenant-1")},
		{name: "ciphertext", text: "vault:v1:AAAA+/=", context: []byte{}},
		{name: "ciphertext", text: "vault:v1:\"quoted\\\" <b>&amp;</b>\n\t\x01"},
		{name: "ciphertext", text: "vault:v2:héllo \xff\xfe invalid utf-8 \u2028"},
		{name: "input", raw: []byte("hmac me"), b64: true},
	}
}

// TestBatchBodyMatchesMaps checks that the body built by appendBatchBody
// is, as JSON, exactly what encoding the generic maps gives (the request
// vault/api's SetJSONBody sent before).
func TestBatchBodyMatchesMaps(t *testing.T) {
	in := wireEntries()
	body := appendBatchBody(nil, in)
	// Unescaped items fit the estimate: one allocation per call.
	if plain := benchEntries(30); len(appendBatchBody(nil, plain)) > batchBodySize(plain) {
		t.Errorf("body of %d bytes, size estimate %d", len(appendBatchBody(nil, plain)), batchBodySize(plain))
	}
	maps := make([]map[string]any, len(in))
	for i := range in {
		maps[i] = in[i].asMap()
	}
	want, err := json.Marshal(map[string]any{"batch_input": maps, "partial_failure_response_code": 207})
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("body\n%s\nwant (as JSON)\n%s", body, want)
	}
}

// TestParseBatchAnswer checks the reading of Vault's answers against
// what the generic decoding (vault/api's ParseSecret, then type
// assertions) gave: an item that is not an object is an item error, never
// an empty success; fields that are not strings are ignored; escapes are
// decoded; a malformed answer is refused.
func TestParseBatchAnswer(t *testing.T) {
	cases := []struct {
		answer string
		want   []result
		ok     bool
	}{
		{``, nil, true},
		{`{"data":null}`, nil, true},
		{`{"data":{"batch_results":"x"}}`, nil, true},
		{`{"data":{"batch_results":[null,{"ciphertext":"vault:v1:x","key_version":1},{"error":"bad \"item\" \u00e9"},7,"s",[],{"plaintext":"aGk=","hmac":3}]}}`, []result{
			{Error: emptyResult}, {Ciphertext: "vault:v1:x"}, {Error: `bad "item" é`}, {Error: emptyResult}, {Error: emptyResult}, {Error: emptyResult}, {Plaintext: "aGk="},
		}, true},
		{`{"data":{"batch_results":[{"hmac":"vault:v1:h","error":""}]},"warnings":null}`, []result{{HMAC: "vault:v1:h"}}, true},
		{`{"data":{"batch_results":[{"ciphertext":"vault:v1:x"}]}`, nil, false},
		{`{"data":{"batch_results":[{"ciphertext":"vault:v1:x",}]}}`, nil, false},
	}
	for _, c := range cases {
		got, ok := parseBatchAnswer([]byte(c.answer), 1)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) && len(got)+len(c.want) > 0 {
			t.Errorf("%s: %+v %v, want %+v %v", c.answer, got, ok, c.want, c.ok)
		}
		if !c.ok {
			continue
		}
		// The former decoding agrees wherever the answer was well-formed.
		s, err := api.ParseSecret(bytes.NewReader([]byte(c.answer)))
		if err != nil {
			t.Fatalf("%s: %v", c.answer, err)
		}
		var raw []any
		if s != nil {
			raw, _ = s.Data["batch_results"].([]any)
		}
		if len(raw) != len(got) {
			t.Errorf("%s: %d results, generic decoding %d", c.answer, len(got), len(raw))
		}
		for i, r := range raw {
			m, _ := r.(map[string]any)
			want := result{Error: emptyResult}
			if m != nil {
				want = result{Ciphertext: str(m["ciphertext"]), Plaintext: str(m["plaintext"]), HMAC: str(m["hmac"]), Error: str(m["error"])}
			}
			if i < len(got) && got[i] != want {
				t.Errorf("%s: item %d %+v, generic decoding %+v", c.answer, i, got[i], want)
			}
		}
	}
}

// benchEntries is n purchase-shaped encrypt items (three fields of a
// record, each with its associated data), as the REST produce bench sends.
func benchEntries(n int) []entry {
	fields := []string{"Name", "Address", "credit_card"}
	in := make([]entry, n)
	for i := range in {
		f := fields[i%3]
		in[i] = entry{name: "plaintext", raw: []byte(fmt.Sprintf("%d Main Street, Springfield", i)), b64: true, aad: []byte("kafkagate/v1\x00purchases\x00" + f)}
	}
	return in
}

// BenchmarkBatchEncode300 builds the body of a 300-item encrypt call.
func BenchmarkBatchEncode300(b *testing.B) {
	in := benchEntries(300)
	b.ReportAllocs()
	for b.Loop() {
		_ = appendBatchBody(make([]byte, 0, batchBodySize(in)), in)
	}
}

// BenchmarkBatchEncodeMaps300 is the former encoding of the same call:
// one map per item, encoded by encoding/json (vault/api's SetJSONBody).
func BenchmarkBatchEncodeMaps300(b *testing.B) {
	in := benchEntries(300)
	b.ReportAllocs()
	for b.Loop() {
		maps := make([]map[string]any, len(in))
		for i := range in {
			maps[i] = in[i].asMap()
		}
		if _, err := json.Marshal(map[string]any{"batch_input": maps, "partial_failure_response_code": 207}); err != nil {
			b.Fatal(err)
		}
	}
}

// recordedAnswer is Vault 1.21's answer to a 300-item encrypt call
// (testdata, recorded from a dev server).
func recordedAnswer(b *testing.B) []byte {
	body, err := os.ReadFile("testdata/vault-encrypt-300.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkBatchDecode300 reads the recorded answer as transit does.
func BenchmarkBatchDecode300(b *testing.B) {
	body := recordedAnswer(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if res, ok := parseBatchAnswer(body, 300); !ok || len(res) != 300 {
			b.Fatalf("%v: %d results", ok, len(res))
		}
	}
}

// BenchmarkBatchDecodeParseSecret300 is the former decoding of the same
// answer: vault/api's ParseSecret into map[string]interface{}.
func BenchmarkBatchDecodeParseSecret300(b *testing.B) {
	body := recordedAnswer(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		if r, _ := s.Data["batch_results"].([]any); len(r) != 300 {
			b.Fatalf("%d results", len(r))
		}
	}
}
