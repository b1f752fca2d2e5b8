package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxHeaderBytes bounds a kafkagate.fields or kafkagate.sealed header a
// reader accepts.
const MaxHeaderBytes = 64 << 10

// Field modes named in a FieldsHeader.
const (
	ModeTransit = "transit"
	ModeFPE     = "fpe"
)

// FieldsHeader is the JSON value of the kafkagate.fields header, version 1
// (docs/wire-format.md): the record's encrypted fields and how each was
// encrypted. It describes; the topic's policy decides what a reader
// accepts.
type FieldsHeader struct {
	V int          `json:"v"`
	F []FieldEntry `json:"f"`
}

// FieldEntry is one encrypted field of a FieldsHeader.
type FieldEntry struct {
	P   string `json:"p"`             // dotted path
	M   string `json:"m"`             // mode: ModeTransit or ModeFPE
	K   string `json:"k,omitempty"`   // transit key
	A   int    `json:"a,omitempty"`   // 1: bound to topic+path as AAD
	D   string `json:"d,omitempty"`   // fpe domain
	N   int    `json:"n,omitempty"`   // fpe key version
	Fmt string `json:"fmt,omitempty"` // fpe format
	B   int    `json:"b,omitempty"`   // 1: fpe token bound to its topic (tweak)
}

// Encode is h's header value.
func (h FieldsHeader) Encode() ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode %s header: %w", HeaderFields, err)
	}
	return b, nil
}

// DecodeFieldsHeader parses and checks a kafkagate.fields value: at most
// MaxHeaderBytes, version 1, no unknown members, flags 0 or 1, and each
// field complete for its mode. Paths are not parsed here (the policy
// package owns their syntax).
func DecodeFieldsHeader(b []byte) (FieldsHeader, error) {
	var h FieldsHeader
	if len(b) > MaxHeaderBytes {
		return h, errors.New("header too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("header is not valid: %w", err)
	}
	if h.V != 1 {
		return h, fmt.Errorf("header format version %d is not supported", h.V)
	}
	for _, f := range h.F {
		if f.A < 0 || f.A > 1 || f.B < 0 || f.B > 1 {
			return h, errors.New("field flags a and b must be 0 or 1")
		}
		switch f.M {
		case ModeTransit:
			if f.K == "" {
				return h, errors.New("transit field without key name")
			}
		case ModeFPE:
			if f.D == "" || f.N < 1 || f.Fmt == "" {
				return h, errors.New("fpe field without domain, version or format")
			}
		default:
			return h, fmt.Errorf("unknown field mode %q", f.M)
		}
	}
	return h, nil
}

// SealedHeader is the JSON value of the kafkagate.sealed header, version 1:
// the transit key a whole sealed value (a dead letter) was sealed with.
type SealedHeader struct {
	V int    `json:"v"`
	K string `json:"k"`
}

// SealedWith is the kafkagate.sealed value for a value sealed with key.
func SealedWith(key string) []byte {
	b, _ := json.Marshal(SealedHeader{V: 1, K: key}) // a struct of an int and a string always marshals
	return b
}

// DecodeSealedHeader parses and checks a kafkagate.sealed value.
func DecodeSealedHeader(b []byte) (SealedHeader, error) {
	var h SealedHeader
	if len(b) > MaxHeaderBytes {
		return h, errors.New("header too large")
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("header is not valid: %w", err)
	}
	if h.V != 1 || h.K == "" {
		return h, fmt.Errorf("header version %d or key %q not supported", h.V, h.K)
	}
	return h, nil
}
