package protect

import (
	"context"
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Status of a decrypted record.
type Status string

// Record statuses.
const (
	// StatusDecrypted: every encrypted field was decrypted.
	StatusDecrypted Status = "decrypted"
	// StatusPartial: some fields decrypted, some failed (left as stored).
	StatusPartial Status = "partial"
	// StatusFailed: no field could be decrypted, or the record is damaged.
	StatusFailed Status = "failed"
	// StatusFileChunk: the record is one chunk of a file sent with
	// send-file; files are reassembled by receive-dir, not record by record.
	StatusFileChunk Status = "file_chunk"
	// StatusUnencrypted: the record carries no kafkagate header: it was not
	// written by kafkagate and is returned as stored, never passed off as
	// decrypted.
	StatusUnencrypted Status = "unencrypted"
)

// Field status codes.
const (
	FieldOK            = "ok"
	CodeDecryptFailed  = "decrypt_failed"  // authentication failed: wrong key, topic, field or tampering
	CodeVersionRetired = "version_retired" // key version below min_decryption_version
	CodeMalformed      = "malformed"       // not a ciphertext
	CodeMissing        = "missing"         // header names a field the value lacks
	CodeBadHeader      = "bad_header"      // kafkagate.fields header damaged
	CodeVaultRefused   = "vault_refused"   // Vault refused the item otherwise
	CodeKeyUnavailable = "key_unavailable" // the FPE domain or version is not loaded
	// FieldOKDefaultVersion: decrypted, but the record had no
	// kafkagate.fields header, so the key version is the policy's
	// default_version (an assumption the consumer should know about).
	FieldOKDefaultVersion = "ok_default_version"
)

// FieldStatus reports one field of a decrypted record.
type FieldStatus struct {
	FieldInfo
	Status string `json:"status"`          // "ok" or a code
	Error  string `json:"error,omitempty"` // human-readable reason
	Err    error  `json:"-"`               // typed cause (kms.ErrDecrypt, ...)
}

// Opened is the outcome of decrypting one record.
type Opened struct {
	Value  []byte // plaintext where decrypted; as stored otherwise
	Status Status
	Fields []FieldStatus
	Err    error // record-level cause for StatusFailed
}

// Decrypt decrypts records. The error is non-nil only when the whole call
// failed (Vault unavailable or refusing); per-record problems are in the
// statuses.
func (e *Engine) Decrypt(ctx context.Context, recs []Record) ([]Opened, error) {
	out := make([]Opened, len(recs))
	type ref struct{ rec, field, status int }
	byKey := map[string][]kms.Ciphertext{}
	refs := map[string][]ref{}
	var keyOrder []string
	spans := make([][]span, len(recs))
	repl := make([][][]byte, len(recs))
	byPolicy := make([]bool, len(recs))
	var envIdx []int
	for ri, r := range recs {
		c := e.Classify(r)
		if c.Err != nil {
			out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: c.Err}
			continue
		}
		switch c.Format {
		case FormatEnvelope, FormatLegacy:
			envIdx = append(envIdx, ri)
			continue
		case FormatChunk:
			out[ri] = Opened{Value: r.Value, Status: StatusFileChunk}
			continue
		case FormatPlain:
			out[ri] = Opened{Value: r.Value, Status: StatusUnencrypted}
			continue
		case FormatSealed:
			ct := string(r.Value)
			out[ri].Fields = []FieldStatus{{FieldInfo: FieldInfo{Path: "", Mode: "sealed", Key: c.sealedK}}}
			v, err := kms.Version(ct)
			if err != nil {
				out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: &Error{Code: CodeMalformed, Msg: "sealed value is not a transit ciphertext", Err: kms.ErrMalformed}}
				continue
			}
			out[ri].Fields[0].KeyVersion = v
			if _, seen := byKey[c.sealedK]; !seen {
				keyOrder = append(keyOrder, c.sealedK)
			}
			byKey[c.sealedK] = append(byKey[c.sealedK], kms.Ciphertext{Ciphertext: ct, AAD: AAD(r.Topic, sealedPath)})
			refs[c.sealedK] = append(refs[c.sealedK], ref{ri, -1, 0})
			continue
		}
		// FormatFields: the policy's fields, each listed in the header or
		// held in clear.
		p, h := c.Policy, c.fields
		byPolicy[ri] = c.byPolicy
		sp, lerr := locate(r.Value, policyPaths(p), e.maxDepth)
		if lerr != nil {
			out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: lerr}
			continue
		}
		listed := make(map[string]record.FieldEntry, len(h.F))
		for _, f := range h.F {
			listed[f.P] = f
		}
		spans[ri] = sp
		repl[ri] = make([][]byte, len(p.Fields))
		for fi, pf := range p.Fields {
			if pf.Mode == policy.Plain {
				continue
			}
			s := sp[fi]
			f, ok := listed[pf.PathString()]
			if !ok {
				if s.start >= 0 && s.res.Type != gjson.Null {
					out[ri].Fields = append(out[ri].Fields, FieldStatus{FieldInfo: FieldInfo{Path: pf.PathString(), Mode: string(pf.Mode)},
						Status: CodeNotEncrypted, Error: "the policy encrypts this field, but the record holds it in clear"})
				}
				continue
			}
			out[ri].Fields = append(out[ri].Fields, FieldStatus{FieldInfo: FieldInfo{Path: f.P, Mode: f.M, Key: f.K, Domain: f.D, Format: f.Fmt, KeyVersion: f.N, Bound: f.B == 1}})
			fs := &out[ri].Fields[len(out[ri].Fields)-1]
			if s.start < 0 || s.res.Type != gjson.String {
				fs.Status, fs.Error = CodeMissing, "the value has no string at this path"
				continue
			}
			switch f.M {
			case string(policy.Transit):
				v, err := kms.Version(s.res.Str)
				if err != nil {
					fs.Status, fs.Error, fs.Err = CodeMalformed, "not a transit ciphertext", kms.ErrMalformed
					continue
				}
				fs.KeyVersion = v
				ct := kms.Ciphertext{Ciphertext: s.res.Str}
				if f.A == 1 {
					ct.AAD = AAD(r.Topic, f.P)
				}
				if _, seen := byKey[f.K]; !seen {
					keyOrder = append(keyOrder, f.K)
				}
				byKey[f.K] = append(byKey[f.K], ct)
				refs[f.K] = append(refs[f.K], ref{ri, fi, len(out[ri].Fields) - 1})
			case string(policy.FPE):
				if e.fpe == nil {
					fs.Status, fs.Error = CodeUnsupported, "fpe is not configured on this gateway"
					continue
				}
				pt, err := e.fpe.Decrypt(f.D, f.Fmt, fpeBind(f, r.Topic), f.N, s.res.Str)
				if err != nil {
					fs.Status, fs.Error, fs.Err = CodeDecryptFailed, err.Error(), err
					if errors.Is(err, ErrKeyUnavailable) {
						fs.Status = CodeKeyUnavailable
					}
					continue
				}
				repl[ri][fi] = jsonString(pt)
				fs.Status = FieldOK
				if byPolicy[ri] {
					fs.Status = FieldOKDefaultVersion
				}
			}
		}
		if len(out[ri].Fields) == 0 {
			// Nothing encrypted and nothing in clear: the record holds no
			// protected data, which is never passed off as decrypted.
			out[ri] = Opened{Value: r.Value, Status: StatusUnencrypted}
		}
	}
	if err := e.openEnvelopes(ctx, recs, envIdx, out); err != nil {
		return nil, err
	}
	for _, key := range keyOrder {
		res, err := e.transit.Decrypt(ctx, key, byKey[key])
		if err != nil {
			if !keyScoped(ctx, err) {
				return nil, err
			}
			// The key named by the records' headers is unusable (no such
			// key, an invalid name): those records fail, the others of
			// the batch still decrypt.
			res = make([]kms.Opened, len(byKey[key]))
			for i := range res {
				res[i].Err = err
			}
		}
		for i, r := range res {
			rf := refs[key][i]
			if rf.field < 0 { // a whole sealed value
				fs := &out[rf.rec].Fields[0]
				if r.Err != nil {
					fs.Status, fs.Error, fs.Err = itemCode(r.Err), r.Err.Error(), r.Err
					out[rf.rec].Status, out[rf.rec].Value = StatusFailed, recs[rf.rec].Value
					continue
				}
				fs.Status = FieldOK
				out[rf.rec].Status, out[rf.rec].Value = StatusDecrypted, r.Plaintext
				continue
			}
			fs := &out[rf.rec].Fields[rf.status]
			if r.Err != nil {
				fs.Status, fs.Error, fs.Err = itemCode(r.Err), r.Err.Error(), r.Err
				continue
			}
			repl[rf.rec][rf.field] = jsonString(string(r.Plaintext))
			fs.Status = FieldOK
		}
	}
	for ri, r := range recs {
		if out[ri].Status != "" || spans[ri] == nil {
			continue
		}
		ok, bad := 0, 0
		for _, fs := range out[ri].Fields {
			if fs.Status == FieldOK || fs.Status == FieldOKDefaultVersion {
				ok++
			} else {
				bad++
			}
		}
		switch {
		case bad == 0:
			out[ri].Status = StatusDecrypted
		case ok == 0:
			out[ri].Status = StatusFailed
		default:
			out[ri].Status = StatusPartial
		}
		out[ri].Value = splice(r.Value, spans[ri], repl[ri])
	}
	e.countOpened(recs, out)
	return out, nil
}

// keyScoped reports whether a transit call's error concerns only the key
// it named (taken from a record header, so possibly forged), rather than
// Vault or the gateway's credentials, which fail the whole call closed.
func keyScoped(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, kms.ErrUnavailable) && !errors.Is(err, kms.ErrDenied)
}

// countOpened reports the outcome of decrypting recs to the observer.
func (e *Engine) countOpened(recs []Record, out []Opened) {
	if e.obs == nil {
		return
	}
	type kind struct{ mode, topic, outcome string }
	n := map[kind]int{}
	for i, o := range out {
		k := kind{mode: string(policy.Fields), topic: recs[i].Topic, outcome: string(o.Status)}
		switch o.Status {
		case StatusDecrypted:
			k.outcome = "ok"
		case StatusUnencrypted:
			k.mode = "none"
		case StatusFileChunk:
			k.mode = "file"
		}
		if len(o.Fields) == 1 && o.Fields[0].Path == "" {
			k.mode = o.Fields[0].Mode // envelope, legacy or sealed
		}
		n[k]++
	}
	for k, c := range n {
		e.obs.Records("decrypt", k.mode, k.topic, k.outcome, c)
	}
}

func itemCode(err error) string {
	switch {
	case errors.Is(err, kms.ErrDecrypt):
		return CodeDecryptFailed
	case errors.Is(err, kms.ErrVersionRetired):
		return CodeVersionRetired
	case errors.Is(err, kms.ErrMalformed):
		return CodeMalformed
	}
	return CodeVaultRefused
}

func header(hs []Header, key string) ([]byte, bool) {
	for _, h := range hs {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// headerFromPolicy builds the fields list of a record that lacks the
// kafkagate.fields header from its topic's policy: transit fields whose
// value is a vault:vN: ciphertext, and fpe fields with a default_version.
// A value nested deeper than the limit is an error (too_deep): it is
// refused before any parser sees it; other values that are not JSON
// objects simply carry nothing encrypted.
func (e *Engine) headerFromPolicy(r Record, p *policy.Policy) (record.FieldsHeader, bool, error) {
	if p == nil || p.Mode != policy.Fields {
		return record.FieldsHeader{}, false, nil
	}
	sp, err := locate(r.Value, policyPaths(p), e.maxDepth)
	if err != nil {
		if err.Code == CodeTooDeep {
			return record.FieldsHeader{}, false, err
		}
		return record.FieldsHeader{}, false, nil
	}
	h := record.FieldsHeader{V: 1}
	for i, f := range p.Fields {
		if sp[i].start < 0 || sp[i].res.Type != gjson.String {
			continue
		}
		switch f.Mode {
		case policy.Transit:
			if kms.IsCiphertext(sp[i].res.Str) {
				hf := record.FieldEntry{P: f.PathString(), M: string(policy.Transit), K: p.TransitKey}
				if p.AAD {
					hf.A = 1
				}
				h.F = append(h.F, hf)
			}
		case policy.FPE:
			if n, err := strconv.Atoi(f.Options["default_version"]); err == nil && n > 0 {
				format := f.Options["format"]
				if f.Options["fallback"] == "full" {
					format += ",fallback=full"
				}
				h.F = append(h.F, record.FieldEntry{P: f.PathString(), M: string(policy.FPE), D: f.Options["domain"], N: n, Fmt: format})
			}
		}
	}
	return h, len(h.F) > 0, nil
}

// envelopeFormat is the envelope format of a record, FormatNone for others
// (and for damaged envelope headers, which the fields path then reports).
func envelopeFormat(hs []Header) envelope.Format {
	f, err := envelope.DetectFormat(hs)
	if err != nil {
		return envelope.FormatRecord // let the opener report the damage
	}
	return f
}

// policyPaths are the paths of p's fields, in policy order.
func policyPaths(p *policy.Policy) [][]string {
	paths := make([][]string, len(p.Fields))
	for i, f := range p.Fields {
		paths[i] = f.Path
	}
	return paths
}

// fpeBind is the bind of an fpe field listed in a header: its topic when
// the token was bound to it, "" for tokens written before binding.
func fpeBind(f record.FieldEntry, topic string) string {
	if f.B == 1 {
		return topic
	}
	return ""
}
