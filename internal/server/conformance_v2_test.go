package server_test

// REST Proxy v2 consumer conformance: every answer of the v2 consumer API
// is decoded strictly (unknown fields refused) into the shapes of REST
// Proxy v2 (kafka-rest's v2 entities: CreateConsumerInstanceResponse,
// ConsumerSubscriptionResponse, the consumer records, ConsumerCommitted
// Response, the error), encoded below, with their required fields and
// content types. kafkagate's documented extensions of a record
// (timestamp, key_type, value_type, headers, decryption) are part of the
// record struct.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

type specV2Create struct {
	InstanceID string `json:"instance_id"`
	BaseURI    string `json:"base_uri"`
}

var v2CreateRequired = []string{"instance_id", "base_uri"}

type specV2Subscription struct {
	Topics []string `json:"topics"`
}

// specV2Record is a JSON, binary or string consumer record; key and value
// are embedded in the instance's format.
type specV2Record struct {
	Topic     string          `json:"topic"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Timestamp time.Time       `json:"timestamp"`
	KeyType   string          `json:"key_type"`
	ValueType string          `json:"value_type"`
	Headers   []struct {
		Name  string  `json:"name"`
		Value *string `json:"value"`
	} `json:"headers"`
	Decryption struct {
		Status string                `json:"status"`
		Code   string                `json:"code"`
		Error  string                `json:"error"`
		Fields []protect.FieldStatus `json:"fields"`
	} `json:"decryption"`
}

var v2RecordRequired = []string{"topic", "key", "value", "partition", "offset", "decryption.status", "decryption.fields", "headers"}

type specV2Offset struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Metadata  *string `json:"metadata"`
}

type specV2Committed struct {
	Offsets []specV2Offset `json:"offsets"`
}

var v2CommittedRequired = []string{"offsets", "offsets[].topic", "offsets[].partition", "offsets[].offset"}

// wantV2 checks a v2 answer's status and content type and decodes it
// strictly.
func wantV2(t *testing.T, resp *http.Response, b []byte, status int, ctype string, v any, required []string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %.400s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ctype {
		t.Fatalf("Content-Type %q, want %q", ct, ctype)
	}
	strict(t, b, v, required)
}

// wantV2Err checks an error answer of the v2 API.
func wantV2Err(t *testing.T, resp *http.Response, b []byte, status, code int) {
	t.Helper()
	var e specError
	wantV2(t, resp, b, status, httpapi.MediaV2, &e, errorRequired)
	if e.ErrorCode != code || e.Message == nil || *e.Message == "" {
		t.Fatalf("error_code %d, want %d: %s", e.ErrorCode, code, b)
	}
}

func TestRESTProxyConformanceV2Consumer(t *testing.T) {
	f := setup(t)
	for i := 0; i < 2; i++ {
		f.produceOK(t, "purchases", purchase)
	}
	srv := f.srv.URL
	records := func(t *testing.T, base, format string, n int) []specV2Record {
		t.Helper()
		var out []specV2Record
		for deadline := time.Now().Add(60 * time.Second); len(out) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d records after a minute", len(out))
			}
			resp, b := v2Call(t, http.MethodGet, base+"/records?timeout=500&max_bytes=100000", "", "application/vnd.kafka."+format+".v2+json", "")
			var raws []json.RawMessage
			wantV2(t, resp, b, 200, "application/vnd.kafka."+format+".v2+json", &raws, nil)
			for _, raw := range raws {
				var r specV2Record
				strict(t, raw, &r, v2RecordRequired)
				out = append(out, r)
			}
		}
		return out
	}

	t.Run("good requests", func(t *testing.T) {
		for _, c := range []struct{ body, format string }{
			{``, "binary"},
			{`{}`, "binary"},
			{`{"name":"c1","format":"json","auto.offset.reset":"earliest","auto.commit.enable":true}`, "json"},
			{`{"name":"c2","format":"string","auto.offset.reset":"smallest","auto.commit.enable":"false","fetch.min.bytes":"-1","consumer.request.timeout.ms":500}`, "string"},
			{`{"id":"c3","format":"BINARY","auto.offset.reset":"earliest"}`, "binary"},
		} {
			// One group each: a group resumes from its committed offsets.
			resp, b := v2Call(t, http.MethodPost, srv+"/consumers/conf-"+c.format+strconv.Itoa(len(c.body)), "", "", c.body)
			var cr specV2Create
			wantV2(t, resp, b, 200, httpapi.MediaV2, &cr, v2CreateRequired)
			base := cr.BaseURI
			resp, b = v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["purchases"]}`)
			if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
				t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
			}
			var sr specV2Subscription
			resp, b = v2Call(t, http.MethodGet, base+"/subscription", "", "", "")
			wantV2(t, resp, b, 200, httpapi.MediaV2, &sr, []string{"topics"})
			if len(sr.Topics) != 1 || sr.Topics[0] != "purchases" {
				t.Fatalf("subscription %s", b)
			}
			if c.body != "" && c.body != `{}` { // the defaults start at the newest record
				recs := records(t, base, c.format, 2)
				if recs[0].Decryption.Status != "decrypted" || recs[1].Offset != 1 {
					t.Fatalf("records %+v", recs)
				}
				resp, b = v2Call(t, http.MethodPost, base+"/offsets", "", "", ``)
				var none []specV2Offset
				wantV2(t, resp, b, 200, httpapi.MediaV2, &none, nil)
				resp, b = v2Call(t, http.MethodGet, base+"/offsets", "", "", `{"partitions":[{"topic":"purchases","partition":0},{"topic":"purchases","partition":7}]}`)
				var cm specV2Committed
				wantV2(t, resp, b, 200, httpapi.MediaV2, &cm, v2CommittedRequired)
				if len(cm.Offsets) != 1 || cm.Offsets[0].Offset != 2 {
					t.Fatalf("committed %s", b)
				}
			}
			resp, b = v2Call(t, http.MethodDelete, base+"/subscription", "", "", "")
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("unsubscribe: %d %s", resp.StatusCode, b)
			}
			resp, b = v2Call(t, http.MethodGet, base+"/subscription", "", "", "")
			wantV2(t, resp, b, 200, httpapi.MediaV2, &sr, []string{"topics"})
			if len(sr.Topics) != 0 {
				t.Fatalf("after unsubscribe: %s", b)
			}
			if resp, b := v2Call(t, http.MethodDelete, base, "", "", ""); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", resp.StatusCode, b)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		base := v2Create(t, srv, "", "bad", `{"name":"b1","format":"json","auto.offset.reset":"earliest"}`)
		for _, c := range []struct {
			name, method, url, ctype, accept, body string
			status, code                           int
		}{
			{"malformed JSON", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"name":`, 400, httpapi.CodeBadJSON},
			{"unknown field", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"nmae":"x"}`, 400, httpapi.CodeBadRequestField},
			{"avro", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"format":"avro"}`, 400, httpapi.CodeSchemaUnsupported},
			{"unknown format", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"format":"xml"}`, 422, httpapi.CodeInvalidConsumerConfig},
			{"auto.offset.reset none", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"auto.offset.reset":"none"}`, 422, httpapi.CodeInvalidConsumerConfig},
			{"auto.commit.enable", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"auto.commit.enable":"maybe"}`, 422, httpapi.CodeInvalidConsumerConfig},
			{"bad instance name", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"name":"a/b"}`, 422, httpapi.CodeInvalidConsumerConfig},
			{"duplicate name", "POST", srv + "/consumers/bad", httpapi.MediaV2, "", `{"name":"b1"}`, 409, httpapi.CodeConsumerExists},
			{"bad group name", "POST", srv + "/consumers/a%20b", httpapi.MediaV2, "", `{}`, 400, httpapi.CodeBadRequestField},
			{"topics and pattern", "POST", base + "/subscription", httpapi.MediaV2, "", `{"topics":["purchases"],"topic_pattern":"p.*"}`, 400, httpapi.CodeBadRequestField},
			{"no topics", "POST", base + "/subscription", httpapi.MediaV2, "", `{}`, 400, httpapi.CodeBadRequestField},
			{"empty topics", "POST", base + "/subscription", httpapi.MediaV2, "", `{"topics":[]}`, 400, httpapi.CodeBadRequestField},
			{"bad pattern", "POST", base + "/subscription", httpapi.MediaV2, "", `{"topic_pattern":"("}`, 400, httpapi.CodeBadRequestField},
			{"unknown topic", "POST", base + "/subscription", httpapi.MediaV2, "", `{"topics":["no-such-topic"]}`, 404, httpapi.CodeTopicNotFound},
			{"records before subscribing", "GET", base + "/records", "", "", "", 409, httpapi.CodeConsumerIllegalState},
			{"commit before subscribing", "POST", base + "/offsets", httpapi.MediaV2, "", "", 409, httpapi.CodeConsumerIllegalState},
			{"Accept binary on a json instance", "GET", base + "/records", "", "application/vnd.kafka.binary.v2+json", "", 406, httpapi.CodeConsumerFormatMismatch},
			{"Accept avro", "GET", base + "/records", "", "application/vnd.kafka.avro.v2+json", "", 406, httpapi.CodeConsumerFormatMismatch},
			{"Accept text/html", "GET", base + "/records", "", "text/html", "", 406, httpapi.CodeConsumerFormatMismatch},
			{"bad timeout", "GET", base + "/records?timeout=soon", "", "application/vnd.kafka.json.v2+json", "", 400, httpapi.CodeBadQuery},
			{"offsets without partitions", "GET", base + "/offsets", "", "", "", 400, httpapi.CodeBadRequestField},
			{"unknown instance", "GET", srv + "/consumers/bad/instances/nobody/subscription", "", "", "", 404, httpapi.CodeConsumerNotFound},
			{"manual assignment", "POST", base + "/assignments", httpapi.MediaV2, "", `{"partitions":[]}`, 501, httpapi.CodeV2Unsupported},
			{"seek", "POST", base + "/positions/beginning", httpapi.MediaV2, "", `{"partitions":[]}`, 501, httpapi.CodeV2Unsupported},
		} {
			t.Run(c.name, func(t *testing.T) {
				req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				if c.ctype != "" {
					req.Header.Set("Content-Type", c.ctype)
				}
				if c.accept != "" {
					req.Header.Set("Accept", c.accept)
				}
				resp, b := testkit.Call(t, nil, req)
				wantV2Err(t, resp, b, c.status, c.code)
			})
		}
		// A partition the instance is not assigned cannot be committed.
		if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["purchases"]}`); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
		}
		records(t, base, "json", 1)
		resp, b := v2Call(t, http.MethodPost, base+"/offsets", "", "", `{"offsets":[{"topic":"purchases","partition":9,"offset":0}]}`)
		wantV2Err(t, resp, b, 409, httpapi.CodeConsumerIllegalState)
		resp, b = v2Call(t, http.MethodPost, base+"/offsets", "", "", `{"offsets":[{"topic":"purchases","partition":0,"offset":-4}]}`)
		wantV2Err(t, resp, b, 400, httpapi.CodeBadRequestField)
	})
}
