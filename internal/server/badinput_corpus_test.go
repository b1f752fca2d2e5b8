package server_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// corpusConfig has one topic per protection mode, and small limits so the
// limit cases stay cheap.
const corpusConfig = `
[kafkagate]
max_body_bytes = 65536
max_records = 5
max_headers = 4
max_header_bytes = 1024
max_json_depth = 16
` + purchasesPolicy + `
[policy:cards]
fields = credit_card fpe format=full domain=payments.card_number

[policy:docs]
mode = envelope

[policy:raw]
mode = passthrough
`

// corpusFixture is the gateway of corpusConfig, plus an API with a file
// sender for the upload endpoint (server.New serves none).
type corpusFixture struct {
	*fixture
	files *httptest.Server
}

func setupCorpus(t *testing.T) *corpusFixture {
	t.Helper()
	env, cfg := startCardStack(t, corpusConfig)
	quiet := testkit.Quiet()
	f := serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second), Logger: quiet})
	gw := f.gw
	sender, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: envelope.NewTransitKeys(env.Transit), Producer: gw.Kafka,
		MaxMessageBytes: gw.Kafka.Settings().Sarama.Producer.MaxMessageBytes, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(httpapi.New(httpapi.Config{Engine: gw.Engine, Policies: cfg.Policies, Kafka: gw.Kafka, Vault: gw.Vault,
		Logger: quiet, Files: sender, MaxBodyBytes: 65536}))
	t.Cleanup(files.Close)
	return &corpusFixture{fixture: f, files: files}
}

// documentedCodes reads the error codes of docs/errors.md's table.
func documentedCodes(t *testing.T) map[int]bool {
	t.Helper()
	doc, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\|\s*(\d{3}|\d{5})\s*\|\s*(\d{3})\s*\|`).FindAllStringSubmatch(string(doc), -1) {
		var code, status int
		fmt.Sscan(m[1], &code)
		fmt.Sscan(m[2], &status)
		// REST Proxy's plain codes are the status itself.
		if code != status && code/100 != status {
			t.Errorf("docs/errors.md: code %d documented with status %d", code, status)
		}
		out[code] = true
	}
	return out
}

// TestBadInputCorpus sends a corpus of bad requests to a gateway backed by
// real Vault and kfake. Each must get its status and documented error_code,
// a message naming the field at fault (and "field" set where there is one),
// and no record may reach Kafka: the topics' high watermarks are unchanged.
// It complements TestBadInputGetsDocumentedErrorAndNothingIsProduced.
func TestBadInputCorpus(t *testing.T) {
	f := setupCorpus(t)
	topics := []string{"purchases", "cards", "docs", "raw", "unprotected"}
	before := map[string]int64{}
	for _, tp := range topics {
		before[tp] = testkit.HighWatermarks(t, f.gw.Kafka, tp)
	}
	cases := corpusCases()
	docCodes := documentedCodes(t)
	used := map[int]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.check(t, c, docCodes, used)
		})
	}
	for _, tp := range topics {
		if n := testkit.HighWatermarks(t, f.gw.Kafka, tp); n != before[tp] {
			t.Errorf("topic %s: high watermark %d -> %d after rejected requests", tp, before[tp], n)
		}
	}
	t.Logf("bad-input corpus: %d HTTP cases, %d distinct error codes, all documented: %v", len(cases), len(used), slices.Sorted(maps.Keys(used)))
}

// The endpoints a corpus case can call.
const (
	records = "records"
	batch   = "records:batch"
	read    = "read"
	files   = "files"
)

// corpusCase is one bad request and the error it must get.
type corpusCase struct {
	name        string
	endpoint    string // records (default), records:batch, read, files
	topic       string // default purchases
	cluster     string // default the real one
	query       string // read query or file name
	ctype       string // default application/json; "-" for none
	body        string
	status      int // 200 for a record's own error: it is in the record's report (REST Proxy)
	code        int
	field       string // the response's field
	msgHas      string // the message names the field (or the fault)
	plaintextOK bool
}

// corpusCases is the bad-input corpus: malformed JSON, wrong types and
// content types, sizes, invalid UTF-8 and base64, hostile header and file
// names, unknown topics and clusters.
func corpusCases() []corpusCase {
	deep := `{"value":{"type":"JSON","data":{"extra":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}}}`
	manyHeaders := `{"headers":[` + strings.Repeat(`{"name":"h","value":"eA=="},`, 4) + `{"name":"h","value":"eA=="}],"value":{"type":"JSON","data":{}}}`
	bigHeader := `{"headers":[{"name":"` + strings.Repeat("h", 1100) + `","value":"eA=="}],"value":{"type":"JSON","data":{}}}`
	var six []string
	for i := range 6 {
		six = append(six, fmt.Sprintf(`{"id":"e%d","value":{"type":"JSON","data":{"Name":"x"}}}`, i))
	}
	sixEntries := `{"entries":[` + strings.Join(six, ",") + `]}`
	huge := `{"entries":[{"id":"a","value":{"type":"JSON","data":{"Name":"` + strings.Repeat("x", 70000) + `"}}}]}`
	return []corpusCase{
		// Malformed and truncated JSON.
		{name: "truncated inside a string", body: `{"value":{"type":"JSON","data":{"Name":"An`, status: 400, code: httpapi.CodeBadJSON, msgHas: "JSON"},
		{name: "truncated batch", endpoint: batch, body: `{"entries":[{"id":"a","value":{"type":"JSON","data":{}}}`, status: 400, code: httpapi.CodeBadJSON, msgHas: "JSON"},
		{name: "garbage after batch", endpoint: batch, body: `{"entries":[{"id":"a","value":{"type":"JSON","data":{}}}]} {}`, status: 400, code: httpapi.CodeBadJSON, msgHas: "after the batch"},
		{name: "single quotes", body: `{'value':{'data':{}}}`, status: 400, code: httpapi.CodeBadJSON, msgHas: "JSON"},
		{name: "whitespace-only body", body: " \n\t ", status: 400, code: httpapi.CodeBadJSON, msgHas: "empty"},
		{name: "empty batch body", endpoint: batch, body: ``, status: 400, code: httpapi.CodeBadJSON, msgHas: "empty"},
		{name: "top-level array", body: `[{"value":{"type":"JSON","data":{}}}]`, status: 200, code: httpapi.CodeBadRequestField, msgHas: "JSON object"},
		// Content type.
		{name: "xml content type", ctype: "application/xml", body: produceBody(`{}`), status: 415, code: httpapi.CodeContentType, msgHas: "Content-Type"},
		{name: "unparsable content type", ctype: "application/json; =x", body: produceBody(`{}`), status: 415, code: httpapi.CodeContentType, msgHas: "Content-Type"},
		{name: "form content type on batch", endpoint: batch, ctype: "application/x-www-form-urlencoded", body: `{"entries":[]}`, status: 415, code: httpapi.CodeContentType, msgHas: "Content-Type"},
		// Sizes and nesting.
		{name: "huge batch body", endpoint: batch, body: huge, status: 413, code: httpapi.CodeBodyTooLarge, msgHas: "larger than"},
		{name: "deep array nesting", body: deep, status: 200, code: httpapi.CodeTooDeep, msgHas: "deep"},
		{name: "too many entries in a batch", endpoint: batch, body: sixEntries, status: 422, code: httpapi.CodeBatchInvalid, field: "entries", msgHas: "Too many entries"},
		// Invalid UTF-8.
		{name: "invalid UTF-8 in a policy field", body: produceBody("{\"Name\":\"Ann \xff\"}"), status: 400, code: httpapi.CodeBadJSON, msgHas: "UTF-8"},
		{name: "invalid UTF-8 in a BINARY value of a fields topic", body: `{"value":{"type":"BINARY","data":"eyJOYW1lIjoi/yJ9"}}`, status: 200, code: httpapi.CodeValueNotJSON, msgHas: "UTF-8"},
		{name: "invalid UTF-8 in a header name", body: "{\"headers\":[{\"name\":\"h\xfe\",\"value\":\"eA==\"}],\"value\":{\"type\":\"JSON\",\"data\":{}}}", status: 400, code: httpapi.CodeBadJSON, msgHas: "UTF-8"},
		{name: "invalid UTF-8 in a STRING value", topic: "raw", body: "{\"value\":{\"type\":\"STRING\",\"data\":\"a\xc3\"}}", status: 400, code: httpapi.CodeBadJSON, msgHas: "UTF-8"},
		// Wrong JSON type for a policy field, and for request fields.
		{name: "array in a transit field", body: produceBody(`{"Name":["Ann"]}`), status: 200, code: httpapi.CodeFieldType, field: "Name", msgHas: "Name"},
		{name: "boolean in a transit field", body: produceBody(`{"Address":true}`), status: 200, code: httpapi.CodeFieldType, field: "Address", msgHas: "Address"},
		{name: "path crosses a string", body: produceBody(`{"customer":"ann@example.com"}`), status: 200, code: httpapi.CodeFieldType, field: "customer", msgHas: "customer"},
		{name: "number in an fpe field", topic: "cards", body: produceBody(`{"credit_card":4111111111111111}`), status: 200, code: httpapi.CodeFieldType, field: "credit_card", msgHas: "credit_card"},
		{name: "partition_id as a string", body: `{"partition_id":"0","value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "partition_id", msgHas: "partition_id"},
		{name: "headers as an object", body: `{"headers":{"name":"h"},"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers", msgHas: "headers"},
		{name: "value type as a number", body: `{"value":{"type":1,"data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "value.type", msgHas: "value.type"},
		// Null values where a value is needed.
		{name: "null header name", body: `{"headers":[{"name":null,"value":"eA=="}],"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0].name", msgHas: "headers[0].name"},
		{name: "null batch entries", endpoint: batch, body: `{"entries":null}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries", msgHas: "entries"},
		// Card numbers with letters or signs.
		{name: "card with letters", topic: "cards", body: produceBody(`{"credit_card":"4111-1111-ABCD-1111"}`), status: 200, code: httpapi.CodeFieldInvalid, field: "credit_card", msgHas: "credit_card"},
		{name: "card with a sign", topic: "cards", body: produceBody(`{"credit_card":"+4111111111111111"}`), status: 200, code: httpapi.CodeFieldInvalid, field: "credit_card", msgHas: "credit_card"},
		{name: "card too short", topic: "cards", body: produceBody(`{"credit_card":"41"}`), status: 200, code: httpapi.CodeFieldInvalid, field: "credit_card", msgHas: "credit_card"},
		// Missing required fields.
		{name: "batch entry without id", endpoint: batch, body: `{"entries":[{"value":{"type":"JSON","data":{}}}]}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries[0].id", msgHas: "identifier is not a valid string"},
		{name: "batch entry with a numeric id", endpoint: batch, body: `{"entries":[{"id":"a","value":{"type":"JSON","data":{}}},{"id":1,"value":{"type":"JSON","data":{}}}]}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries[1].id", msgHas: "entries[1].id"},
		{name: "batch entry with an 81-character id", endpoint: batch, body: `{"entries":[{"id":"` + strings.Repeat("i", 81) + `","value":{"type":"JSON","data":{}}}]}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries[0].id", msgHas: "1 to 80"},
		{name: "batch entries with one id twice", endpoint: batch, body: `{"entries":[{"id":"1","value":{"type":"JSON","data":{}}},{"id":"2","value":{"type":"JSON","data":{}}},{"id":"1","value":{"type":"JSON","data":{}}}]}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries[2].id", msgHas: "not distinct"},
		{name: "empty entries", endpoint: batch, body: `{"entries":[]}`, status: 422, code: httpapi.CodeBatchInvalid, field: "entries", msgHas: "entries"},
		{name: "file upload without a name", endpoint: files, topic: "docs", ctype: "application/octet-stream", body: "x", status: 400, code: httpapi.CodeFileName, field: "name", msgHas: "name"},
		// Unknown topics, topics without a policy, unknown cluster.
		{name: "topic without a policy", topic: "unprotected", body: produceBody(purchase), status: 403, code: httpapi.CodeNoPolicy, msgHas: "unprotected"},
		{name: "batch to a topic without a policy", endpoint: batch, topic: "unprotected", body: `{"entries":[{"id":"a","value":{"type":"JSON","data":{"Name":"Ann Example"}}}]}`, status: 403, code: httpapi.CodeNoPolicy, msgHas: "unprotected"},
		{name: "file to a topic without a policy", endpoint: files, topic: "unprotected", query: "a.txt", ctype: "application/octet-stream", body: "Ann Example", status: 403, code: httpapi.CodeNoPolicy, msgHas: "unprotected"},
		{name: "file to a fields topic", endpoint: files, topic: "purchases", query: "a.txt", ctype: "application/octet-stream", body: "Ann Example", status: 422, code: httpapi.CodeFileNotEnvelope, msgHas: "envelope"},
		{name: "unknown partition (read)", endpoint: read, query: "partition=99", status: 404, code: httpapi.CodeTopicNotFound, msgHas: "partition"},
		{name: "partition not a number (read)", endpoint: read, query: "partition=zero", status: 400, code: httpapi.CodeBadQuery, field: "partition", msgHas: "partition"},
		{name: "unknown cluster (produce)", cluster: "not-this-cluster", body: produceBody(purchase), status: 404, code: httpapi.CodeClusterNotFound, msgHas: "not-this-cluster"},
		{name: "unknown cluster (batch)", endpoint: batch, cluster: "x", body: `{"entries":[{"id":"a","value":{"type":"JSON","data":{"Name":"Ann Example"}}}]}`, status: 404, code: httpapi.CodeClusterNotFound, msgHas: "Cluster x cannot be found."},
		// Hostile header names and values.
		{name: "NUL in a header name", body: `{"headers":[{"name":"a\u0000b","value":"eA=="}],"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0].name", msgHas: "headers[0].name"},
		{name: "CRLF in a header name", body: `{"headers":[{"name":"x\r\nkafkagate.fields","value":"eA=="}],"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0].name", msgHas: "headers[0].name"},
		{name: "reserved prefix, other case", body: `{"headers":[{"name":"t","value":"eA=="},{"name":"KafkaGate.Fields","value":"e30="}],"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[1].name", msgHas: "reserved"},
		{name: "envelope header forged on an envelope topic", topic: "docs", body: `{"headers":[{"name":"kafkagate.edek","value":"eA=="}],"value":{"type":"BINARY","data":"eA=="}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0].name", msgHas: "reserved"},
		{name: "header name over max_header_bytes", body: bigHeader, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0]", msgHas: "headers[0]"},
		{name: "more than max_headers", body: manyHeaders, status: 200, code: httpapi.CodeBadRequestField, field: "headers", msgHas: "headers"},
		{name: "header value not base64", body: `{"headers":[{"name":"h","value":"not base64!"}],"value":{"type":"JSON","data":{}}}`, status: 200, code: httpapi.CodeBadRequestField, field: "headers[0].value", msgHas: "headers[0].value"},
		// Invalid base64 in BINARY types.
		{name: "BINARY key bad base64", topic: "raw", body: `{"key":{"type":"BINARY","data":"@@@="},"value":{"type":"BINARY","data":"eA=="}}`, status: 200, code: httpapi.CodeBadRequestField, field: "key.data", msgHas: "key.data"},
		{name: "BINARY value bad padding", topic: "docs", body: `{"value":{"type":"BINARY","data":"eA="}}`, status: 200, code: httpapi.CodeBadRequestField, field: "value.data", msgHas: "value.data"},
		{name: "BINARY value is a number", topic: "docs", body: `{"value":{"type":"BINARY","data":12}}`, status: 200, code: httpapi.CodeBadRequestField, field: "value.data", msgHas: "value.data"},
		// Oversized and hostile file names.
		{name: "file name of 256 bytes", endpoint: files, topic: "docs", query: strings.Repeat("n", 256), ctype: "application/octet-stream", body: "x", status: 400, code: httpapi.CodeFileName, field: "name", msgHas: "name"},
		{name: "file name of 100 KiB", endpoint: files, topic: "docs", query: strings.Repeat("n", 100<<10), ctype: "application/octet-stream", body: "x", status: 400, code: httpapi.CodeFileName, field: "name", msgHas: "name"},
		{name: "file name with a path", endpoint: files, topic: "docs", query: "../../etc/passwd", ctype: "application/octet-stream", body: "x", status: 400, code: httpapi.CodeFileName, field: "name", msgHas: "name"},
		{name: "file name with NUL", endpoint: files, topic: "docs", query: "a\x00.txt", ctype: "application/octet-stream", body: "x", status: 400, code: httpapi.CodeFileName, field: "name", msgHas: "name"},
	}
}

// check sends c and checks the answer: status, documented error code,
// field, a message that names the fault and leaks no value. It records
// the error code it got in used.
func (f *corpusFixture) check(t *testing.T, c corpusCase, docCodes, used map[int]bool) {
	topic, cluster := c.topic, c.cluster
	if topic == "" {
		topic = "purchases"
	}
	if cluster == "" {
		cluster = f.cid
	}
	base := f.srv.URL
	if c.endpoint == files {
		base = f.files.URL
	}
	u := base + "/v3/clusters/" + url.PathEscape(cluster) + "/topics/" + topic + "/"
	method := http.MethodPost
	switch c.endpoint {
	case "", records:
		u += records
	case batch:
		u += batch
	case read:
		method, u = http.MethodGet, u+records+"?"+c.query
	case files:
		u += "files?name=" + url.QueryEscape(c.query)
	}
	req, err := http.NewRequest(method, u, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	switch c.ctype {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", c.ctype)
	}
	resp, b := testkit.Call(t, nil, req)
	if resp.StatusCode != c.status {
		t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, c.status, b)
	}
	var e errBody
	if c.status == http.StatusMultiStatus {
		var br struct {
			Successes []json.RawMessage `json:"successes"`
			Failures  []errBody         `json:"failures"`
		}
		if err := json.Unmarshal(b, &br); err != nil || len(br.Successes) != 0 || len(br.Failures) != 1 {
			t.Fatalf("batch result: %.300s", b)
		}
		e = br.Failures[0]
	} else if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %.300s", b)
	}
	used[e.ErrorCode] = true
	if e.ErrorCode != c.code {
		t.Fatalf("error_code %d, want %d (message %q)", e.ErrorCode, c.code, e.Message)
	}
	if !docCodes[e.ErrorCode] {
		t.Errorf("error_code %d is not documented in docs/errors.md", e.ErrorCode)
	}
	if e.Field != c.field {
		t.Errorf("field %q, want %q (message %q)", e.Field, c.field, e.Message)
	}
	if !strings.Contains(e.Message, c.msgHas) {
		t.Errorf("message %q does not name %q", e.Message, c.msgHas)
	}
	for _, s := range append(secrets, "4111") {
		if strings.Contains(e.Message, s) {
			t.Errorf("message leaks a value: %s", e.Message)
		}
	}
}

// TestBadInputMixedBatch sends a batch of good and bad records to every
// protection mode: 207, one result per entry with its code and field, and
// exactly the good records reach Kafka (watermarks move by that many, and
// none carries plaintext).
func TestBadInputMixedBatch(t *testing.T) {
	f := setupCorpus(t)
	type entry struct {
		topic, body string
		code        int // 200: produced
		field       string
	}
	cases := []entry{
		{"purchases", `{"id":"ok1","value":{"type":"JSON","data":{"Name":"Ann Example","Address":"1 Main St, Springfield"}}}`, 200, ""},
		{"purchases", `{"id":"num","value":{"type":"JSON","data":{"Name":7}}}`, httpapi.CodeFieldType, "Name"},
		{"purchases", `{"id":"dup","value":{"type":"JSON","data":{"Address":"x","Address":"1 Main St, Springfield"}}}`, httpapi.CodeDuplicateKey, "Address"},
		{"purchases", `{"id":"hdr","headers":[{"name":"kafkagate.fields","value":"e30="}],"value":{"type":"JSON","data":{"Name":"Ann Example"}}}`, httpapi.CodeBadRequestField, "headers[0].name"},
		{"purchases", `{"id":"ok2","value":{"type":"JSON","data":{"customer":{"email":"ann@example.com"}}}}`, 200, ""},
		{"cards", `{"id":"ok1","value":{"type":"JSON","data":{"credit_card":"2516-2848-6785-9087"}}}`, 200, ""},
		{"cards", `{"id":"letters","value":{"type":"JSON","data":{"credit_card":"2516-2848-6785-90AB"}}}`, httpapi.CodeFieldInvalid, "credit_card"},
		// A repeated id refuses the whole batch (42208, "batch entries with
		// one id twice" above); here ids are distinct.
		{"cards", `{"id":"visa","value":{"type":"JSON","data":{"credit_card":"4111111111111111"}}}`, 200, ""},
		{"docs", `{"id":"ok1","value":{"type":"STRING","data":"Ann Example"}}`, 200, ""},
		{"docs", `{"id":"b64","value":{"type":"BINARY","data":"%%"}}`, httpapi.CodeBadRequestField, "value.data"},
		{"docs", `{"id":"unknown","value":{"type":"JSON","data":{}},"colour":"red"}`, httpapi.CodeBadRequestField, "colour"},
	}
	byTopic := map[string][]entry{}
	var order []string
	for _, c := range cases {
		if _, ok := byTopic[c.topic]; !ok {
			order = append(order, c.topic)
		}
		byTopic[c.topic] = append(byTopic[c.topic], c)
	}
	for _, topic := range order {
		es := byTopic[topic]
		before := testkit.HighWatermarks(t, f.gw.Kafka, topic)
		var raws []string
		for _, e := range es {
			raws = append(raws, e.body)
		}
		resp, b := f.post(t, f.url(topic)+":batch", "application/json", `{"entries":[`+strings.Join(raws, ",")+`]}`)
		if resp.StatusCode != http.StatusMultiStatus {
			t.Fatalf("%s: status %d: %s", topic, resp.StatusCode, b)
		}
		var br struct {
			Successes []struct {
				ID        string `json:"id"`
				ErrorCode int    `json:"error_code"`
			} `json:"successes"`
			Failures []struct {
				ID string `json:"id"`
				errBody
			} `json:"failures"`
		}
		if err := json.Unmarshal(b, &br); err != nil {
			t.Fatal(err)
		}
		good := 0
		fi := 0
		for i, e := range es {
			if e.code == 200 {
				good++
				continue
			}
			if fi >= len(br.Failures) {
				t.Fatalf("%s entry %d: no failure reported: %s", topic, i, b)
			}
			got := br.Failures[fi]
			fi++
			if got.ErrorCode != e.code || got.Field != e.field || !strings.Contains(got.Message, e.field) {
				t.Errorf("%s entry %d: code %d field %q message %q; want %d %q", topic, i, got.ErrorCode, got.Field, got.Message, e.code, e.field)
			}
			if !documentedCodes(t)[got.ErrorCode] {
				t.Errorf("code %d not in docs/errors.md", got.ErrorCode)
			}
		}
		if len(br.Successes) != good || fi != len(br.Failures) {
			t.Fatalf("%s: %d successes (want %d), %d failures: %s", topic, len(br.Successes), good, len(br.Failures), b)
		}
		if after := testkit.HighWatermarks(t, f.gw.Kafka, topic); after-before != int64(good) {
			t.Fatalf("%s: watermark moved by %d, want %d (only the good records)", topic, after-before, good)
		}
		for _, rec := range f.raw(t, topic) {
			for _, s := range secrets {
				if strings.Contains(string(rec.Value), s) {
					t.Fatalf("%s: plaintext %q stored", topic, s)
				}
			}
		}
		t.Logf("%s: %d entries, %d produced, %d refused with their codes", topic, len(es), good, len(br.Failures))
	}
}
