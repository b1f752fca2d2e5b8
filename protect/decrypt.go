package protect

import (
	"context"
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/envelope"
	"github.com/kafkagate/kafkagate/policy"
	"github.com/kafkagate/kafkagate/transit"
	"github.com/kafkagate/kafkagate/vaultclient"
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
	Err    error  `json:"-"`               // typed cause (transit.ErrDecrypt, ...)
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
	type ref struct{ rec, field int }
	byKey := map[string][]transit.Ciphertext{}
	refs := map[string][]ref{}
	var keyOrder []string
	spans := make([][]span, len(recs))
	repl := make([][][]byte, len(recs))
	byPolicy := make([]bool, len(recs))
	var envIdx []int
	for ri, r := range recs {
		switch envelopeFormat(r.Headers) {
		case envelope.FormatRecord, envelope.FormatLegacy:
			envIdx = append(envIdx, ri)
			continue
		case envelope.FormatChunk:
			out[ri] = Opened{Value: r.Value, Status: StatusFileChunk}
			continue
		}
		if sv, ok := header(r.Headers, HeaderSealed); ok {
			sh, err := decodeSealedHeader(sv)
			if err != nil {
				out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: &Error{Code: CodeBadHeader, Msg: "kafkagate.sealed header: " + err.Error(), Err: err}}
				continue
			}
			out[ri].Fields = []FieldStatus{{FieldInfo: FieldInfo{Path: "", Mode: "sealed", Key: sh.K}}}
			out[ri].Fields[0].KeyVersion, _ = transit.Version(string(r.Value))
			if _, seen := byKey[sh.K]; !seen {
				keyOrder = append(keyOrder, sh.K)
			}
			byKey[sh.K] = append(byKey[sh.K], transit.Ciphertext{Ciphertext: string(r.Value), AAD: AAD(r.Topic, sealedPath)})
			refs[sh.K] = append(refs[sh.K], ref{ri, -1})
			continue
		}
		var h fieldsHeader
		if hv, ok := header(r.Headers, HeaderFields); ok {
			var err error
			if h, err = decodeFieldsHeader(hv); err != nil {
				out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: &Error{Code: CodeBadHeader, Msg: "kafkagate.fields header: " + err.Error(), Err: err}}
				continue
			}
		} else if h, ok = e.headerFromPolicy(r); !ok {
			out[ri] = Opened{Value: r.Value, Status: StatusUnencrypted}
			continue
		} else {
			byPolicy[ri] = true
		}
		paths := make([][]string, len(h.F))
		for i, f := range h.F {
			paths[i], _ = policy.SplitPath(f.P) // checked by decodeFieldsHeader
		}
		sp, lerr := locate(r.Value, paths, e.maxDepth)
		if lerr != nil {
			out[ri] = Opened{Value: r.Value, Status: StatusFailed, Err: lerr}
			continue
		}
		spans[ri] = sp
		repl[ri] = make([][]byte, len(h.F))
		out[ri].Fields = make([]FieldStatus, len(h.F))
		for fi, f := range h.F {
			fs := &out[ri].Fields[fi]
			fs.FieldInfo = FieldInfo{Path: f.P, Mode: f.M, Key: f.K, Domain: f.D, Format: f.Fmt, KeyVersion: f.N}
			s := sp[fi]
			if s.start < 0 || s.res.Type != gjson.String {
				fs.Status, fs.Error = CodeMissing, "the value has no string at this path"
				continue
			}
			switch f.M {
			case string(policy.Transit):
				fs.KeyVersion, _ = transit.Version(s.res.Str)
				ct := transit.Ciphertext{Ciphertext: s.res.Str}
				if f.A == 1 {
					ct.AAD = AAD(r.Topic, f.P)
				}
				if _, seen := byKey[f.K]; !seen {
					keyOrder = append(keyOrder, f.K)
				}
				byKey[f.K] = append(byKey[f.K], ct)
				refs[f.K] = append(refs[f.K], ref{ri, fi})
			case string(policy.FPE):
				if e.fpe == nil {
					fs.Status, fs.Error = CodeUnsupported, "fpe is not configured on this gateway"
					continue
				}
				pt, err := e.fpe.Decrypt(f.D, f.Fmt, f.N, s.res.Str)
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
			res = make([]transit.Opened, len(byKey[key]))
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
			fs := &out[rf.rec].Fields[rf.field]
			if r.Err != nil {
				fs.Status, fs.Error, fs.Err = itemCode(r.Err), r.Err.Error(), r.Err
				continue
			}
			repl[rf.rec][rf.field] = jsonString(string(r.Plaintext))
			fs.Status = FieldOK
		}
	}
	for ri, r := range recs {
		if out[ri].Status != "" {
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
		!errors.Is(err, vaultclient.ErrUnavailable) && !errors.Is(err, vaultclient.ErrDenied)
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
	case errors.Is(err, transit.ErrDecrypt):
		return CodeDecryptFailed
	case errors.Is(err, transit.ErrVersionRetired):
		return CodeVersionRetired
	case errors.Is(err, transit.ErrMalformed):
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
func (e *Engine) headerFromPolicy(r Record) (fieldsHeader, bool) {
	p, ok := e.policies.For(r.Topic)
	if !ok || p.Mode != policy.Fields {
		return fieldsHeader{}, false
	}
	paths := make([][]string, len(p.Fields))
	for i, f := range p.Fields {
		paths[i] = f.Path
	}
	sp, err := locate(r.Value, paths, e.maxDepth)
	if err != nil {
		return fieldsHeader{}, false
	}
	h := fieldsHeader{V: 1}
	for i, f := range p.Fields {
		if sp[i].start < 0 || sp[i].res.Type != gjson.String {
			continue
		}
		switch f.Mode {
		case policy.Transit:
			if transit.IsCiphertext(sp[i].res.Str) {
				hf := headerField{P: f.PathString(), M: string(policy.Transit), K: p.TransitKey}
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
				h.F = append(h.F, headerField{P: f.PathString(), M: string(policy.FPE), D: f.Options["domain"], N: n, Fmt: format})
			}
		}
	}
	return h, len(h.F) > 0
}

// envelopeFormat is the envelope format of a record, FormatNone for others
// (and for damaged envelope headers, which the fields path then reports).
func envelopeFormat(hs []Header) envelope.Format {
	ehs := make([]envelope.Header, 0, len(hs))
	for _, h := range hs {
		ehs = append(ehs, envelope.Header{Key: h.Key, Value: h.Value})
	}
	f, err := envelope.DetectFormat(ehs)
	if err != nil {
		return envelope.FormatRecord // let the opener report the damage
	}
	return f
}
