package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzProduceBody: the REST body decoder (one record object) never panics
// and every refusal carries a 400-class code, or 42206 for a key or value
// without type (REST Proxy's answer without Schema Registry). Wherever the
// single-pass decode (decodeRecordFast) takes a record, it reads what
// decodeRecord reads.
func FuzzProduceBody(f *testing.F) {
	for _, s := range []string{
		`{"value":{"type":"JSON","data":{"a":"b"}}}`,
		`{"key":{"type":"BINARY","data":"AAE="},"headers":[{"name":"h","value":"eA=="}],"value":{"type":"STRING","data":"x"}}`,
		`{"partition_id":-1,"value":null}`,
		`{"headers":[{"name":"kafkagate.fields","value":"!"}],"value":{"data":1}}`,
		`{"value":{"type":"AVRO"}}`,
		`{"valeu":{}}`,
		`{"partition_id":2,"timestamp":"2026-12-04T05:00:00.123Z","headers":[{"name":"h","value":null},{"name":"i"}],"key":null,"value":{"type":"JSON","data":{"a":"\u00e9"},"schema":null}}`,
		`{"headers":[],"value":{"type":"STRING","data":null,"subject":"s"}}`,
		`{"Value":{"type":"JSON","data":1}}`,
		`{"value":{"type":"JSON","data":1},"value":null}`,
		`{"partition_id":1e2}`,
		`{"partition_id":2147483648}`,
		`{"timestamp":"yesterday"}`,
		`{"headers":[null]}`,
	} {
		f.Add([]byte(s))
	}
	s := New(Config{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || len(raw) == 0 || raw[0] != '{' {
			return
		}
		req, aerr := decodeRecord(raw)
		if fast, ok := decodeRecordFast(raw); ok && (aerr != nil || !reflect.DeepEqual(fast, req)) {
			t.Fatalf("the single-pass decode read %+v; decodeRecord: %+v, %v", fast, req, aerr)
		}
		if aerr != nil {
			if aerr.status() != 400 {
				t.Fatalf("decode refusal with code %d", aerr.ErrorCode)
			}
			return
		}
		p := s.prepare("t", req)
		if p.err != nil && p.err.status() != 400 && p.err.ErrorCode != CodeInvalidPayload {
			t.Fatalf("prepare refusal with code %d", p.err.ErrorCode)
		}
	})
}
