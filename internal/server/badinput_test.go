package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return string(b)
}

type errBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
	Field     string `json:"field"`
}

func TestBadInputGetsDocumentedErrorAndNothingIsProduced(t *testing.T) {
	f := setup(t)
	huge := `{"value":{"type":"JSON","data":{"Name":"` + strings.Repeat("x", 9<<20) + `"}}}`
	deep := `{"value":{"type":"JSON","data":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}}`
	cases := []struct {
		name, topic, ctype, body string
		status, code             int
		field                    string
	}{
		{"malformed JSON", "purchases", "application/json", `{"value":`, 400, httpapi.CodeBadJSON, ""},
		{"empty body", "purchases", "application/json", ``, 400, httpapi.CodeBadJSON, ""},
		{"wrong content type", "purchases", "text/plain", produceBody(purchase), 415, httpapi.CodeContentType, ""},
		{"no policy", "unprotected", "application/json", produceBody(purchase), 403, httpapi.CodeNoPolicy, ""},
		{"value not an object", "purchases", "application/json", `{"value":{"type":"JSON","data":[1,2]}}`, 200, httpapi.CodeValueNotObject, ""},
		{"value is a string", "purchases", "application/json", `{"value":{"type":"STRING","data":"Ann"}}`, 200, httpapi.CodeValueNotJSON, ""},
		{"oversized body", "purchases", "application/json", huge, 413, httpapi.CodeBodyTooLarge, ""},
		{"number in a transit field", "purchases", "application/json", produceBody(`{"Name":"A","credit_card":4111111111111111}`), 200, httpapi.CodeFieldType, "credit_card"},
		{"object in a transit field", "purchases", "application/json", produceBody(`{"Name":{"first":"A"}}`), 200, httpapi.CodeFieldType, "Name"},
		{"path crosses an array", "purchases", "application/json", produceBody(`{"customer":[{"email":"a@b"}]}`), 200, httpapi.CodeFieldType, "customer"},
		{"duplicate key", "purchases", "application/json", produceBody(`{"Address":"x","Address":"1 Secret Rd"}`), 200, httpapi.CodeDuplicateKey, "Address"},
		{"too deep", "purchases", "application/json", deep, 200, httpapi.CodeTooDeep, ""},
		{"unknown request field", "purchases", "application/json", `{"valeu":{"data":{}}}`, 200, httpapi.CodeBadRequestField, ""},
		{"bad base64", "raw", "application/json", `{"value":{"type":"BINARY","data":"!!!"}}`, 200, httpapi.CodeBadRequestField, "value.data"},
		{"bad header base64", "purchases", "application/json", `{"headers":[{"name":"h","value":"%%%"}],"value":{"type":"JSON","data":{}}}`, 200, httpapi.CodeBadRequestField, "headers[0].value"},
		{"reserved header name", "purchases", "application/json", `{"headers":[{"name":"kafkagate.fields","value":"e30="}],"value":{"type":"JSON","data":{}}}`, 200, httpapi.CodeBadRequestField, "headers[0].name"},
		{"unknown value type", "purchases", "application/json", `{"value":{"type":"XML","data":{}}}`, 200, httpapi.CodeBadRequestField, "value.type"},
		{"schema registry type", "purchases", "application/json", `{"value":{"type":"AVRO","data":{}}}`, 200, httpapi.CodeSchemaUnsupported, "value.type"},
		{"negative partition", "purchases", "application/json", `{"partition_id":-3,"value":{"type":"JSON","data":{}}}`, 200, httpapi.CodeBadRequestField, "partition_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := f.post(t, f.url(c.topic), c.ctype, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, c.status, b)
			}
			var e errBody
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("error body is not JSON: %.300s", b)
			}
			if e.ErrorCode != c.code || e.Message == "" {
				t.Fatalf("error_code %d (want %d), message %q", e.ErrorCode, c.code, e.Message)
			}
			if c.field != "" && e.Field != c.field {
				t.Fatalf("field %q, want %q (message %q)", e.Field, c.field, e.Message)
			}
			if strings.Contains(e.Message, "1 Secret Rd") || strings.Contains(e.Message, "4111111111111111") {
				t.Fatalf("error message leaks a value: %s", e.Message)
			}
		})
	}
	for _, topic := range []string{"purchases", "unprotected", "raw"} {
		if n := len(f.raw(t, topic)); n != 0 {
			t.Errorf("topic %s gained %d records from rejected requests", topic, n)
		}
	}
	// Unknown cluster id.
	resp, _ := testkit.Do(t, nil, http.MethodGet, f.srv.URL+"/v3/clusters/nope/topics/purchases/records", "", "")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown cluster: %d", resp.StatusCode)
	}
}

func TestBatchAndStreamingProduce(t *testing.T) {
	f := setup(t)
	batch := `{"entries":[
	  {"id":"a","value":{"type":"JSON","data":{"Name":"A","Address":"x"}}},
	  {"id":"b","value":{"type":"JSON","data":{"Name":7}}},
	  {"id":"c","value":{"type":"JSON","data":{"Name":"C"}}},
	  {"id":"d","value":{"type":"JSON","data":"not an object"}}]}`
	resp, b := f.post(t, f.url("purchases")+":batch", "application/json", batch)
	if resp.StatusCode != http.StatusMultiStatus {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var br struct {
		Successes []struct {
			ID     string `json:"id"`
			Offset int64  `json:"offset"`
		} `json:"successes"`
		Failures []errBody `json:"failures"`
	}
	if err := json.Unmarshal(b, &br); err != nil {
		t.Fatal(err)
	}
	if len(br.Successes) != 2 || br.Successes[0].ID != "a" || br.Successes[1].ID != "c" || len(br.Failures) != 2 {
		t.Fatalf("batch result: %s", b)
	}
	if br.Failures[0].ErrorCode != httpapi.CodeFieldType || br.Failures[1].ErrorCode != httpapi.CodeValueNotObject {
		t.Fatalf("failure codes: %+v", br.Failures)
	}
	// Streaming: three concatenated records, one response line each.
	stream := produceBody(`{"Name":"S1"}`) + "\n" + produceBody(`{"Name":"S2"}`) + produceBody(`{"Name":"S3"}`)
	resp, b = f.post(t, f.url("purchases"), "application/json", stream)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if resp.StatusCode != 200 || len(lines) != 3 {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"error_code":200`) {
			t.Fatalf("stream line: %s", l)
		}
	}
	if n := len(f.raw(t, "purchases")); n != 5 {
		t.Fatalf("want 5 records, got %d", n)
	}
	// A stream whose body ends inside its second record: the first is
	// produced and reported (a stream never holds records back), the
	// truncated one has its own error report.
	resp, b = f.post(t, f.url("purchases"), "application/json", produceBody(`{"Name":"S4"}`)+`{"value":`)
	lines = strings.Split(strings.TrimSpace(string(b)), "\r\n")
	if resp.StatusCode != 200 || len(lines) != 2 || !strings.Contains(lines[0], `"error_code":200`) ||
		!strings.Contains(lines[1], fmt.Sprintf(`"error_code":%d`, httpapi.CodeBadJSON)) || len(f.raw(t, "purchases")) != 6 {
		t.Fatalf("truncated stream: %d %s", resp.StatusCode, b)
	}
	// A body that is one truncated record is a bad request as a whole.
	resp, _ = f.post(t, f.url("purchases"), "application/json", `{"value":`)
	if resp.StatusCode != 400 || len(f.raw(t, "purchases")) != 6 {
		t.Fatalf("truncated body: %d", resp.StatusCode)
	}
}

func TestVaultStoppedFailsClosed(t *testing.T) {
	f := setup(t)
	if resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(purchase)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if err := f.env.Vault.Stop(); err != nil {
		t.Fatal(err)
	}
	resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d retry-after %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	var e errBody
	_ = json.Unmarshal(b, &e)
	if e.ErrorCode != httpapi.CodeVaultDown {
		t.Fatalf("error_code %d: %s", e.ErrorCode, b)
	}
	if n := len(f.raw(t, "purchases")); n != 1 {
		t.Fatalf("topic has %d records after the refused request, want 1", n)
	}
	// Reading also refuses rather than returning ciphertext as if decrypted.
	r, _ := testkit.Do(t, nil, http.MethodGet, f.url("purchases")+"?partition=0", "", "")
	// The record may be on any partition; the read of partition 0 either
	// has nothing to decrypt (200, empty) or refuses with 503.
	if r.StatusCode != 503 && r.StatusCode != 200 {
		t.Fatalf("read with vault down: %d", r.StatusCode)
	}
	rr, _ := testkit.Do(t, nil, http.MethodGet, f.srv.URL+"/readyz", "", "")
	if rr.StatusCode != 503 {
		t.Fatalf("readyz with vault down: %d", rr.StatusCode)
	}
}

// TestKcatSeesCiphertextOnly reads the topic with kcat, an independent
// Kafka client (librdkafka). make test installs kcat; elsewhere the test
// skips unless KAFKAGATE_REQUIRE_KCAT is set.
func TestKcatSeesCiphertextOnly(t *testing.T) {
	kcat := testkit.Kcat(t)
	f := setup(t)
	if resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(purchase)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-b", f.env.Brokers[0], "-t", "purchases", "-C", "-o", "beginning", "-e", "-q", "-f", "%h|%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v: %s", err, out)
	}
	s := string(out)
	if strings.Count(s, "vault:v1:") != 4 || !strings.Contains(s, "kafkagate.fields=") {
		t.Fatalf("kcat output lacks ciphertexts or header: %s", s)
	}
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Fatalf("kcat sees plaintext %q", sec)
		}
	}
}
