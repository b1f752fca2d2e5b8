package envelope

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/kafkagate/kafkagate/internal/kms"
)

// OpenerOptions configure an Opener. Zero values take the defaults.
type OpenerOptions struct {
	// KEKs are the transit keys (on the KeyService's mount) whose DEKs the
	// Opener accepts, default [DefaultKEK].
	KEKs []string
	// LegacyKEK is the key of the demo's legacy format, default
	// DefaultLegacyKEK.
	LegacyKEK string
	// CacheSize bounds the unwrapped DEKs kept, default DefaultOpenerCacheSize.
	CacheSize int
	// Origins maps a topic to the other topics whose records it may hold
	// (records carrying kafkagate.origin, copied there by gateway rewrap).
	// Such a record is authenticated, and its DEK unwrapped, for its origin
	// topic; an origin not listed for the topic it was read from is refused
	// with ErrOriginNotAllowed. Empty: every record must be sealed for the
	// topic it is read from.
	Origins map[string][]string
}

// Opener decrypts record/1 values, chunk/1 files (through FileDecoder) and
// legacy messages. It keeps a bounded LRU of unwrapped DEKs keyed by (KEK,
// context, wrapped DEK), and unwraps concurrent requests for the same DEK
// once. It is safe for concurrent use.
type Opener struct {
	ks        KeyService
	keks      map[string]bool
	legacyKEK string
	origins   map[string][]string

	mu       sync.Mutex
	cache    *simplelru.LRU[string, *dekCipher]
	inflight map[string]*unwrapCall
	closed   bool

	hits, misses, calls atomic.Int64
}

type unwrapCall struct {
	done  chan struct{}
	c     *dekCipher
	err   error
	whole bool // err is a whole-call failure (Vault unavailable, denied, ...)
}

// CacheStats counts DEK cache use.
type CacheStats struct {
	Hits        int64 // DEK found in the cache (or in flight)
	Misses      int64 // DEK that had to be unwrapped
	UnwrapCalls int64 // KeyService.Unwrap calls
	Size        int   // DEKs now cached
}

// NewOpener returns an Opener that unwraps DEKs with ks.
func NewOpener(ks KeyService, o OpenerOptions) (*Opener, error) {
	if ks == nil {
		return nil, fmt.Errorf("envelope: nil KeyService")
	}
	if len(o.KEKs) == 0 {
		o.KEKs = []string{DefaultKEK}
	}
	if o.LegacyKEK == "" {
		o.LegacyKEK = DefaultLegacyKEK
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultOpenerCacheSize
	}
	if o.CacheSize < 0 {
		return nil, fmt.Errorf("envelope: negative CacheSize")
	}
	cache, err := simplelru.NewLRU[string, *dekCipher](o.CacheSize, nil)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	keks := make(map[string]bool, len(o.KEKs))
	for _, k := range o.KEKs {
		keks[k] = true
	}
	origins := make(map[string][]string, len(o.Origins))
	for t, ts := range o.Origins {
		origins[t] = slices.Clone(ts)
	}
	return &Opener{ks: ks, keks: keks, legacyKEK: o.LegacyKEK, origins: origins, cache: cache, inflight: map[string]*unwrapCall{}}, nil
}

// Stats returns cache counters.
func (o *Opener) Stats() CacheStats {
	o.mu.Lock()
	n := o.cache.Len()
	o.mu.Unlock()
	return CacheStats{Hits: o.hits.Load(), Misses: o.misses.Load(), UnwrapCalls: o.calls.Load(), Size: n}
}

// Close drops every cached DEK; later calls fail with ErrClosed.
func (o *Opener) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.cache.Purge()
}

// Opened is the result of opening one record of a batch.
type Opened struct {
	Plaintext []byte
	Err       error
}

// sealedRecord is a parsed record/1 ready to open.
type sealedRecord struct {
	kek     string
	wrapped string
	topic   string // the topic it was sealed for: its own, or its accepted origin
	aad     []byte
	value   []byte
}

// parseRecord checks a record/1's headers and builds its associated data.
func (o *Opener) parseRecord(rec Record) (sealedRecord, error) {
	if rec.Topic == "" {
		return sealedRecord{}, errorf(ErrBadHeader, "empty topic")
	}
	f, err := parseFields(rec.Headers)
	if err != nil {
		return sealedRecord{}, err
	}
	if err := f.checkFormat(FormatRecord, AlgRecord); err != nil {
		if _, ok := HeaderValue(rec.Headers, HeaderFormat); !ok {
			if _, legacy := HeaderValue(rec.Headers, LegacyKeyHeader); legacy {
				return sealedRecord{}, errorf(ErrUnknownFormat, "legacy demo message: use OpenLegacy")
			}
		}
		return sealedRecord{}, err
	}
	kek, wrapped, err := o.keyHeaders(f)
	if err != nil {
		return sealedRecord{}, err
	}
	topic, err := o.sealedFor(rec.Topic, f)
	if err != nil {
		return sealedRecord{}, err
	}
	return sealedRecord{kek: kek, wrapped: wrapped, topic: topic, aad: buildAAD(topic, rec.Key, f.sorted), value: rec.Value}, nil
}

// sealedFor returns the topic a record read from topic was sealed for:
// topic itself, or the kafkagate.origin it names when the Opener accepts
// that origin for topic.
func (o *Opener) sealedFor(topic string, f fields) (string, error) {
	v, ok := f.get(HeaderOrigin)
	if !ok || string(v) == topic {
		return topic, nil
	}
	if len(v) == 0 {
		return "", errorf(ErrBadHeader, "empty %s", HeaderOrigin)
	}
	if !slices.Contains(o.origins[topic], string(v)) {
		return "", errorf(ErrOriginNotAllowed, "record sealed for topic %q read from %q", printable(v), topic)
	}
	return string(v), nil
}

// keyHeaders checks kafkagate.kek against the allow-list and returns the
// KEK name and the wrapped DEK.
func (o *Opener) keyHeaders(f fields) (string, string, error) {
	kv, err := f.require(HeaderKEK)
	if err != nil {
		return "", "", err
	}
	ref, err := parseKEK(kv)
	if err != nil {
		return "", "", err
	}
	if ref.mount != o.ks.Mount() || !o.keks[ref.key] {
		return "", "", errorf(ErrKEKNotAllowed, "%s", ref)
	}
	ev, err := f.require(HeaderEDEK)
	if err != nil {
		return "", "", err
	}
	if !kms.IsCiphertext(string(ev)) {
		return "", "", errorf(ErrBadHeader, "%s is not a vault:vN: ciphertext", HeaderEDEK)
	}
	return ref.key, string(ev), nil
}

func openWith(c *dekCipher, r sealedRecord) ([]byte, error) {
	ns := c.gcm.NonceSize()
	if len(r.value) < ns+c.gcm.Overhead() {
		return nil, errorf(ErrTampered, "value of %d bytes is too short", len(r.value))
	}
	pt, err := c.gcm.Open(nil, r.value[:ns], r.value[ns:], r.aad)
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

// Open decrypts a record/1 value sealed for rec.Topic and rec.Key.
func (o *Opener) Open(ctx context.Context, rec Record) ([]byte, error) {
	r, err := o.parseRecord(rec)
	if err != nil {
		return nil, err
	}
	cs, errs, err := o.deks(ctx, []dekReq{{kek: r.kek, ctx: []byte(r.topic), wrapped: r.wrapped}})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	return openWith(cs[0], r)
}

// OpenBatch decrypts records, unwrapping all distinct uncached DEKs in one
// KeyService call per KEK. Per-record failures are in the results; the
// error is non-nil only when Vault failed as a whole (then nothing is
// returned).
func (o *Opener) OpenBatch(ctx context.Context, recs []Record) ([]Opened, error) {
	out := make([]Opened, len(recs))
	parsed := make([]sealedRecord, len(recs))
	reqs := make([]dekReq, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i, rec := range recs {
		r, err := o.parseRecord(rec)
		if err != nil {
			out[i].Err = err
			continue
		}
		parsed[i] = r
		reqs = append(reqs, dekReq{kek: r.kek, ctx: []byte(r.topic), wrapped: r.wrapped})
		idx = append(idx, i)
	}
	cs, errs, err := o.deks(ctx, reqs)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		if errs[j] != nil {
			out[i].Err = errs[j]
			continue
		}
		out[i].Plaintext, out[i].Err = openWith(cs[j], parsed[i])
	}
	return out, nil
}

// Prefetch unwraps and caches the DEKs of recs (record/1 and chunk/1) in
// one KeyService call per KEK, so that later Open calls hit the cache.
// Records that are not envelopes, or whose DEK cannot be unwrapped, are
// skipped; the error is non-nil only when Vault failed as a whole.
func (o *Opener) Prefetch(ctx context.Context, recs []Record) error {
	reqs := make([]dekReq, 0, len(recs))
	for _, rec := range recs {
		f, err := parseFields(rec.Headers)
		if err != nil || rec.Topic == "" {
			continue
		}
		if fv, _ := f.get(HeaderFormat); Format(fv) != FormatRecord {
			continue
		}
		kek, wrapped, err := o.keyHeaders(f)
		if err != nil {
			continue
		}
		topic, err := o.sealedFor(rec.Topic, f)
		if err != nil {
			continue
		}
		reqs = append(reqs, dekReq{kek: kek, ctx: []byte(topic), wrapped: wrapped})
	}
	_, _, err := o.deks(ctx, reqs)
	return err
}

// dekReq names one DEK.
type dekReq struct {
	kek     string
	ctx     []byte
	wrapped string
}

func (r dekReq) cacheKey() string {
	// Lengths make the key unambiguous whatever the bytes.
	return fmt.Sprintf("%d:%s|%d:%s|%s", len(r.kek), r.kek, len(r.ctx), r.ctx, r.wrapped)
}

// deks returns the cipher of each request, from the cache or from one
// KeyService.Unwrap call per KEK for the distinct missing ones. errs holds
// per-request failures (wrapping ErrKeyUnwrap); err a whole-call failure.
func (o *Opener) deks(ctx context.Context, reqs []dekReq) ([]*dekCipher, []error, error) {
	out := make([]*dekCipher, len(reqs))
	errs := make([]error, len(reqs))
	if len(reqs) == 0 {
		return out, errs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	keys := make([]string, len(reqs))
	waits := map[string]*unwrapCall{}
	mine := map[string]*unwrapCall{}
	var mineOrder []int // first request index of each key this call unwraps

	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, nil, ErrClosed
	}
	for i, r := range reqs {
		k := r.cacheKey()
		keys[i] = k
		if c, ok := o.cache.Get(k); ok {
			out[i] = c
			o.hits.Add(1)
			continue
		}
		if _, ok := mine[k]; ok {
			o.hits.Add(1)
			continue
		}
		if call, ok := o.inflight[k]; ok {
			waits[k] = call
			o.hits.Add(1)
			continue
		}
		call := &unwrapCall{done: make(chan struct{})}
		o.inflight[k] = call
		mine[k] = call
		mineOrder = append(mineOrder, i)
		o.misses.Add(1)
	}
	o.mu.Unlock()

	if len(mineOrder) > 0 {
		o.unwrapMine(ctx, reqs, keys, mine, mineOrder)
	}
	for k, call := range mine {
		waits[k] = call
	}
	for i, k := range keys {
		if out[i] != nil {
			continue
		}
		call := waits[k]
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if call.err != nil {
			if call.whole {
				return nil, nil, call.err
			}
			errs[i] = call.err
			continue
		}
		out[i] = call.c
	}
	return out, errs, nil
}

// unwrapMine unwraps the DEKs this goroutine registered as in flight, one
// KeyService call per KEK, publishes them to the cache and wakes waiters.
func (o *Opener) unwrapMine(ctx context.Context, reqs []dekReq, keys []string, mine map[string]*unwrapCall, order []int) {
	// One call per KEK; Vault also refuses batches that mix items with and
	// without a derivation context, so those are split too.
	type group struct {
		kek        string
		hasContext bool
	}
	byGroup := map[group][]int{}
	var groups []group
	for _, i := range order {
		g := group{reqs[i].kek, reqs[i].ctx != nil}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], i)
	}
	for _, g := range groups {
		kek, ids := g.kek, byGroup[g]
		items := make([]WrappedKey, len(ids))
		for j, i := range ids {
			items[j] = WrappedKey{Wrapped: reqs[i].wrapped, Context: reqs[i].ctx}
		}
		o.calls.Add(1)
		res, err := o.ks.Unwrap(ctx, kek, items)
		if err == nil && len(res) != len(items) {
			err = fmt.Errorf("key service returned %d results for %d keys", len(res), len(items))
		}
		for j, i := range ids {
			call := mine[keys[i]]
			switch {
			case err != nil && wholeCallRefusal(err):
				// Every item was refused; Vault sent no per-item detail.
				call.err = fmt.Errorf("%w: %w", ErrKeyUnwrap, err)
			case err != nil:
				call.err, call.whole = fmt.Errorf("%w: %w", ErrKeyUnwrap, err), true
			case res[j].Err != nil:
				clear(res[j].Plaintext)
				call.err = fmt.Errorf("%w: %w", ErrKeyUnwrap, res[j].Err)
			default:
				c, cerr := newDEKCipher(res[j].Plaintext) // zeroes the raw key
				if cerr != nil {
					call.err = fmt.Errorf("%w: %w", ErrKeyUnwrap, cerr)
				} else {
					call.c = c
				}
			}
		}
		o.mu.Lock()
		for _, i := range ids {
			k := keys[i]
			call := mine[k]
			if call.c != nil && !o.closed {
				o.cache.Add(k, call.c)
			}
			delete(o.inflight, k)
			close(call.done)
		}
		o.mu.Unlock()
	}
}

// unwrapRaw unwraps one DEK without caching it, for callers that need the
// raw key (file decoding derives a per-file key from it). The caller zeroes
// the result.
func (o *Opener) unwrapRaw(ctx context.Context, kek string, derivation []byte, wrapped string) ([]byte, error) {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	o.calls.Add(1)
	res, err := o.ks.Unwrap(ctx, kek, []WrappedKey{{Wrapped: wrapped, Context: derivation}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnwrap, err)
	}
	if len(res) != 1 {
		return nil, errorf(ErrKeyUnwrap, "key service returned %d results for 1 key", len(res))
	}
	if res[0].Err != nil {
		clear(res[0].Plaintext)
		return nil, fmt.Errorf("%w: %w", ErrKeyUnwrap, res[0].Err)
	}
	if len(res[0].Plaintext) != dekBytes {
		clear(res[0].Plaintext)
		return nil, errorf(ErrKeyUnwrap, "data key has %d bytes, want %d", len(res[0].Plaintext), dekBytes)
	}
	return res[0].Plaintext, nil
}
