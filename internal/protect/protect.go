// Package protect applies kafkagate's per-topic policies to records: on the
// way in it encrypts the policy's fields (one transit batch for all fields
// of all records handed over together), on the way out it decrypts them and
// reports a status per record and per field. Records travel with a
// kafkagate.fields header naming what was encrypted, so a consumer needs no
// policy to decrypt. It knows nothing of HTTP or Kafka clients.
package protect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/record"
)

// HeaderFields is the header listing a record's encrypted fields.
const HeaderFields = record.HeaderFields

// Header is a Kafka record header.
type Header = record.Header

// Record is a Kafka record; the engine reads Topic, Key, Value and Headers
// and carries the rest.
type Record = record.Record

// Error codes of record-level failures (stable; see docs/errors.md).
const (
	CodeInvalidJSON   = "invalid_json"
	CodeNotObject     = "not_object"
	CodeDuplicateKey  = "duplicate_key"
	CodeTooDeep       = "too_deep"
	CodeFieldType     = "field_type"
	CodeFieldInvalid  = "field_invalid"
	CodeEncryptFailed = "encrypt_failed"
	CodeUnsupported   = "mode_unsupported"
)

// ErrRecord is the kind of every *Error: the record itself is at fault.
var ErrRecord = errors.New("record refused")

// Error is a record-level failure. Its message never contains field values.
type Error struct {
	Code  string
	Field string // dotted path, when one field is at fault
	Msg   string
	Err   error // cause, if any
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("field %q: %s", e.Field, e.Msg)
	}
	return e.Msg
}

// Is makes errors.Is(err, ErrRecord) true.
func (e *Error) Is(target error) bool { return target == ErrRecord }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// FPE is the format-preserving cipher used for fpe fields.
type FPE interface {
	// Encrypt encrypts value in domain with format (and fallback, "" or
	// "full") using the domain's current key version. It returns the key
	// version and the format actually applied, which decryption needs.
	// A non-empty bind is part of the cipher's tweak (kafkagate passes the
	// topic), so the token decrypts only with the same bind.
	Encrypt(domain, format, fallback, bind, value string) (out string, version int, applied string, err error)
	// Decrypt decrypts value with the given key version, applied format
	// and bind ("" for tokens written before binding).
	Decrypt(domain, format, bind string, version int, value string) (string, error)
}

// ErrKeyUnavailable marks an FPE error that is not the record's fault: the
// domain or key version is not loaded (not provisioned, or Vault could not
// be reached to unwrap it). Encryption then fails as a whole, like Vault
// being unavailable.
var ErrKeyUnavailable = errors.New("encryption key unavailable")

// Observer is told how many records the engine encrypted and decrypted.
// Its method is called concurrently, once per call and kind of record, and
// must not block. The metrics package implements it.
type Observer interface {
	// Records reports n records of topic that went through op ("encrypt"
	// or "decrypt") in record mode mode (fields, envelope, passthrough,
	// sealed, legacy, none) with outcome ("ok", "failed", "partial",
	// "unencrypted", "file_chunk").
	Records(op, mode, topic, outcome string, n int)
}

// FieldCipher is the key service behind transit fields, sealed values and
// blind indexes: Vault transit in production (*transit.Client), an
// in-memory KMS in unit tests. Errors are kms's neutral ones.
type FieldCipher interface {
	Mount() string
	Encrypt(ctx context.Context, key string, items []kms.Item) ([]kms.Sealed, error)
	Decrypt(ctx context.Context, key string, items []kms.Ciphertext) ([]kms.Opened, error)
	Rewrap(ctx context.Context, key string, items []kms.Ciphertext) ([]kms.Sealed, error)
	HMAC(ctx context.Context, key string, inputs [][]byte) ([]string, []error, error)
}

// Engine applies policies. It is safe for concurrent use.
type Engine struct {
	transit  FieldCipher
	fpe      FPE
	policies *policy.Set
	maxDepth int
	obs      Observer

	envKeys envelope.KeyService
	envOnce sync.Once
	env     *envelopes
	envErr  error
}

// Options configure an Engine.
type Options struct {
	FPE      FPE // nil: fpe fields are refused
	MaxDepth int // default DefaultMaxDepth
	// Policies, when set, let Decrypt open records that lack the
	// kafkagate.fields header (written by other tools) by the topic's
	// policy: transit fields holding vault:vN: values, and fpe fields whose
	// policy names a default_version.
	Policies *policy.Set
	// EnvelopeKeys serves data keys for envelope mode; default transit
	// data keys from the engine's transit client.
	EnvelopeKeys envelope.KeyService
	// Observer, when set, counts the records encrypted and decrypted.
	Observer Observer
}

// New returns an engine.
func New(tc FieldCipher, o Options) *Engine {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if k, ok := tc.(envelope.KMS); ok && o.EnvelopeKeys == nil {
		o.EnvelopeKeys = envelope.NewKMSKeys(k)
	}
	return &Engine{transit: tc, fpe: o.FPE, policies: o.Policies, maxDepth: o.MaxDepth, envKeys: o.EnvelopeKeys, obs: o.Observer}
}

// DEKCacheStats returns the envelope data-key counters: of the sealers
// (cached DEK reuse) and of the opener (unwrapped DEK cache).
func (e *Engine) DEKCacheStats() (envelope.SealerStats, envelope.CacheStats) {
	env, err := e.envelopes()
	if err != nil {
		return envelope.SealerStats{}, envelope.CacheStats{}
	}
	var seal envelope.SealerStats
	env.mu.Lock()
	for _, s := range env.sealers {
		st := s.Stats()
		seal.Hits += st.Hits
		seal.Fetches += st.Fetches
	}
	env.mu.Unlock()
	return seal, env.opener.Stats()
}

// countSealed reports the outcome of encrypting out to the observer.
func (e *Engine) countSealed(p *policy.Policy, out []Sealed) {
	if e.obs == nil {
		return
	}
	ok := 0
	for _, o := range out {
		if o.Err == nil {
			ok++
		}
	}
	e.obs.Records("encrypt", string(p.Mode), p.Topic, "ok", ok)
	e.obs.Records("encrypt", string(p.Mode), p.Topic, "failed", len(out)-ok)
}

// envelopes returns the envelope sealers and opener, made on first use.
func (e *Engine) envelopes() (*envelopes, error) {
	e.envOnce.Do(func() { e.env, e.envErr = newEnvelopes(e.envKeys, e.policies) })
	return e.env, e.envErr
}

// Close releases cached data keys.
func (e *Engine) Close() {
	if env, err := e.envelopes(); err == nil {
		env.close()
	}
}

// EncryptRecords protects whole records (value, key and headers) for
// policy p's topic. Envelope mode needs this form: its associated data
// binds the record key and kafkagate headers. Results are as for Encrypt.
func (e *Engine) EncryptRecords(ctx context.Context, p *policy.Policy, recs []Record) ([]Sealed, error) {
	if p.Mode == policy.Envelope {
		return e.sealEnvelope(ctx, p, recs)
	}
	values := make([][]byte, len(recs))
	for i, r := range recs {
		values[i] = r.Value
	}
	return e.Encrypt(ctx, p, values)
}

// FieldInfo says how one field of a record was protected.
type FieldInfo struct {
	Path       string `json:"path"`
	Mode       string `json:"mode"`
	Key        string `json:"key,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
	Domain     string `json:"domain,omitempty"`
	Format     string `json:"format,omitempty"`
	// Bound: an fpe token bound to its topic (the topic is in its tweak).
	Bound bool `json:"bound,omitempty"`
}

// Sealed is the outcome of encrypting one value.
type Sealed struct {
	Value   []byte
	Headers []Header
	Fields  []FieldInfo
	Err     error // *Error when this record was refused
}

// AAD is the associated data binding a transit field to topic and path.
func AAD(topic, path string) []byte {
	return []byte("kafkagate/v1\x00" + topic + "\x00" + path)
}

// Encrypt protects values for a topic with policy p. The result has one
// entry per value. The error is non-nil only if the whole call failed
// (Vault unavailable or refusing): then nothing may be produced.
func (e *Engine) Encrypt(ctx context.Context, p *policy.Policy, values [][]byte) ([]Sealed, error) {
	out := make([]Sealed, len(values))
	switch p.Mode {
	case policy.Passthrough:
		for i, v := range values {
			out[i].Value = v
		}
		e.countSealed(p, out)
		return out, nil
	case policy.Envelope:
		// The envelope binds the record key: only EncryptRecords has it.
		for i := range out {
			out[i].Err = &Error{Code: CodeUnsupported, Msg: "envelope mode needs whole records (EncryptRecords)"}
		}
		return out, nil
	}
	paths := make([][]string, len(p.Fields))
	names := make([]string, len(p.Fields)) // dotted paths
	aads := make([][]byte, len(p.Fields))  // shared by the items of a field: read only
	for i, f := range p.Fields {
		paths[i], names[i] = f.Path, f.PathString()
		if p.AAD && f.Mode == policy.Transit {
			aads[i] = AAD(p.Topic, names[i])
		}
	}
	loc := newLocator(paths)
	type pending struct{ rec, field int }
	// One backing array each for the whole call: the records' slices of
	// replacements and of field infos are windows of these.
	nf := len(p.Fields)
	var (
		items     = make([]kms.Item, 0, len(values)*nf)
		refs      = make([]pending, 0, len(values)*nf)
		replAll   = make([][]byte, len(values)*nf)
		fieldsAll = make([]FieldInfo, len(values)*nf)
	)
	addField := func(ri int, fi FieldInfo) {
		if out[ri].Fields == nil {
			out[ri].Fields = fieldsAll[ri*nf : ri*nf : (ri+1)*nf]
		}
		out[ri].Fields = append(out[ri].Fields, fi)
	}
	spans := make([][]span, len(values))
	repl := make([][][]byte, len(values))
	for ri, v := range values {
		sp, perr := loc.locate(v, e.maxDepth)
		if perr != nil {
			out[ri].Err = perr
			continue
		}
		spans[ri] = sp
		repl[ri] = replAll[ri*nf : (ri+1)*nf : (ri+1)*nf]
		for fi, f := range p.Fields {
			s := sp[fi]
			if s.start < 0 || s.res.Type == gjson.Null || f.Mode == policy.Plain {
				continue
			}
			path := names[fi]
			if s.res.Type != gjson.String {
				out[ri].Err = &Error{Code: CodeFieldType, Field: path, Msg: "must be a JSON string to be encrypted, got " + typeName(s.res)}
				break
			}
			switch f.Mode {
			case policy.Transit:
				items = append(items, kms.Item{Plaintext: stringValue(v, s), AAD: aads[fi]})
				refs = append(refs, pending{ri, fi})
			case policy.FPE:
				if e.fpe == nil {
					out[ri].Err = &Error{Code: CodeUnsupported, Field: path, Msg: "fpe is not configured on this gateway"}
					break
				}
				fb := f.Options["fallback"]
				if fb == "none" {
					fb = ""
				}
				ct, ver, applied, err := e.fpe.Encrypt(f.Options["domain"], f.Options["format"], fb, p.Topic, s.res.Str)
				if errors.Is(err, ErrKeyUnavailable) {
					return nil, fmt.Errorf("fpe field %s: %w", path, err)
				}
				if err != nil {
					out[ri].Err = &Error{Code: CodeFieldInvalid, Field: path, Msg: err.Error(), Err: err}
					break
				}
				repl[ri][fi] = jsonString(ct)
				addField(ri, FieldInfo{Path: path, Mode: string(policy.FPE), Domain: f.Options["domain"], Format: applied, KeyVersion: ver, Bound: true})
			}
			if out[ri].Err != nil {
				break
			}
		}
	}
	if len(items) > 0 {
		res, err := e.transit.Encrypt(ctx, p.TransitKey, items)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			ref := refs[i]
			if out[ref.rec].Err != nil {
				continue
			}
			if r.Err != nil {
				out[ref.rec].Err = &Error{Code: CodeEncryptFailed, Field: names[ref.field], Msg: "vault refused to encrypt it", Err: r.Err}
				continue
			}
			repl[ref.rec][ref.field] = jsonString(r.Ciphertext)
			addField(ref.rec, FieldInfo{Path: names[ref.field], Mode: string(policy.Transit), Key: p.TransitKey, KeyVersion: r.KeyVersion})
		}
	}
	// Blind indexes of index=hmac fields (blindindex.go).
	if err := e.addBlindIndexes(ctx, p, values, spans, repl, out); err != nil {
		return nil, err
	}
	pos := make(map[string]int, len(names))
	for i, n := range names {
		pos[n] = i
	}
	// Records of one call mostly carry the same fields, hence the same
	// header: it is encoded again only when the fields differ from the
	// previous record's. Records share the bytes (read only).
	var (
		prevFields []FieldInfo
		prevHeader []byte
		headers    = make([]Header, len(values))
	)
	for ri := range values {
		if out[ri].Err != nil {
			out[ri].Fields = nil
			continue
		}
		out[ri].Value = splice(values[ri], spans[ri], repl[ri])
		orderFields(out[ri].Fields, pos)
		h := prevHeader
		if h == nil || !slices.Equal(out[ri].Fields, prevFields) {
			var err error
			if h, err = encodeFieldsHeader(out[ri].Fields, p.AAD); err != nil {
				return nil, err
			}
			prevFields, prevHeader = out[ri].Fields, h
		}
		out[ri].Headers = headers[ri : ri+1 : ri+1]
		out[ri].Headers[0] = Header{Key: HeaderFields, Value: h}
	}
	e.countSealed(p, out)
	return out, nil
}

// orderFields sorts infos into policy order, pos giving each dotted
// path's place (transit results arrive later than fpe ones).
func orderFields(fs []FieldInfo, pos map[string]int) {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && pos[fs[j].Path] < pos[fs[j-1].Path]; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// jsonString is s as a JSON string, as encoding/json writes it: quoted
// as it is when s is printable ASCII needing no escape (a ciphertext),
// else by encoding/json.
func jsonString(s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a Go string always marshals
			return b
		}
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// stringValue is the text of the JSON string at s in doc: the bytes of doc
// themselves when the string has no escape (read only), else a copy of
// the decoded text.
func stringValue(doc []byte, s span) []byte {
	raw := doc[s.start:s.end]
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !bytes.ContainsRune(raw, '\\') {
		return raw[1 : len(raw)-1 : len(raw)-1]
	}
	return []byte(s.res.Str)
}

func encodeFieldsHeader(fs []FieldInfo, aad bool) ([]byte, error) {
	h := record.FieldsHeader{V: 1, F: make([]record.FieldEntry, 0, len(fs))}
	for _, f := range fs {
		hf := record.FieldEntry{P: f.Path, M: f.Mode}
		switch f.Mode {
		case string(policy.Transit):
			hf.K = f.Key
			if aad {
				hf.A = 1
			}
		case string(policy.FPE):
			hf.D, hf.N, hf.Fmt = f.Domain, f.KeyVersion, f.Format
			if f.Bound {
				hf.B = 1
			}
		}
		h.F = append(h.F, hf)
	}
	return h.Encode()
}

// decodeFieldsHeader is record.DecodeFieldsHeader with every path checked
// by the policy's path syntax.
func decodeFieldsHeader(b []byte) (record.FieldsHeader, error) {
	h, err := record.DecodeFieldsHeader(b)
	if err != nil {
		return h, err
	}
	for _, f := range h.F {
		if _, err := policy.SplitPath(f.P); err != nil {
			return h, err
		}
	}
	return h, nil
}
