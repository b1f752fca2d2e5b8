package envelope

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DEKPolicy says how often the Sealer asks Vault for a new DEK.
type DEKPolicy string

// DEK policies.
const (
	// PerMessage: a fresh DEK for every record.
	PerMessage DEKPolicy = "per-message"
	// Cached: one DEK per topic, reused within MaxRecords, MaxBytes, MaxAge.
	Cached DEKPolicy = "cached"
)

// maxGCMPlaintext is the largest plaintext AES-GCM accepts in one call.
const maxGCMPlaintext = (1<<32 - 2) * 16

// SealerOptions configure a Sealer. Zero values take the defaults.
type SealerOptions struct {
	KEK    string    // transit key, default DefaultKEK (derived; context = topic)
	Policy DEKPolicy // default PerMessage

	// Limits of a cached DEK (Policy Cached only).
	MaxRecords int64         // default DefaultMaxRecords, at most MaxRecordsLimit
	MaxBytes   int64         // plaintext bytes, default DefaultMaxBytes
	MaxAge     time.Duration // default DefaultMaxAge
	MaxTopics  int           // topics with a cached DEK at once, default 1024

	// Now is the clock, default time.Now.
	Now func() time.Time
}

// Sealer encrypts record values (record/1) and files (chunk/1). It is safe
// for concurrent use.
type Sealer struct {
	ks   KeyService
	kek  string
	opts SealerOptions

	mu     sync.Mutex
	slots  *simplelru.LRU[string, *dekSlot] // topic -> cached DEK (Policy Cached)
	closed bool

	hits, fetches atomic.Int64
}

// SealerStats counts DEK use.
type SealerStats struct {
	Hits    int64 // records sealed with a cached DEK
	Fetches int64 // DEKs asked from Vault
}

// Stats returns the DEK counters.
func (s *Sealer) Stats() SealerStats {
	return SealerStats{Hits: s.hits.Load(), Fetches: s.fetches.Load()}
}

// dekSlot holds the cached DEK of one topic.
type dekSlot struct {
	mu  sync.Mutex
	cur *cachedDEK
	// fetch is a one-token semaphore: whoever holds it asks Vault for the
	// next DEK while the others wait (or give up when their ctx ends).
	fetch chan struct{}
}

type cachedDEK struct {
	c       *dekCipher
	wrapped string
	created time.Time
	records int64
	bytes   int64
}

// NewSealer returns a Sealer that gets DEKs from ks.
func NewSealer(ks KeyService, o SealerOptions) (*Sealer, error) {
	if ks == nil {
		return nil, fmt.Errorf("envelope: nil KeyService")
	}
	if o.KEK == "" {
		o.KEK = DefaultKEK
	}
	if o.Policy == "" {
		o.Policy = PerMessage
	}
	if o.Policy != PerMessage && o.Policy != Cached {
		return nil, fmt.Errorf("envelope: unknown DEK policy %q (want %q or %q)", o.Policy, PerMessage, Cached)
	}
	if o.MaxRecords == 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxTopics == 0 {
		o.MaxTopics = 1024
	}
	switch {
	case o.MaxRecords < 0 || o.MaxRecords > MaxRecordsLimit:
		return nil, fmt.Errorf("envelope: MaxRecords %d outside 1..%d (GCM random-nonce limit)", o.MaxRecords, int64(MaxRecordsLimit))
	case o.MaxBytes < 0:
		return nil, fmt.Errorf("envelope: negative MaxBytes")
	case o.MaxAge < 0:
		return nil, fmt.Errorf("envelope: negative MaxAge")
	case o.MaxTopics < 0:
		return nil, fmt.Errorf("envelope: negative MaxTopics")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	slots, err := simplelru.NewLRU[string, *dekSlot](o.MaxTopics, nil)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return &Sealer{ks: ks, kek: o.KEK, opts: o, slots: slots}, nil
}

// KEK is the transit key the Sealer wraps DEKs with.
func (s *Sealer) KEK() string { return s.kek }

// Close drops the cached DEKs; later calls fail with ErrClosed.
func (s *Sealer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.slots.Purge()
}

// Seal encrypts rec.Value for rec.Topic and rec.Key. The result carries
// rec's headers followed by the envelope headers, and the value
// nonce ‖ ciphertext ‖ tag. Existing kafkagate.* headers (except
// kafkagate.note.*) are authenticated with the value; envelope header names
// are refused (ErrBadHeader). If Vault gives no DEK the error wraps
// ErrDataKey and the KMS error, and nothing is produced.
func (s *Sealer) Seal(ctx context.Context, rec Record) (Record, error) {
	if rec.Topic == "" {
		return Record{}, errorf(ErrBadHeader, "empty topic")
	}
	if len(rec.Value) > maxGCMPlaintext {
		return Record{}, errorf(ErrTooLarge, "value of %d bytes exceeds the AES-GCM limit", len(rec.Value))
	}
	for _, h := range rec.Headers {
		if reserved(h.Key) {
			return Record{}, errorf(ErrBadHeader, "input already has envelope header %s", h.Key)
		}
	}
	c, wrapped, err := s.dekFor(ctx, rec.Topic, int64(len(rec.Value)))
	if err != nil {
		return Record{}, err
	}
	return sealWith(c, wrapped, s.ks.Mount()+"/"+s.kek, rec, nil)
}

// sealWith encrypts rec with c. nonce is nil for a random one (tests pass a
// fixed nonce for golden vectors).
func sealWith(c *dekCipher, wrapped, kekHeader string, rec Record, nonce []byte) (Record, error) {
	hs := make([]Header, 0, len(rec.Headers)+4)
	hs = append(hs, rec.Headers...)
	hs = append(hs,
		Header{Key: HeaderFormat, Value: []byte(FormatRecord)},
		Header{Key: HeaderAlg, Value: []byte(AlgRecord)},
		Header{Key: HeaderKEK, Value: []byte(kekHeader)},
		Header{Key: HeaderEDEK, Value: []byte(wrapped)},
	)
	sorted, err := authHeaders(hs)
	if err != nil {
		return Record{}, err
	}
	aad := buildAAD(rec.Topic, rec.Key, sorted)
	ns := c.gcm.NonceSize()
	out := make([]byte, ns, ns+len(rec.Value)+c.gcm.Overhead())
	if nonce != nil {
		copy(out, nonce)
	} else if _, err := rand.Read(out); err != nil {
		return Record{}, fmt.Errorf("envelope: nonce: %w", err)
	}
	out = c.gcm.Seal(out, out[:ns], rec.Value, aad)
	return Record{Topic: rec.Topic, Key: rec.Key, Headers: hs, Value: out}, nil
}

// newDEK asks the KeyService for a fresh DEK for topic.
func (s *Sealer) newDEK(ctx context.Context, topic string) (*dekCipher, string, error) {
	s.fetches.Add(1)
	dk, err := s.ks.NewDataKey(ctx, s.kek, []byte(topic))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	c, err := newDEKCipher(dk.Plaintext)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	if dk.Wrapped == "" {
		return nil, "", errorf(ErrDataKey, "no wrapped key returned")
	}
	return c, dk.Wrapped, nil
}

// dekFor returns the DEK to seal n plaintext bytes for topic under the
// policy, and charges the record to it.
func (s *Sealer) dekFor(ctx context.Context, topic string, n int64) (*dekCipher, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, "", ErrClosed
	}
	if s.opts.Policy == PerMessage || n > s.opts.MaxBytes {
		// A record above the byte budget of a whole cached DEK gets a
		// one-off DEK, so no cached DEK ever exceeds MaxBytes.
		s.mu.Unlock()
		return s.newDEK(ctx, topic)
	}
	slot, ok := s.slots.Get(topic)
	if !ok {
		slot = &dekSlot{fetch: make(chan struct{}, 1)}
		s.slots.Add(topic, slot)
	}
	s.mu.Unlock()

	if c, w, ok := s.take(slot, n); ok {
		return c, w, nil
	}
	select {
	case slot.fetch <- struct{}{}:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	defer func() { <-slot.fetch }()
	// Another goroutine may have refreshed the DEK while we waited.
	if c, w, ok := s.take(slot, n); ok {
		return c, w, nil
	}
	c, wrapped, err := s.newDEK(ctx, topic)
	if err != nil {
		return nil, "", err
	}
	d := &cachedDEK{c: c, wrapped: wrapped, created: s.opts.Now(), records: 1, bytes: n}
	slot.mu.Lock()
	slot.cur = d
	slot.mu.Unlock()
	return c, wrapped, nil
}

// take charges one record of n bytes to the slot's DEK if it is within its
// limits.
func (s *Sealer) take(slot *dekSlot, n int64) (*dekCipher, string, bool) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	d := slot.cur
	if d == nil {
		return nil, "", false
	}
	if d.records+1 > s.opts.MaxRecords || d.bytes+n > s.opts.MaxBytes || !s.opts.Now().Before(d.created.Add(s.opts.MaxAge)) {
		slot.cur = nil // retired: its cipher stays only with in-flight users
		return nil, "", false
	}
	d.records++
	d.bytes += n
	s.hits.Add(1)
	return d.c, d.wrapped, true
}
