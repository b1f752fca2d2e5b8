package protect

// Blind indexes. A transit field with the policy
// option index=hmac also gets a keyed hash of its plaintext, computed by
// Vault (transit/hmac, sha2-256) with the policy's index key
// (kafkagate-index-{topic} unless index_key says otherwise), stored beside
// the ciphertext as the sibling JSON string field "<name>_bidx"
// ("vault:vN:<base64>"). Equal plaintexts give equal indexes under the same
// index key version, so a reader can find records by value without
// decrypting them; the index itself reveals only that equality (like FPE's
// determinism), and nothing of the value to whoever lacks the right to
// call transit/hmac with the index key. See docs/keys.md.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/policy"
)

// ErrNoIndex: a blind-index lookup names a path the topic's policy does
// not index.
var ErrNoIndex = errors.New("no blind index for this path")

// indexedFields lists the positions of p's fields with index=hmac.
func indexedFields(p *policy.Policy) []int {
	var out []int
	for fi, f := range p.Fields {
		if f.Mode == policy.Transit && f.Options["index"] == "hmac" {
			out = append(out, fi)
		}
	}
	return out
}

// addBlindIndexes computes, for every field encrypted by Encrypt that has
// index=hmac, the HMAC of its plaintext (one batch for all records) and
// appends `,"<name>_bidx":"vault:vN:..."` to the field's replacement, so
// the index lands right after the ciphertext in the same object. A value
// that already has the sibling is refused: an index is the gateway's to
// write, never the producer's. The error is a whole-call failure.
func (e *Engine) addBlindIndexes(ctx context.Context, p *policy.Policy, values [][]byte, spans [][]span, repl [][][]byte, out []Sealed) error {
	idx := indexedFields(p)
	if len(idx) == 0 {
		return nil
	}
	sibs := make([][]string, len(idx))
	for j, fi := range idx {
		sibs[j] = p.Fields[fi].IndexPath()
	}
	type ref struct{ rec, field int }
	var (
		inputs [][]byte
		refs   []ref
	)
	for ri, v := range values {
		if out[ri].Err != nil || spans[ri] == nil {
			continue
		}
		present, perr := locate(v, sibs, e.maxDepth)
		if perr != nil {
			out[ri].Err = perr
			continue
		}
		for j, fi := range idx {
			if present[j].start >= 0 {
				out[ri].Err = &Error{Code: CodeFieldInvalid, Field: policy.JoinPath(sibs[j]),
					Msg: "is reserved for the blind index of " + p.Fields[fi].PathString() + " (written by the gateway)"}
				break
			}
			if repl[ri][fi] == nil {
				continue // absent or null: nothing encrypted, no index
			}
			inputs = append(inputs, []byte(spans[ri][fi].res.Str))
			refs = append(refs, ref{ri, fi})
		}
	}
	if len(inputs) == 0 {
		return nil
	}
	macs, errs, err := e.transit.HMAC(ctx, p.IndexKey, inputs)
	for i := range inputs {
		clear(inputs[i])
	}
	if err != nil {
		return fmt.Errorf("blind index with key %q: %w", p.IndexKey, err)
	}
	for i, r := range refs {
		if out[r.rec].Err != nil {
			continue
		}
		f := p.Fields[r.field]
		if errs[i] != nil {
			out[r.rec].Err = &Error{Code: CodeEncryptFailed, Field: f.PathString(), Msg: "vault refused to compute its blind index", Err: errs[i]}
			continue
		}
		repl[r.rec][r.field] = appendIndex(repl[r.rec][r.field], f, macs[i])
	}
	return nil
}

// appendIndex appends the sibling member `,"<name>_bidx":"<mac>"` to a
// field's replacement JSON.
func appendIndex(b []byte, f policy.Field, mac string) []byte {
	sib := f.IndexPath()
	b = append(slices.Clip(b), ',')
	b = append(b, jsonString(sib[len(sib)-1])...)
	b = append(b, ':')
	return append(b, jsonString(mac)...)
}

// MatchIndex reports which of recs (records of topic) hold, for every
// path in filters, a blind index equal to the HMAC of the filter's
// plaintext: the gateway computes the HMACs with the topic's index key
// (one Vault call) and compares them with the stored "<name>_bidx" values.
// Only indexes made under the index key's latest version can match (see
// docs/keys.md: rewrap re-indexes after an index key rotation). A path
// the topic's policy does not index is ErrNoIndex. The filter values are
// never logged or returned.
func (e *Engine) MatchIndex(ctx context.Context, topic string, filters map[string]string, recs []Record) ([]bool, error) {
	p, ok := e.policies.For(topic)
	if !ok || p.Mode != policy.Fields {
		return nil, fmt.Errorf("topic %q has no fields policy: %w", topic, ErrNoIndex)
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for k := range filters {
			if !yield(k) {
				return
			}
		}
	})
	sibs := make([][]string, len(paths))
	inputs := make([][]byte, len(paths))
	for i, path := range paths {
		fi := slices.IndexFunc(p.Fields, func(f policy.Field) bool { return f.PathString() == path })
		if fi < 0 || !slices.Contains(indexedFields(p), fi) {
			return nil, fmt.Errorf("topic %q: field %q: %w", topic, path, ErrNoIndex)
		}
		sibs[i] = p.Fields[fi].IndexPath()
		inputs[i] = []byte(filters[path])
	}
	keep := make([]bool, len(recs))
	if len(paths) == 0 {
		for i := range keep {
			keep[i] = true
		}
		return keep, nil
	}
	macs, errs, err := e.transit.HMAC(ctx, p.IndexKey, inputs)
	for i := range inputs {
		clear(inputs[i])
	}
	if err != nil {
		return nil, fmt.Errorf("blind index with key %q: %w", p.IndexKey, err)
	}
	for _, ierr := range errs {
		if ierr != nil {
			return nil, fmt.Errorf("blind index with key %q: %w", p.IndexKey, ierr)
		}
	}
	for ri, r := range recs {
		sp, perr := locate(r.Value, sibs, e.maxDepth)
		if perr != nil {
			continue
		}
		keep[ri] = true
		for i := range sibs {
			s := sp[i]
			if s.start < 0 || s.res.Type != gjson.String || subtle.ConstantTimeCompare([]byte(s.res.Str), []byte(macs[i])) != 1 {
				keep[ri] = false
				break
			}
		}
	}
	return keep, nil
}
