package protect

// Rewrap and key inventory: what each record refers to, and moving records to the latest key versions for another topic.
// The lifecycle package scans topics and produces; this file knows the
// record formats.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Kinds of key references (KeyUse.Kind).
const (
	UseTransit  = "transit"  // a transit field: Key is the transit key
	UseFPE      = "fpe"      // an fpe field: Key is the FPE domain
	UseEnvelope = "envelope" // an envelope record or chunk: Key is the KEK (<mount>/<key>), the version is the wrapped DEK's
	UseLegacy   = "legacy"   // the demo's file format: Key is the legacy KEK
	UseSealed   = "sealed"   // a dead-letter value sealed with transit (kafkagate.sealed)
	UseIndex    = "index"    // a blind index: Key is the policy's index key
)

// KeyUse is one reference from a record to a key version.
type KeyUse struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Version int    `json:"version"`
}

// Record-level rewrap failure codes (besides the field codes of Decrypt).
const (
	CodeUnencrypted       = "unencrypted"         // no kafkagate encryption: not copied into a protected topic
	CodeOriginNotAccepted = "origin_not_accepted" // envelope record the target topic's policy does not accept (rewrapped_from)
	CodeKEKNotAllowed     = "kek_not_allowed"     // envelope record naming a KEK no policy uses
)

// KeyUses lists the key versions record r refers to. An error means the
// record's kafkagate headers are damaged; a record without any is nil, nil.
func (e *Engine) KeyUses(r Record) ([]KeyUse, error) {
	c := e.Classify(r)
	if c.Err != nil {
		return nil, c.Err
	}
	switch c.Format {
	case FormatEnvelope, FormatChunk:
		w, _ := header(r.Headers, envelope.HeaderEDEK)
		v, err := kms.Version(string(w))
		if err != nil || c.kek == "" {
			return nil, &Error{Code: CodeBadHeader, Msg: "envelope record without a valid kafkagate.kek or kafkagate.edek"}
		}
		return []KeyUse{{UseEnvelope, c.kek, v}}, nil
	case FormatLegacy:
		w, _ := header(r.Headers, envelope.LegacyKeyHeader)
		v, err := kms.Version(string(w))
		if err != nil {
			return nil, &Error{Code: CodeBadHeader, Msg: "legacy record with a malformed " + envelope.LegacyKeyHeader}
		}
		return []KeyUse{{UseLegacy, e.transit.Mount() + "/" + envelope.DefaultLegacyKEK, v}}, nil
	case FormatSealed:
		v, err := kms.Version(string(r.Value))
		if err != nil {
			return nil, &Error{Code: CodeMalformed, Msg: "sealed value is not a transit ciphertext"}
		}
		return []KeyUse{{UseSealed, c.sealedK, v}}, nil
	case FormatPlain:
		return nil, nil
	}
	h := c.fields
	paths := headerPaths(h)
	sp, lerr := locate(r.Value, paths, e.maxDepth)
	if lerr != nil {
		return nil, lerr
	}
	var out []KeyUse
	for i, f := range h.F {
		switch f.M {
		case string(policy.Transit):
			if sp[i].start >= 0 && sp[i].res.Type == gjson.String {
				if v, err := kms.Version(sp[i].res.Str); err == nil {
					out = append(out, KeyUse{UseTransit, f.K, v})
				}
			}
		case string(policy.FPE):
			if sp[i].start >= 0 {
				out = append(out, KeyUse{UseFPE, f.D, f.N})
			}
		}
	}
	// Blind indexes, when the topic's policy has them.
	if p, ok := e.policies.For(r.Topic); ok {
		if idx := indexedFields(p); len(idx) > 0 {
			sibs := make([][]string, len(idx))
			for j, fi := range idx {
				sibs[j] = p.Fields[fi].IndexPath()
			}
			if ss, err := locate(r.Value, sibs, e.maxDepth); err == nil {
				for _, s := range ss {
					if s.start >= 0 && s.res.Type == gjson.String {
						if v, err := kms.Version(s.res.Str); err == nil {
							out = append(out, KeyUse{UseIndex, p.IndexKey, v})
						}
					}
				}
			}
		}
	}
	return out, nil
}

func headerPaths(h record.FieldsHeader) [][]string {
	paths := make([][]string, len(h.F))
	for i, f := range h.F {
		paths[i], _ = policy.SplitPath(f.P) // checked by decodeFieldsHeader
	}
	return paths
}

// RewrapOptions say where records go.
type RewrapOptions struct {
	// To is the topic the rewrapped records are written to.
	To string
	// Target is To's policy: its rewrapped_from accepts envelope records
	// sealed for other topics, and its index=hmac fields get their blind
	// index recomputed. Nil: none.
	Target *policy.Policy
	// MemoryDEKs bounds the wrapped DEKs remembered (so every record and
	// chunk sharing a wrapped DEK gets the same rewrapped one); default
	// 65536.
	MemoryDEKs int
}

// Rewrapped is one record ready for the target topic, or why not.
type Rewrapped struct {
	Value   []byte
	Headers []Header
	// Uses are the key versions the new record refers to.
	Uses []KeyUse
	// Err (an *Error) means the record could not be rewrapped: it must be
	// dead-lettered as it was, never written half-done.
	Err error
}

// Rewrapper moves records to the latest key versions, for a target topic,
// never exposing plaintext outside its own memory:
//
//   - transit fields move to the target's fields policy transit key when
//     it has one (else they keep theirs; the header's k follows);
//   - transit fields bound to topic and path (a=1, the default) are
//     decrypted and encrypted again, bound to the target topic: Vault's
//     transit/rewrap takes no associated_data;
//   - transit fields without associated data go through transit/rewrap
//     (unless they change key, or the target policy indexes them: then
//     decrypt and encrypt, to recompute the blind index);
//   - fpe fields are decrypted with their version and encrypted with the
//     domain's current one; the header's n follows;
//   - envelope records and chunks (and legacy messages) keep their value
//     byte for byte: only the wrapped DEK is rewrapped (transit/rewrap with
//     the topic they were sealed for as context), once per distinct DEK,
//     and a kafkagate.origin header records that topic when it is not the
//     target;
//   - dead-letter values (kafkagate.sealed) are decrypted and sealed again
//     for the target topic.
//
// It is safe for concurrent use.
type Rewrapper struct {
	e     *Engine
	o     RewrapOptions
	keks  []string
	mu    sync.Mutex
	edeks *simplelru.LRU[string, string] // kek|context|wrapped -> rewrapped
}

// NewRewrapper returns a Rewrapper for o.
func (e *Engine) NewRewrapper(o RewrapOptions) (*Rewrapper, error) {
	if o.To == "" {
		return nil, errors.New("rewrap: no target topic")
	}
	if o.MemoryDEKs <= 0 {
		o.MemoryDEKs = 65536
	}
	lru, err := simplelru.NewLRU[string, string](o.MemoryDEKs, nil)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	keks := []string{envelope.DefaultKEK}
	if e.policies != nil {
		for _, t := range e.policies.Topics() {
			if p, _ := e.policies.For(t); p.Mode == policy.Envelope && !slices.Contains(keks, p.Envelope.Key) {
				keks = append(keks, p.Envelope.Key)
			}
		}
	}
	return &Rewrapper{e: e, o: o, keks: keks, edeks: lru}, nil
}

// RememberedDEKs returns the wrapped DEKs rewrapped so far (original ->
// rewrapped, with their KEK and context), for a resumed run to reuse: the
// chunks of one file must all carry the same rewrapped DEK. Wrapped DEKs
// are ciphertexts, not secrets.
func (w *Rewrapper) RememberedDEKs() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, w.edeks.Len())
	for _, k := range w.edeks.Keys() {
		v, _ := w.edeks.Peek(k)
		out[k] = v
	}
	return out
}

// Remember preloads pairs from RememberedDEKs.
func (w *Rewrapper) Remember(m map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range m {
		w.edeks.Add(k, v)
	}
}

func dekKey(kek, ctxt, wrapped string) string {
	return fmt.Sprintf("%d:%s|%d:%s|%s", len(kek), kek, len(ctxt), ctxt, wrapped)
}

// rewrapJob is one transit/rewrap item.
type rewrapJob struct {
	key, ctxt, wrapped string
	noContext          bool
}

// fieldJob is one field (or sealed value) to decrypt and encrypt again.
type fieldJob struct {
	rec, field int // field -1: the whole sealed value
	key        string
	encKey     string // the key to encrypt with ("" : key)
	ct         string
	oldAAD     []byte
	newAAD     []byte
	noAAD      bool
	pt         []byte
}

// recState is the work on one record.
type recState struct {
	kind    string // "envelope", "legacy", "sealed", "fields"
	h       record.FieldsHeader
	spans   []span
	repl    [][]byte
	origin  string // envelope: the topic it was sealed for
	kek     string // envelope/legacy: transit key name
	wrapped string
	idxPT   map[int][]byte // field -> plaintext copy, for its blind index (cleared by reindex)
	newN    map[int]int    // fpe field -> new version
	newK    map[int]string // transit field -> new key (the target policy's)
	newFmt  map[int]string
	sealedK string
}

// Rewrap rewraps recs (records of one source topic, in order). The error
// is a whole-call failure (Vault unavailable or refusing, cancelled): then
// nothing may be written. Per-record failures are in the results.
func (w *Rewrapper) Rewrap(ctx context.Context, recs []Record) ([]Rewrapped, error) {
	e := w.e
	out := make([]Rewrapped, len(recs))
	st := make([]recState, len(recs))
	var (
		dekJobs   []rewrapJob
		fieldJobs []fieldJob
		wrapJobs  []fieldJob // a=0 transit fields: transit/rewrap
	)
	seenDEK := map[string]int{}
	fail := func(i int, code, msg string, err error) {
		if out[i].Err == nil {
			out[i].Err = &Error{Code: code, Msg: msg, Err: err}
		}
	}
	for i, r := range recs {
		c := e.Classify(r)
		if c.Err != nil {
			out[i].Err = c.Err
			continue
		}
		switch c.Format {
		case FormatEnvelope, FormatChunk, FormatLegacy:
			if err := w.planEnvelope(r, &st[i]); err != nil {
				out[i].Err = err
				continue
			}
			ctxt := st[i].origin
			if st[i].kind == "legacy" {
				ctxt = ""
			}
			k := dekKey(st[i].kek, ctxt, st[i].wrapped)
			w.mu.Lock()
			_, known := w.edeks.Get(k)
			w.mu.Unlock()
			if known {
				continue
			}
			if _, ok := seenDEK[k]; !ok {
				seenDEK[k] = len(dekJobs)
				dekJobs = append(dekJobs, rewrapJob{key: st[i].kek, ctxt: ctxt, wrapped: st[i].wrapped, noContext: st[i].kind == "legacy"})
			}
			continue
		case FormatSealed:
			st[i].kind, st[i].sealedK = "sealed", c.sealedK
			fieldJobs = append(fieldJobs, fieldJob{rec: i, field: -1, key: c.sealedK, ct: string(r.Value),
				oldAAD: AAD(r.Topic, sealedPath), newAAD: AAD(w.o.To, sealedPath)})
			continue
		case FormatPlain:
			fail(i, CodeUnencrypted, "the record carries no kafkagate encryption", nil)
			continue
		}
		h := c.fields
		sp, lerr := locate(r.Value, headerPaths(h), e.maxDepth)
		if lerr != nil {
			out[i].Err = lerr
			continue
		}
		s := &st[i]
		s.kind, s.h, s.spans, s.repl = "fields", h, sp, make([][]byte, len(h.F))
		s.newN, s.newFmt, s.newK = map[int]int{}, map[int]string{}, map[int]string{}
		for fi, f := range h.F {
			if sp[fi].start < 0 || sp[fi].res.Type != gjson.String {
				fail(i, CodeMissing, "field "+f.P+": the value has no string at this path", nil)
				break
			}
			switch f.M {
			case string(policy.Transit):
				j := fieldJob{rec: i, field: fi, key: f.K, ct: sp[fi].res.Str}
				if tk := w.targetKey(); tk != "" && tk != f.K {
					j.encKey = tk
					s.newK[fi] = tk
				}
				if f.A == 1 {
					j.oldAAD, j.newAAD = AAD(r.Topic, f.P), AAD(w.o.To, f.P)
				} else {
					j.noAAD = true
				}
				if j.noAAD && j.encKey == "" && !w.indexes(f.P) {
					wrapJobs = append(wrapJobs, j)
				} else {
					fieldJobs = append(fieldJobs, j)
				}
			case string(policy.FPE):
				if e.fpe == nil {
					fail(i, CodeUnsupported, "fpe is not configured on this gateway", nil)
					break
				}
				pt, err := e.fpe.Decrypt(f.D, f.Fmt, fpeBind(f, r.Topic), f.N, sp[fi].res.Str)
				if err != nil {
					code := CodeDecryptFailed
					if errors.Is(err, ErrKeyUnavailable) {
						code = CodeKeyUnavailable
					}
					fail(i, code, "field "+f.P+": "+err.Error(), err)
					break
				}
				tok, ver, applied, err := e.fpe.Encrypt(f.D, f.Fmt, "", w.o.To, pt)
				if errors.Is(err, ErrKeyUnavailable) {
					return nil, fmt.Errorf("fpe field %s: %w", f.P, err)
				}
				if err != nil {
					fail(i, CodeFieldInvalid, "field "+f.P+": "+err.Error(), err)
					break
				}
				s.repl[fi] = jsonString(tok)
				s.newN[fi], s.newFmt[fi] = ver, applied
			}
			if out[i].Err != nil {
				break
			}
		}
	}

	// Wrapped DEKs: one transit/rewrap batch per KEK and context shape.
	dekFails, err := w.rewrapDEKs(ctx, dekJobs)
	if err != nil {
		return nil, err
	}
	// AAD-free transit fields: transit/rewrap.
	if err := w.rewrapFields(ctx, wrapJobs, st, out); err != nil {
		return nil, err
	}
	// Everything bound to its topic: decrypt, then encrypt for the target.
	if err := w.reencrypt(ctx, recs, fieldJobs, st, out); err != nil {
		return nil, err
	}
	if err := w.reindex(ctx, recs, st, out); err != nil {
		return nil, err
	}

	for i, r := range recs {
		if out[i].Err != nil {
			out[i].Value, out[i].Headers, out[i].Uses = nil, nil, nil
			continue
		}
		s := &st[i]
		switch s.kind {
		case "envelope", "legacy":
			ctxt := s.origin
			if s.kind == "legacy" {
				ctxt = ""
			}
			k := dekKey(s.kek, ctxt, s.wrapped)
			w.mu.Lock()
			nw, ok := w.edeks.Get(k)
			w.mu.Unlock()
			if !ok {
				derr := dekFails[k]
				code, msg := CodeVaultRefused, "the wrapped data key was not rewrapped"
				if derr != nil {
					code, msg = itemCode(derr), msg+": "+derr.Error()
				}
				fail(i, code, msg, derr)
				continue
			}
			out[i].Value = r.Value
			out[i].Headers = w.envelopeHeaders(r, s, nw)
			v, _ := kms.Version(nw)
			if s.kind == "legacy" {
				out[i].Uses = []KeyUse{{UseLegacy, e.transit.Mount() + "/" + s.kek, v}}
			} else {
				out[i].Uses = []KeyUse{{UseEnvelope, e.transit.Mount() + "/" + s.kek, v}}
			}
		case "sealed":
			// set by reencrypt
		case "fields":
			hdr, uses, err := w.fieldsOut(s)
			if err != nil {
				return nil, err
			}
			out[i].Value = splice(r.Value, s.spans, s.repl)
			out[i].Headers = replaceHeader(r.Headers, HeaderFields, hdr)
			out[i].Uses = uses
		}
	}
	return out, nil
}

// targetKey is the transit key of the target's fields policy ("" without
// one): transit fields are moved to it, so the target topic's consumers
// need only its key.
func (w *Rewrapper) targetKey() string {
	if w.o.Target == nil || w.o.Target.Mode != policy.Fields {
		return ""
	}
	return w.o.Target.TransitKey
}

// indexes reports whether the target policy keeps a blind index of path.
func (w *Rewrapper) indexes(path string) bool {
	if w.o.Target == nil || w.o.Target.Mode != policy.Fields {
		return false
	}
	for _, fi := range indexedFields(w.o.Target) {
		if w.o.Target.Fields[fi].PathString() == path {
			return true
		}
	}
	return false
}

// planEnvelope checks an envelope or legacy record's key headers.
func (w *Rewrapper) planEnvelope(r Record, s *recState) error {
	if envelopeFormat(r.Headers) == envelope.FormatLegacy {
		wv, _ := header(r.Headers, envelope.LegacyKeyHeader)
		if !kms.IsCiphertext(string(wv)) {
			return &Error{Code: CodeBadHeader, Msg: "legacy record with a malformed " + envelope.LegacyKeyHeader}
		}
		s.kind, s.kek, s.wrapped = "legacy", envelope.DefaultLegacyKEK, string(wv)
		return nil
	}
	kv, _ := header(r.Headers, envelope.HeaderKEK)
	ev, _ := header(r.Headers, envelope.HeaderEDEK)
	ref := string(kv)
	cut := strings.LastIndexByte(ref, '/')
	if cut <= 0 || !kms.IsCiphertext(string(ev)) {
		return &Error{Code: CodeBadHeader, Msg: "envelope record without a valid kafkagate.kek or kafkagate.edek"}
	}
	mount, kek := ref[:cut], ref[cut+1:]
	if mount != w.e.transit.Mount() || !slices.Contains(w.keks, kek) {
		return &Error{Code: CodeKEKNotAllowed, Msg: "envelope record under KEK " + ref + ", which no policy uses"}
	}
	origin := r.Topic
	if ov, ok := header(r.Headers, envelope.HeaderOrigin); ok && len(ov) > 0 {
		origin = string(ov)
	}
	if origin != w.o.To && (w.o.Target == nil || !slices.Contains(w.o.Target.RewrappedFrom, origin)) {
		return &Error{Code: CodeOriginNotAccepted, Msg: fmt.Sprintf("envelope record sealed for topic %q: the policy of %q must list it in rewrapped_from", origin, w.o.To)}
	}
	s.kind, s.kek, s.wrapped, s.origin = "envelope", kek, string(ev), origin
	return nil
}

// envelopeHeaders are r's headers with the rewrapped DEK and the origin.
func (w *Rewrapper) envelopeHeaders(r Record, s *recState, rewrapped string) []Header {
	if s.kind == "legacy" {
		return replaceHeader(r.Headers, envelope.LegacyKeyHeader, []byte(rewrapped))
	}
	hs := replaceHeader(r.Headers, envelope.HeaderEDEK, []byte(rewrapped))
	hs = slices.DeleteFunc(hs, func(h Header) bool { return h.Key == envelope.HeaderOrigin })
	if s.origin != w.o.To {
		hs = append(hs, Header{Key: envelope.HeaderOrigin, Value: []byte(s.origin)})
	}
	return hs
}

// replaceHeader returns a copy of hs with the value of name replaced
// (added if absent).
func replaceHeader(hs []Header, name string, v []byte) []Header {
	out := make([]Header, 0, len(hs)+1)
	found := false
	for _, h := range hs {
		if h.Key == name {
			h.Value, found = v, true
		}
		out = append(out, h)
	}
	if !found {
		out = append(out, Header{Key: name, Value: v})
	}
	return out
}

// rewrapDEKs rewraps wrapped DEKs and remembers the results; it returns
// the per-DEK failures by dekKey.
func (w *Rewrapper) rewrapDEKs(ctx context.Context, jobs []rewrapJob) (map[string]error, error) {
	fails := map[string]error{}
	type group struct {
		key       string
		noContext bool
	}
	groups := map[group][]int{}
	var order []group
	for i, j := range jobs {
		g := group{j.key, j.noContext}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	for _, g := range order {
		ids := groups[g]
		items := make([]kms.Ciphertext, len(ids))
		for n, i := range ids {
			items[n] = kms.Ciphertext{Ciphertext: jobs[i].wrapped}
			if !g.noContext {
				items[n].Context = []byte(jobs[i].ctxt)
			}
		}
		res, err := w.e.transit.Rewrap(ctx, g.key, items)
		if err != nil {
			return nil, fmt.Errorf("rewrap data keys with %q: %w", g.key, err)
		}
		w.mu.Lock()
		for n, i := range ids {
			k := dekKey(jobs[i].key, jobs[i].ctxt, jobs[i].wrapped)
			if res[n].Err != nil {
				fails[k] = res[n].Err
				continue
			}
			w.edeks.Add(k, res[n].Ciphertext)
		}
		w.mu.Unlock()
	}
	return fails, nil
}

// jobsByKey groups the jobs of records not failed yet by transit key, keys
// in order of first use.
func jobsByKey(jobs []fieldJob, out []Rewrapped) ([]string, map[string][]int) {
	byKey := map[string][]int{}
	var keys []string
	for i, j := range jobs {
		if out[j.rec].Err != nil {
			continue
		}
		if _, ok := byKey[j.key]; !ok {
			keys = append(keys, j.key)
		}
		byKey[j.key] = append(byKey[j.key], i)
	}
	return keys, byKey
}

// rewrapFields sends AAD-free transit fields through transit/rewrap.
func (w *Rewrapper) rewrapFields(ctx context.Context, jobs []fieldJob, st []recState, out []Rewrapped) error {
	keys, byKey := jobsByKey(jobs, out)
	for _, key := range keys {
		ids := byKey[key]
		items := make([]kms.Ciphertext, len(ids))
		for n, i := range ids {
			items[n] = kms.Ciphertext{Ciphertext: jobs[i].ct}
		}
		res, err := w.e.transit.Rewrap(ctx, key, items)
		if err != nil {
			return fmt.Errorf("rewrap fields with %q: %w", key, err)
		}
		for n, i := range ids {
			j := jobs[i]
			if res[n].Err != nil {
				if out[j.rec].Err == nil {
					f := st[j.rec].h.F[j.field]
					out[j.rec].Err = &Error{Code: itemCode(res[n].Err), Field: f.P, Msg: "field " + f.P + ": " + res[n].Err.Error(), Err: res[n].Err}
				}
				continue
			}
			st[j.rec].repl[j.field] = jsonString(res[n].Ciphertext)
		}
	}
	return nil
}

// reencrypt decrypts topic-bound values and encrypts them for the target
// topic, batched per key. Plaintexts are cleared once encrypted.
func (w *Rewrapper) reencrypt(ctx context.Context, recs []Record, jobs []fieldJob, st []recState, out []Rewrapped) error {
	keys, byKey := jobsByKey(jobs, out)
	defer func() {
		for i := range jobs {
			clear(jobs[i].pt)
		}
	}()
	where := func(j fieldJob) string {
		if j.field < 0 {
			return "sealed value"
		}
		return "field " + st[j.rec].h.F[j.field].P
	}
	for _, key := range keys {
		ids := byKey[key]
		items := make([]kms.Ciphertext, len(ids))
		for n, i := range ids {
			items[n] = kms.Ciphertext{Ciphertext: jobs[i].ct, AAD: jobs[i].oldAAD}
		}
		opened, err := w.e.transit.Decrypt(ctx, key, items)
		if err != nil {
			return fmt.Errorf("rewrap: decrypt with %q: %w", key, err)
		}
		encBy := map[string][]int{} // encryption key -> job indexes
		var encKeys []string
		for n, i := range ids {
			j := &jobs[i]
			if opened[n].Err != nil {
				if out[j.rec].Err == nil {
					out[j.rec].Err = &Error{Code: itemCode(opened[n].Err), Field: fieldPath(st, *j), Msg: where(*j) + ": " + opened[n].Err.Error(), Err: opened[n].Err}
				}
				continue
			}
			j.pt = opened[n].Plaintext
			if out[j.rec].Err != nil {
				continue
			}
			ek := cmp.Or(j.encKey, key)
			if _, ok := encBy[ek]; !ok {
				encKeys = append(encKeys, ek)
			}
			encBy[ek] = append(encBy[ek], i)
		}
		for _, ek := range encKeys {
			if err := w.encryptJobs(ctx, recs, jobs, encBy[ek], ek, st, out, where); err != nil {
				return err
			}
		}
	}
	// Keep copies of the plaintexts of indexed fields for reindex.
	for i := range jobs {
		j := jobs[i]
		if j.field >= 0 && j.pt != nil && out[j.rec].Err == nil && w.indexes(st[j.rec].h.F[j.field].P) {
			if st[j.rec].idxPT == nil {
				st[j.rec].idxPT = map[int][]byte{}
			}
			st[j.rec].idxPT[j.field] = slices.Clone(j.pt)
		}
	}
	return nil
}

// encryptJobs encrypts the plaintexts of jobs ids with key for the
// target topic and places the results.
func (w *Rewrapper) encryptJobs(ctx context.Context, recs []Record, jobs []fieldJob, ids []int, key string, st []recState, out []Rewrapped, where func(fieldJob) string) error {
	enc := make([]kms.Item, len(ids))
	for n, i := range ids {
		enc[n] = kms.Item{Plaintext: jobs[i].pt, AAD: jobs[i].newAAD}
	}
	sealed, err := w.e.transit.Encrypt(ctx, key, enc)
	if err != nil {
		return fmt.Errorf("rewrap: encrypt with %q: %w", key, err)
	}
	for n, i := range ids {
		j := jobs[i]
		if sealed[n].Err != nil {
			if out[j.rec].Err == nil {
				out[j.rec].Err = &Error{Code: CodeEncryptFailed, Field: fieldPath(st, j), Msg: where(j) + ": vault refused to encrypt it", Err: sealed[n].Err}
			}
			continue
		}
		if j.field < 0 {
			h := record.SealedWith(key)
			out[j.rec].Value = []byte(sealed[n].Ciphertext)
			out[j.rec].Headers = replaceHeader(recs[j.rec].Headers, HeaderSealed, h)
			out[j.rec].Uses = []KeyUse{{UseSealed, key, sealed[n].KeyVersion}}
			continue
		}
		st[j.rec].repl[j.field] = jsonString(sealed[n].Ciphertext)
	}
	return nil
}

func fieldPath(st []recState, j fieldJob) string {
	if j.field < 0 {
		return ""
	}
	return st[j.rec].h.F[j.field].P
}

// reindex recomputes the blind index of the fields the target policy
// indexes, under its index key (one batch), replacing or adding the
// sibling.
func (w *Rewrapper) reindex(ctx context.Context, recs []Record, st []recState, out []Rewrapped) error {
	type ref struct{ rec, field int }
	var (
		inputs [][]byte
		refs   []ref
	)
	defer func() {
		for i := range st {
			for _, pt := range st[i].idxPT {
				clear(pt)
			}
		}
	}()
	for i := range st {
		if out[i].Err != nil || len(st[i].idxPT) == 0 {
			continue
		}
		for _, fi := range slices.Sorted(maps.Keys(st[i].idxPT)) {
			inputs = append(inputs, st[i].idxPT[fi])
			refs = append(refs, ref{i, fi})
		}
	}
	if len(inputs) == 0 {
		return nil
	}
	macs, errs, err := w.e.transit.HMAC(ctx, w.o.Target.IndexKey, inputs)
	if err != nil {
		return fmt.Errorf("rewrap: blind index with %q: %w", w.o.Target.IndexKey, err)
	}
	for n, r := range refs {
		s := &st[r.rec]
		f := s.h.F[r.field]
		if errs[n] != nil {
			if out[r.rec].Err == nil {
				out[r.rec].Err = &Error{Code: CodeEncryptFailed, Field: f.P, Msg: "field " + f.P + ": vault refused to compute its blind index", Err: errs[n]}
			}
			continue
		}
		path, _ := policy.SplitPath(f.P)
		pf := policy.Field{Path: path}
		sp, lerr := locate(recs[r.rec].Value, [][]string{pf.IndexPath()}, w.e.maxDepth)
		if lerr != nil {
			out[r.rec].Err = lerr
			continue
		}
		if sp[0].start >= 0 {
			// Replace the existing index in place: one more span to splice.
			s.spans = append(s.spans, sp[0])
			s.repl = append(s.repl, jsonString(macs[n]))
			continue
		}
		s.repl[r.field] = appendIndex(s.repl[r.field], pf, macs[n])
	}
	return nil
}

// fieldsOut encodes a fields record's new header and lists its key uses.
func (w *Rewrapper) fieldsOut(s *recState) ([]byte, []KeyUse, error) {
	h := record.FieldsHeader{V: 1, F: make([]record.FieldEntry, len(s.h.F))}
	var uses []KeyUse
	for fi, f := range s.h.F {
		if n, ok := s.newN[fi]; ok {
			f.N, f.Fmt, f.B = n, s.newFmt[fi], 1
			uses = append(uses, KeyUse{UseFPE, f.D, n})
		} else if f.M == string(policy.Transit) {
			if k, ok := s.newK[fi]; ok {
				f.K = k
			}
			var ct string
			_ = json.Unmarshal(s.repl[fi][:jsonStringEnd(s.repl[fi])], &ct)
			v, _ := kms.Version(ct)
			uses = append(uses, KeyUse{UseTransit, f.K, v})
		}
		h.F[fi] = f
	}
	b, err := h.Encode()
	if err != nil {
		return nil, nil, err
	}
	return b, uses, nil
}

// jsonStringEnd is the length of the JSON string at the start of b (the
// ciphertext, before an appended index member).
func jsonStringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}
