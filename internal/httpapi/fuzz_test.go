package httpapi

import (
	"encoding/json"
	"testing"
)

// FuzzProduceBody: the REST body decoder (one record object) never panics
// and every refusal carries a 400-class code, or 42206 for a key or value
// without type (REST Proxy's answer without Schema Registry).
func FuzzProduceBody(f *testing.F) {
	for _, s := range []string{
		`{"value":{"type":"JSON","data":{"a":"b"}}}`,
		`{"key":{"type":"BINARY","data":"AAE="},"headers":[{"name":"h","value":"eA=="}],"value":{"type":"STRING","data":"x"}}`,
		`{"partition_id":-1,"value":null}`,
		`{"headers":[{"name":"kafkagate.fields","value":"!"}],"value":{"data":1}}`,
		`{"value":{"type":"AVRO"}}`,
		`{"valeu":{}}`,
	} {
		f.Add([]byte(s))
	}
	s := New(Config{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || len(raw) == 0 || raw[0] != '{' {
			return
		}
		req, aerr := decodeRecord(raw)
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
