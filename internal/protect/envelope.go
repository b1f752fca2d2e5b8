package protect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// envelopes holds the envelope sealers (one per distinct policy setting)
// and the opener. Sealers are made on first use.
type envelopes struct {
	keys    envelope.KeyService
	opener  *envelope.Opener
	mu      sync.Mutex
	sealers map[string]*envelope.Sealer // by sealerKey
}

func newEnvelopes(keys envelope.KeyService, ps *policy.Set) (*envelopes, error) {
	keks := []string{envelope.DefaultKEK}
	for _, t := range ps.Topics() {
		if p, _ := ps.For(t); p.Mode == policy.Envelope && !slices.Contains(keks, p.Envelope.Key) {
			keks = append(keks, p.Envelope.Key)
		}
	}
	// Topics that hold records rewrapped from others (kafkagate.origin).
	origins := map[string][]string{}
	for _, t := range ps.Topics() {
		if p, _ := ps.For(t); len(p.RewrappedFrom) > 0 {
			origins[t] = p.RewrappedFrom
		}
	}
	op, err := envelope.NewOpener(keys, envelope.OpenerOptions{KEKs: keks, Origins: origins})
	if err != nil {
		return nil, fmt.Errorf("envelope opener: %w", err)
	}
	return &envelopes{keys: keys, opener: op, sealers: map[string]*envelope.Sealer{}}, nil
}

func (e *envelopes) sealer(p *policy.Policy) (*envelope.Sealer, error) {
	o := envelope.SealerOptions{KEK: p.Envelope.Key, Policy: envelope.DEKPolicy(p.Envelope.DEK),
		MaxRecords: int64(p.Envelope.MaxRecords), MaxBytes: p.Envelope.MaxBytes, MaxAge: p.Envelope.MaxAge}
	key := fmt.Sprintf("%s|%s|%d|%d|%s", o.KEK, o.Policy, o.MaxRecords, o.MaxBytes, o.MaxAge)
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.sealers[key]; ok {
		return s, nil
	}
	s, err := envelope.NewSealer(e.keys, o)
	if err != nil {
		return nil, fmt.Errorf("envelope sealer for %s: %w", p.Topic, err)
	}
	e.sealers[key] = s
	return s, nil
}

func (e *envelopes) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sealers {
		s.Close()
	}
	e.opener.Close()
}

// sealEnvelope encrypts whole values under data keys. A Vault failure
// fails the whole call; nothing is sealed.
func (e *Engine) sealEnvelope(ctx context.Context, p *policy.Policy, recs []Record) ([]Sealed, error) {
	out := make([]Sealed, len(recs))
	env, err := e.envelopes()
	if err != nil {
		return nil, err
	}
	s, err := env.sealer(p)
	if err != nil {
		return nil, err
	}
	for i, r := range recs {
		r.Topic = p.Topic
		sealed, err := s.Seal(ctx, r)
		if err != nil {
			if kms.IsCallError(err) || errors.Is(err, envelope.ErrDataKey) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			out[i].Err = &Error{Code: CodeEncryptFailed, Msg: "envelope: " + err.Error(), Err: err}
			continue
		}
		added := sealed.Headers[len(r.Headers):]
		out[i].Value = sealed.Value
		out[i].Headers = append(out[i].Headers, added...)
		wrapped, _ := envelope.HeaderValue(sealed.Headers, envelope.HeaderEDEK)
		info := FieldInfo{Path: "", Mode: string(policy.Envelope), Key: p.Envelope.Key}
		info.KeyVersion, _ = versionOf(string(wrapped))
		out[i].Fields = []FieldInfo{info}
	}
	e.countSealed(p, out)
	return out, nil
}

// openEnvelopes opens the record/1 and legacy records among recs (their
// indexes in idx) in one batch, writing into out.
func (e *Engine) openEnvelopes(ctx context.Context, recs []Record, idx []int, out []Opened) error {
	if len(idx) == 0 {
		return nil
	}
	env, err := e.envelopes()
	if err != nil {
		return err
	}
	var batch []envelope.Record
	var bidx []int
	for _, i := range idx {
		er := recs[i]
		f, _ := envelope.DetectFormat(er.Headers)
		info := FieldInfo{Path: "", Mode: string(policy.Envelope)}
		if w, ok := envelope.HeaderValue(er.Headers, envelope.HeaderEDEK); ok {
			info.KeyVersion, _ = versionOf(string(w))
		}
		if f == envelope.FormatLegacy {
			info.Mode = "legacy"
			lf, err := env.opener.OpenLegacy(ctx, er)
			if err != nil {
				if isWholeCall(err) {
					return err
				}
				out[i] = failedEnvelope(recs[i], info, err)
				continue
			}
			info.KeyVersion, _ = versionOf(lf.Wrapped)
			out[i] = Opened{Value: lf.Data, Status: StatusDecrypted, Fields: []FieldStatus{{FieldInfo: info, Status: FieldOK}}}
			continue
		}
		batch = append(batch, er)
		bidx = append(bidx, i)
		out[i].Fields = []FieldStatus{{FieldInfo: info}}
	}
	if len(batch) == 0 {
		return nil
	}
	res, err := env.opener.OpenBatch(ctx, batch)
	if err != nil {
		return err
	}
	for j, r := range res {
		i := bidx[j]
		info := out[i].Fields[0].FieldInfo
		if r.Err != nil {
			if isWholeCall(r.Err) {
				return r.Err
			}
			out[i] = failedEnvelope(recs[i], info, r.Err)
			continue
		}
		out[i] = Opened{Value: r.Plaintext, Status: StatusDecrypted, Fields: []FieldStatus{{FieldInfo: info, Status: FieldOK}}}
	}
	return nil
}

// isWholeCall reports a failure that is Vault's, not the record's.
func isWholeCall(err error) bool {
	return errors.Is(err, kms.ErrUnavailable) || errors.Is(err, kms.ErrDenied) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func failedEnvelope(r Record, info FieldInfo, err error) Opened {
	code := CodeDecryptFailed
	if errors.Is(err, envelope.ErrBadHeader) || errors.Is(err, envelope.ErrUnknownFormat) {
		code = CodeBadHeader
	}
	return Opened{Value: r.Value, Status: StatusFailed, Err: &Error{Code: code, Msg: "envelope: " + err.Error(), Err: err},
		Fields: []FieldStatus{{FieldInfo: info, Status: code, Error: err.Error(), Err: err}}}
}

func versionOf(ct string) (int, error) { return kms.Version(ct) }
