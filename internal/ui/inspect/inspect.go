// Package inspect describes a Kafka record as it is stored, which is what
// the broker's operator sees, without decrypting anything: the value as
// text (or base64 when binary), its size, the headers, and which keys and
// key versions protect it. It reads the key versions from kafkagate's
// headers (kafkagate.fields, kafkagate.kek and kafkagate.edek,
// kafkagate.sealed) and from the vault:vN: prefix of transit ciphertexts.
package inspect

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Formats of a stored record: protect's record formats, plus one for
// records whose kafkagate headers contradict each other.
const (
	FormatFields    = string(protect.FormatFields)
	FormatSealed    = string(protect.FormatSealed)
	FormatLegacy    = string(protect.FormatLegacy)
	FormatPlaintext = string(protect.FormatPlain)
	FormatDamaged   = "damaged" // more than one kafkagate format, or a damaged kafkagate.format
)

// HeaderView is one record header as shown; Value is text, or base64 when
// Binary.
type HeaderView struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Binary bool   `json:"binary,omitempty"`
	// Withheld: the value is stored in clear and not shown ("").
	Withheld bool `json:"withheld,omitempty"`
}

// KeyUse is one key protecting (part of) a record.
type KeyUse struct {
	Field   string `json:"field,omitempty"`  // dotted path, for fields
	Mode    string `json:"mode"`             // transit, fpe, envelope, sealed, legacy
	Key     string `json:"key,omitempty"`    // transit key (the KEK for envelope)
	Domain  string `json:"domain,omitempty"` // FPE domain
	Version int    `json:"version"`          // key version; 0 when unknown
}

// Stored is a record as kept by Kafka.
type Stored struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Key       *string   `json:"key"` // nil for a null key; base64 when KeyBinary
	KeyBinary bool      `json:"key_binary,omitempty"`
	// KeyWithheld: the record has a key (stored in clear) not shown.
	KeyWithheld bool `json:"key_withheld,omitempty"`
	// Value is the value as text, or base64 when ValueBinary; at most
	// the limit given to Describe (Truncated then says so). nil: null.
	Value       *string      `json:"value"`
	ValueBinary bool         `json:"value_binary,omitempty"`
	ValueSize   int          `json:"value_size"`
	Truncated   bool         `json:"truncated,omitempty"`
	Headers     []HeaderView `json:"headers"`
	// Format is record/1, chunk/1 (kafkagate.format) or one of the
	// Format* constants.
	Format string   `json:"format"`
	Keys   []KeyUse `json:"keys"`
}

// Describe renders r; values longer than limit bytes are cut (0: no
// limit).
func Describe(r kafka.Record, limit int) Stored {
	s := Stored{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		ValueSize: len(r.Value), Headers: []HeaderView{}, Keys: []KeyUse{}}
	if r.Key != nil {
		k, bin := text(r.Key)
		s.Key, s.KeyBinary = &k, bin
	}
	if r.Value != nil {
		v := r.Value
		if limit > 0 && len(v) > limit {
			v, s.Truncated = v[:limit], true
			if utf8.Valid(r.Value) {
				for len(v) > 0 && !utf8.Valid(v) {
					v = v[:len(v)-1] // do not cut a character in two
				}
			}
		}
		t, bin := text(v)
		s.Value, s.ValueBinary = &t, bin
	}
	hs := map[string][]byte{}
	for _, h := range r.Headers {
		v, bin := text(h.Value)
		s.Headers = append(s.Headers, HeaderView{Name: h.Key, Value: v, Binary: bin})
		if _, seen := hs[h.Key]; !seen {
			hs[h.Key] = h.Value
		}
	}
	f, err := protect.DetectFormat(r.Headers)
	s.Format = string(f)
	if err != nil {
		s.Format = FormatDamaged
		return s
	}
	switch f {
	case protect.FormatEnvelope, protect.FormatChunk:
		key := string(hs[envelope.HeaderKEK])
		if i := strings.LastIndexByte(key, '/'); i >= 0 {
			key = key[i+1:]
		}
		s.Keys = append(s.Keys, KeyUse{Mode: "envelope", Key: key, Version: Version(string(hs[envelope.HeaderEDEK]))})
	case protect.FormatSealed:
		var h struct {
			K string `json:"k"`
		}
		_ = json.Unmarshal(hs[protect.HeaderSealed], &h)
		s.Keys = append(s.Keys, KeyUse{Mode: "sealed", Key: h.K, Version: Version(string(r.Value))})
	case protect.FormatFields:
		s.Keys = append(s.Keys, fieldKeys(hs[protect.HeaderFields], r.Value)...)
	case protect.FormatLegacy:
		s.Keys = append(s.Keys, KeyUse{Mode: "legacy", Key: envelope.DefaultLegacyKEK, Version: Version(string(hs[envelope.LegacyKeyHeader]))})
	}
	return s
}

// fieldKeys reads a kafkagate.fields header: FPE versions are in it,
// transit versions in the ciphertexts it points at.
func fieldKeys(header, value []byte) []KeyUse {
	var h struct {
		F []struct {
			P string `json:"p"`
			M string `json:"m"`
			K string `json:"k"`
			D string `json:"d"`
			N int    `json:"n"`
		} `json:"f"`
	}
	if json.Unmarshal(header, &h) != nil {
		return nil
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	_ = d.Decode(&doc)
	out := make([]KeyUse, 0, len(h.F))
	for _, f := range h.F {
		k := KeyUse{Field: f.P, Mode: f.M, Key: f.K, Domain: f.D, Version: f.N}
		if f.M == "transit" {
			if s, ok := lookup(doc, f.P).(string); ok {
				k.Version = Version(s)
			}
		}
		out = append(out, k)
	}
	return out
}

func lookup(doc map[string]any, path string) any {
	parts, err := policy.SplitPath(path)
	if err != nil {
		return nil
	}
	var cur any = doc
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// Version is N of a "vault:vN:..." ciphertext, or 0 where kms.Version
// refuses it.
func Version(ct string) int {
	v, err := kms.Version(ct)
	if err != nil {
		return 0
	}
	return v
}

// text is b as a string when it is printable UTF-8, else base64 (true).
func text(b []byte) (string, bool) {
	if utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' && r != '\r' }) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

// Withheld replaces every redacted JSON scalar.
const Withheld = "(withheld)"

// RedactJSON keeps a JSON text's structure, object keys, nulls and transit
// ciphertexts (vault:vN:...), and replaces every other string, number and
// boolean with Withheld: what a fields-mode record shows to a viewer who
// may not read it. It reads tokens (json.Decoder.Token), so deep nesting
// costs no stack. ok is false when v is not JSON.
func RedactJSON(v []byte) (out []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var b bytes.Buffer
	type container struct {
		object bool
		n      int // tokens written inside: keys and values
	}
	var stack []container
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return b.Bytes(), true
		}
		if err != nil {
			return nil, false
		}
		key := false
		if d, isDelim := tok.(json.Delim); len(stack) > 0 && (!isDelim || d == '{' || d == '[') {
			c := &stack[len(stack)-1]
			switch {
			case c.object && c.n%2 == 1:
				b.WriteByte(':')
			case c.n > 0:
				b.WriteByte(',')
			}
			key = c.object && c.n%2 == 0
			c.n++
		}
		switch t := tok.(type) {
		case json.Delim:
			b.WriteByte(byte(t))
			if t == '{' || t == '[' {
				stack = append(stack, container{object: t == '{'})
			} else {
				stack = stack[:len(stack)-1]
			}
		case string:
			if !key && Version(t) == 0 {
				t = Withheld
			}
			q, _ := json.Marshal(t)
			b.Write(q)
		case nil:
			b.WriteString("null")
		default:
			b.WriteString(`"` + Withheld + `"`)
		}
	}
}
