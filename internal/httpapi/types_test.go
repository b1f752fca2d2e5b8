package httpapi

import (
	"testing"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// TestRenderRecordTypes: the recorded type wins when the bytes fit it;
// otherwise, and without a header, the content decides; a failed value
// ignores the recorded type; internal headers are hidden unless asked.
func TestRenderRecordTypes(t *testing.T) {
	for _, c := range []struct {
		name, header string
		value        []byte
		status       protect.Status
		typ, data    string
	}{
		{"STRING digits", `{"v":"STRING"}`, []byte("123"), protect.StatusDecrypted, "STRING", `"123"`},
		{"BINARY text", `{"v":"BINARY"}`, []byte("hello"), protect.StatusDecrypted, "BINARY", `"aGVsbG8="`},
		{"JSON", `{"v":"JSON"}`, []byte(`{"a":1}`), protect.StatusUnencrypted, "JSON", `{"a":1}`},
		{"no header", "", []byte("123"), protect.StatusUnencrypted, "JSON", `123`},
		{"damaged header", `{"v":`, []byte("hello"), protect.StatusDecrypted, "STRING", `"hello"`},
		{"unknown type", `{"v":"AVRO"}`, []byte("123"), protect.StatusDecrypted, "JSON", `123`},
		{"STRING not UTF-8", `{"v":"STRING"}`, []byte{0xff, 0x00}, protect.StatusDecrypted, "BINARY", `"/wA="`},
		{"JSON not JSON", `{"v":"JSON"}`, []byte("hello"), protect.StatusDecrypted, "STRING", `"hello"`},
		{"failed ignores the type", `{"v":"STRING"}`, []byte("123"), protect.StatusFailed, "JSON", `123`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := kafka.Record{Key: []byte("k"), Value: c.value}
			if c.header != "" {
				rec.Headers = []kafka.Header{{Key: "kafkagate.type", Value: []byte(c.header)}, {Key: "app", Value: []byte("x")}}
			}
			rr := ToReadRecord(rec, protect.Opened{Value: c.value, Status: c.status})
			if rr.Value.Type != c.typ || string(rr.Value.Data) != c.data {
				t.Fatalf("%s %s, want %s %s", rr.Value.Type, rr.Value.Data, c.typ, c.data)
			}
			for _, h := range rr.Headers {
				if h.Name == "kafkagate.type" {
					t.Fatal("internal header shown by default")
				}
			}
			if c.header != "" {
				if all := RenderRecord(rec, protect.Opened{Value: c.value, Status: c.status}, RenderOptions{InternalHeaders: true}); len(all.Headers) != 2 {
					t.Fatalf("internal headers asked: %+v", all.Headers)
				}
			}
		})
	}
}

func TestAcceptFormat(t *testing.T) {
	for _, c := range []struct {
		accept, own, want string
		ok                bool
	}{
		{"", "json", "json", true},
		{"*/*", "string", "string", true},
		{"application/vnd.kafka.json.v2+json", "json", "json", true},
		{"application/vnd.kafka.binary.v2+json", "json", "binary", true},
		{"application/vnd.kafka.v2+json", "json", "binary", true},
		{"application/json", "string", "binary", true},
		{"text/html, application/vnd.kafka.string.v2+json;q=0.9", "string", "string", true},
		{"application/vnd.kafka.json.v2+json;q=0, */*", "binary", "binary", true},
		{"text/html", "json", "", false},
	} {
		got, ok := acceptFormat(c.accept, c.own)
		if got != c.want || ok != c.ok {
			t.Errorf("acceptFormat(%q, %q) = %q %t, want %q %t", c.accept, c.own, got, ok, c.want, c.ok)
		}
	}
}
