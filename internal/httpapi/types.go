package httpapi

// Record types: produce records the type it was given for a record's key
// and value (JSON, STRING or BINARY) in the kafkagate.type header, and
// every read path renders the key and value in that type. Old records
// without the header, and values the header does not fit (a value that
// failed to decrypt is still ciphertext), are rendered by their content as
// before: JSON when they parse, STRING when they are UTF-8, else BINARY.
// The header only chooses the representation; the topic's policy alone
// decides decryption.

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Data types of a key or value.
const (
	TypeJSON   = "JSON"
	TypeString = "STRING"
	TypeBinary = "BINARY"
)

// recordTypes is the JSON form of the kafkagate.type header.
type recordTypes struct {
	K string `json:"k,omitempty"`
	V string `json:"v,omitempty"`
}

// TypeHeader is the kafkagate.type header for a record whose key and
// value were given as keyType and valueType ("" for none); nil when both
// are "".
func TypeHeader(keyType, valueType string) []kafka.Header {
	if keyType == "" && valueType == "" {
		return nil
	}
	b, _ := json.Marshal(recordTypes{K: keyType, V: valueType})
	return []kafka.Header{{Key: record.HeaderType, Value: b}}
}

// typesOf reads a record's kafkagate.type header; unknown or damaged
// values are ignored (the content decides then).
func typesOf(hs []kafka.Header) (key, value string) {
	b, ok := record.HeaderValue(hs, record.HeaderType)
	if !ok {
		return "", ""
	}
	var t recordTypes
	if json.Unmarshal(b, &t) != nil {
		return "", ""
	}
	return knownType(t.K), knownType(t.V)
}

func knownType(t string) string {
	switch t {
	case TypeJSON, TypeString, TypeBinary:
		return t
	}
	return ""
}

// renderData renders b in type typ when b fits it, else by its content.
// STRING needs valid UTF-8 (a JSON string cannot carry other bytes), JSON
// a valid JSON text; BINARY fits any bytes.
func renderData(b []byte, typ string) *Data {
	if b == nil {
		return nil
	}
	switch {
	case typ == TypeJSON && json.Valid(b):
		return &Data{Type: TypeJSON, Data: b}
	case typ == TypeString && utf8.Valid(b):
		s, _ := json.Marshal(string(b))
		return &Data{Type: TypeString, Data: s}
	case typ == TypeBinary:
		s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
		return &Data{Type: TypeBinary, Data: s}
	}
	return asData(b)
}

// dataType is the type a record's key or value is rendered in: the
// recorded one when the bytes fit it, else the one its content suggests.
func dataType(b []byte, recorded string) string {
	if d := renderData(b, recorded); d != nil {
		return d.Type
	}
	return ""
}

// RenderOptions choose how read paths render records.
type RenderOptions struct {
	// InternalHeaders keeps the kafkagate.* headers in the output; by
	// default they are hidden (they describe the stored form, which the
	// reader does not see).
	InternalHeaders bool
}

// InternalHeadersParam is the query parameter of the decrypting reads
// (GET .../records, .../records:stream and the v2 consumer's records)
// that shows the kafkagate.* headers: internal_headers=true.
const InternalHeadersParam = "internal_headers"

// internalHeader reports the headers hidden from readers by default.
func internalHeader(name string) bool {
	return strings.HasPrefix(name, record.HeaderPrefix)
}

// outHeaders renders a record's headers (values base64), without the
// internal ones unless asked.
func outHeaders(hs []kafka.Header, o RenderOptions) []OutHeader {
	out := []OutHeader{}
	for _, h := range hs {
		if !o.InternalHeaders && internalHeader(h.Key) {
			continue
		}
		var v *string
		if h.Value != nil {
			e := base64.StdEncoding.EncodeToString(h.Value)
			v = &e
		}
		out = append(out, OutHeader{Name: h.Key, Value: v})
	}
	return out
}

// valueType is the recorded type that applies to an opened value: none
// when the value is not the plaintext the writer gave (a failed record,
// a file chunk).
func valueType(o protect.Opened, recorded string) string {
	switch o.Status {
	case protect.StatusFailed, protect.StatusFileChunk:
		return ""
	}
	return recorded
}
