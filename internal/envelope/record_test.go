package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

func newSealer(t testing.TB, ks KeyService, o SealerOptions) *Sealer {
	t.Helper()
	s, err := NewSealer(ks, o)
	return closedAtEnd(t, s, err)
}

func newOpener(t testing.TB, ks KeyService, o OpenerOptions) *Opener {
	t.Helper()
	op, err := NewOpener(ks, o)
	return closedAtEnd(t, op, err)
}

// forWorkers runs fn(0) to fn(n-1) concurrently and fails t with the
// errors they return.
func forWorkers(t *testing.T, n int, fn func(w int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(w); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// closedAtEnd fails t on err and otherwise closes v when t ends.
func closedAtEnd[T interface{ Close() }](t testing.TB, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestRecordRoundTripVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	op := newOpener(t, ks, OpenerOptions{})
	for _, pol := range []DEKPolicy{PerMessage, Cached} {
		s := newSealer(t, ks, SealerOptions{Policy: pol})
		for _, n := range []int{0, 1, 1024, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%dB", pol, n), func(t *testing.T) {
				pt := randBytes(n)
				in := Record{Topic: "orders", Key: []byte("k1"), Value: pt,
					Headers: []Header{{Key: "traceparent", Value: []byte("t")}, {Key: "kafkagate.fields", Value: []byte(`{"v":1}`)}}}
				rec, err := s.Seal(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				if len(rec.Value) != n+28 {
					t.Fatalf("value length %d for %d bytes", len(rec.Value), n)
				}
				if !strings.HasPrefix(hdr(rec, HeaderEDEK), "vault:v1:") || hdr(rec, HeaderKEK) != "transit/"+DefaultKEK ||
					hdr(rec, HeaderFormat) != "record/1" || hdr(rec, HeaderAlg) != "A256GCM" {
					t.Fatalf("headers %v", rec.Headers)
				}
				if f, err := DetectFormat(rec.Headers); f != FormatRecord || err != nil {
					t.Fatalf("DetectFormat %v %v", f, err)
				}
				got, err := op.Open(ctx, rec)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatal("round trip changed the value")
				}
				if hs := StripEnvelopeHeaders(rec.Headers); len(hs) != 2 || hs[1].Key != "kafkagate.fields" {
					t.Fatalf("stripped headers %v", hs)
				}
			})
		}
	}
	// A null and an empty record key are the same key.
	s := newSealer(t, ks, SealerOptions{})
	rec, err := s.Seal(ctx, Record{Topic: "orders", Key: nil, Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	rec.Key = []byte{}
	if _, err := op.Open(ctx, rec); err != nil {
		t.Fatalf("empty key vs null key: %v", err)
	}
}

func TestRecordKEKRotationVault(t *testing.T) {
	ctx := context.Background()
	const kek = "kafkagate-envelope-rotation"
	ks, tc := vaultTransit(t, kek)
	s := newSealer(t, ks, SealerOptions{KEK: kek})
	op := newOpener(t, ks, OpenerOptions{KEKs: []string{kek}})
	old, err := s.Seal(ctx, Record{Topic: "rot", Value: []byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Rotate(ctx, kek); err != nil {
		t.Fatal(err)
	}
	nw, err := s.Seal(ctx, Record{Topic: "rot", Value: []byte("after")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hdr(old, HeaderEDEK), "vault:v1:") || !strings.HasPrefix(hdr(nw, HeaderEDEK), "vault:v2:") {
		t.Fatalf("KEK version not visible: %s / %s", hdr(old, HeaderEDEK)[:9], hdr(nw, HeaderEDEK)[:9])
	}
	for _, r := range []Record{old, nw} {
		if _, err := op.Open(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordTamperVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	s := newSealer(t, ks, SealerOptions{})
	op := newOpener(t, ks, OpenerOptions{})
	secret := []byte("card 4111111111111111 belongs to Ada")
	seal := func() Record {
		r, err := s.Seal(ctx, Record{Topic: "orders", Key: []byte("customer-1"), Value: secret,
			Headers: []Header{{Key: "traceparent", Value: []byte("t1")}, {Key: "kafkagate.tenant", Value: []byte("acme")}}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1, r2 := seal(), seal()
	if _, err := op.Open(ctx, r1); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(r *Record)
		want   error // nil: must still open
	}{
		{"flip nonce bit", func(r *Record) { r.Value[0] ^= 1 }, ErrTampered},
		{"flip ciphertext bit", func(r *Record) { r.Value[14] ^= 0x80 }, ErrTampered},
		{"flip tag bit", func(r *Record) { r.Value[len(r.Value)-1] ^= 1 }, ErrTampered},
		{"truncated value", func(r *Record) { r.Value = r.Value[:len(r.Value)-1] }, ErrTampered},
		{"value shorter than nonce+tag", func(r *Record) { r.Value = r.Value[:20] }, ErrTampered},
		{"swapped wrapped DEK", func(r *Record) { setHeader(r, HeaderEDEK, []byte(hdr(r2, HeaderEDEK))) }, ErrTampered},
		{"swapped value", func(r *Record) { r.Value = append([]byte(nil), r2.Value...) }, ErrTampered},
		{"swapped record key", func(r *Record) { r.Key = []byte("customer-2") }, ErrTampered},
		{"swapped topic (DEK bound by derivation context)", func(r *Record) { r.Topic = "payments" }, ErrKeyUnwrap},
		{"changed kafkagate header", func(r *Record) { setHeader(r, "kafkagate.tenant", []byte("evil")) }, ErrTampered},
		{"added kafkagate header", func(r *Record) { setHeader(r, "kafkagate.extra", []byte("1")) }, ErrTampered},
		{"removed kafkagate header", func(r *Record) { r.Headers = append(r.Headers[:1:1], r.Headers[2:]...) }, ErrTampered},
		{"repeated kafkagate header", func(r *Record) { r.Headers = append(r.Headers, Header{Key: "kafkagate.tenant", Value: []byte("acme")}) }, ErrBadHeader},
		{"format header missing", func(r *Record) { r.Headers = StripEnvelopeHeaders(r.Headers) }, ErrUnknownFormat},
		{"unknown format version", func(r *Record) { setHeader(r, HeaderFormat, []byte("record/2")) }, ErrUnknownFormat},
		{"unknown alg", func(r *Record) { setHeader(r, HeaderAlg, []byte("A128GCM")) }, ErrUnknownFormat},
		{"KEK not allowed", func(r *Record) { setHeader(r, HeaderKEK, []byte("transit/other")) }, ErrKEKNotAllowed},
		{"KEK on another mount", func(r *Record) { setHeader(r, HeaderKEK, []byte("transit2/"+DefaultKEK)) }, ErrKEKNotAllowed},
		{"malformed wrapped DEK", func(r *Record) { setHeader(r, HeaderEDEK, []byte("not-a-ciphertext")) }, ErrBadHeader},
		{"forged wrapped DEK", func(r *Record) { setHeader(r, HeaderEDEK, []byte("vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")) }, ErrKeyUnwrap},
		{"note header is not authenticated", func(r *Record) { setHeader(r, "kafkagate.note.quarantine", []byte("x")) }, nil},
		{"application header is not authenticated", func(r *Record) { setHeader(r, "traceparent", []byte("t2")) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cloneRecord(r1)
			tc.mutate(&r)
			pt, err := op.Open(ctx, r)
			if tc.want == nil {
				if err != nil || !bytes.Equal(pt, secret) {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			mustIs(t, err, tc.want)
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "Ada") {
				t.Fatalf("error leaks plaintext: %v", err)
			}
		})
	}
	// Seal refuses reserved headers and an empty topic.
	_, err := s.Seal(ctx, Record{Topic: "orders", Headers: []Header{{Key: HeaderEDEK, Value: []byte("x")}}})
	mustIs(t, err, ErrBadHeader)
	_, err = s.Seal(ctx, Record{Value: []byte("x")})
	mustIs(t, err, ErrBadHeader)
}

// fakeClock is a manually advanced clock for the DEK age limit.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestCachedDEKLimitsVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	op := newOpener(t, ks, OpenerOptions{})
	sealN := func(t *testing.T, s *Sealer, topic string, sizes ...int) []string {
		t.Helper()
		var edeks []string
		for _, n := range sizes {
			r, err := s.Seal(ctx, Record{Topic: topic, Value: make([]byte, n)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := op.Open(ctx, r); err != nil {
				t.Fatal(err)
			}
			edeks = append(edeks, hdr(r, HeaderEDEK))
		}
		return edeks
	}
	runs := func(e []string) []int { // lengths of runs of the same DEK
		var out []int
		for i := range e {
			if i == 0 || e[i] != e[i-1] {
				out = append(out, 0)
			}
			out[len(out)-1]++
		}
		return out
	}
	t.Run("records", func(t *testing.T) {
		before := ks.dataKeys.Load()
		s := newSealer(t, ks, SealerOptions{Policy: Cached, MaxRecords: 3})
		e := sealN(t, s, "count", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
		if got := fmt.Sprint(runs(e)); got != "[3 3 3 1]" {
			t.Fatalf("records per DEK %s, want [3 3 3 1]", got)
		}
		if n := ks.dataKeys.Load() - before; n != 4 {
			t.Fatalf("%d Vault datakey calls, want 4", n)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		s := newSealer(t, ks, SealerOptions{Policy: Cached, MaxBytes: 1000})
		e := sealN(t, s, "bytes", 400, 400, 400, 200, 1500, 400, 1000)
		// DEK A: 400+400 | B: 400+200 | one-off C: 1500 | B again: 600+400 = 1000 | D: 1000
		if e[0] != e[1] || e[1] == e[2] || e[2] != e[3] || e[4] == e[3] || e[4] == e[5] || e[5] != e[3] || e[6] == e[5] {
			t.Fatalf("byte budget not respected: runs %v", runs(e))
		}
	})
	t.Run("age", func(t *testing.T) {
		clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
		s := newSealer(t, ks, SealerOptions{Policy: Cached, MaxAge: time.Minute, Now: clk.Now})
		a := sealN(t, s, "age", 1)
		clk.Add(59 * time.Second)
		b := sealN(t, s, "age", 1)
		clk.Add(time.Second)
		c := sealN(t, s, "age", 1)
		if a[0] != b[0] || b[0] == c[0] {
			t.Fatal("DEK age limit not respected")
		}
	})
	t.Run("per topic", func(t *testing.T) {
		s := newSealer(t, ks, SealerOptions{Policy: Cached})
		if a, b := sealN(t, s, "t1", 1), sealN(t, s, "t2", 1); a[0] == b[0] {
			t.Fatal("two topics share a DEK")
		}
	})
	t.Run("limit validation", func(t *testing.T) {
		if _, err := NewSealer(ks, SealerOptions{Policy: Cached, MaxRecords: MaxRecordsLimit + 1}); err == nil {
			t.Fatal("MaxRecords above the GCM limit accepted")
		}
		if _, err := NewSealer(ks, SealerOptions{Policy: "sometimes"}); err == nil {
			t.Fatal("unknown policy accepted")
		}
	})
}

func TestCachedDEKConcurrentVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	const workers, each, limit = 8, 150, 40
	s := newSealer(t, ks, SealerOptions{Policy: Cached, MaxRecords: limit})
	recs := make([]Record, workers*each)
	forWorkers(t, workers, func(w int) error {
		for i := range each {
			r, err := s.Seal(ctx, Record{Topic: "conc", Key: []byte(fmt.Sprint(w, "-", i)), Value: []byte(fmt.Sprint("v", w, i))})
			if err != nil {
				return err
			}
			recs[w*each+i] = r
		}
		return nil
	})
	uses := map[string]int{}
	for _, r := range recs {
		uses[hdr(r, HeaderEDEK)]++
	}
	for _, n := range uses {
		if n > limit {
			t.Fatalf("a DEK sealed %d records, limit %d", n, limit)
		}
	}
	if min := workers * each / limit; len(uses) < min {
		t.Fatalf("%d DEKs for %d records", len(uses), workers*each)
	}
	// Every record opens, concurrently, through one Opener.
	op := newOpener(t, ks, OpenerOptions{})
	forWorkers(t, workers, func(w int) error {
		for i := range each {
			r := recs[w*each+i]
			pt, err := op.Open(ctx, r)
			if err != nil || string(pt) != fmt.Sprint("v", w, i) {
				return fmt.Errorf("record %d/%d: %v", w, i, err)
			}
		}
		return nil
	})
	st := op.Stats()
	if st.Misses != int64(len(uses)) {
		t.Fatalf("opener unwrapped %d DEKs, want %d (one per distinct DEK)", st.Misses, len(uses))
	}
	t.Logf("%d records, %d DEKs, Vault datakey calls %d, opener stats %+v", len(recs), len(uses), ks.dataKeys.Load(), st)
}

func TestOpenerCacheVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	t.Run("hit rate", func(t *testing.T) {
		s := newSealer(t, ks, SealerOptions{Policy: Cached})
		op := newOpener(t, ks, OpenerOptions{})
		before := ks.unwraps.Load()
		const n = 500
		for i := range n {
			r, err := s.Seal(ctx, Record{Topic: "hits", Value: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := op.Open(ctx, r); err != nil || string(pt) != fmt.Sprint(i) {
				t.Fatal(err)
			}
		}
		st := op.Stats()
		if calls := ks.unwraps.Load() - before; calls != 1 || st.Hits != n-1 || st.Misses != 1 {
			t.Fatalf("Vault unwrap calls %d, stats %+v; want 1 call, %d hits", calls, st, n-1)
		}
	})
	t.Run("batch unwrap in one call", func(t *testing.T) {
		s := newSealer(t, ks, SealerOptions{Policy: PerMessage})
		op := newOpener(t, ks, OpenerOptions{})
		var recs []Record
		for i := range 60 {
			topic := []string{"b1", "b2", "b3"}[i%3] // different derivation contexts in one call
			r, err := s.Seal(ctx, Record{Topic: topic, Value: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		bad := cloneRecord(recs[5])
		bad.Value[20] ^= 1
		recs = append(recs, bad, Record{Topic: "b1", Value: []byte("plain")})
		before := ks.unwraps.Load()
		res, err := op.OpenBatch(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if calls := ks.unwraps.Load() - before; calls != 1 {
			t.Fatalf("%d Vault unwrap calls for a batch of 60 distinct DEKs, want 1", calls)
		}
		for i := range 60 {
			if res[i].Err != nil || string(res[i].Plaintext) != fmt.Sprint(i) {
				t.Fatalf("record %d: %v", i, res[i].Err)
			}
		}
		mustIs(t, res[60].Err, ErrTampered)
		mustIs(t, res[61].Err, ErrUnknownFormat)
		// Prefetch then Open: no more Vault calls.
		op2 := newOpener(t, ks, OpenerOptions{})
		if err := op2.Prefetch(ctx, recs); err != nil {
			t.Fatal(err)
		}
		before = ks.unwraps.Load()
		for i := range 60 {
			if _, err := op2.Open(ctx, recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if calls := ks.unwraps.Load() - before; calls != 0 {
			t.Fatalf("%d Vault calls after Prefetch", calls)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		s := newSealer(t, ks, SealerOptions{Policy: PerMessage})
		op := newOpener(t, ks, OpenerOptions{CacheSize: 4})
		for i := range 10 {
			r, _ := s.Seal(ctx, Record{Topic: "lru", Value: []byte("x")})
			if _, err := op.Open(ctx, r); err != nil {
				t.Fatal(err)
			}
			_ = i
		}
		if st := op.Stats(); st.Size != 4 {
			t.Fatalf("cache holds %d DEKs, bound 4", st.Size)
		}
	})
}

// TestVaultStoppedFailsClosed stops a dedicated Vault and checks that
// nothing is sealed or opened without it.
func TestVaultStoppedFailsClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := devenv.StartVault(ctx, devenv.VaultOptions{})
	if err != nil {
		t.Fatalf("this test needs a real Vault (devenv): %v", err)
	}
	defer v.Stop()
	if err := setupKeys(ctx, v); err != nil {
		t.Fatal(err)
	}
	ks := vaultKeys(t, v)
	s := newSealer(t, ks, SealerOptions{})
	op := newOpener(t, ks, OpenerOptions{})
	sealed, err := s.Seal(ctx, Record{Topic: "down", Value: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Seal(ctx, Record{Topic: "down", Value: []byte("secret")})
	mustIs(t, err, vaultclient.ErrUnavailable, ErrDataKey)
	if rec.Value != nil || rec.Headers != nil {
		t.Fatal("Seal produced output without a DEK")
	}
	_, err = op.Open(ctx, sealed)
	mustIs(t, err, vaultclient.ErrUnavailable, ErrKeyUnwrap)
	_, err = op.OpenBatch(ctx, []Record{sealed})
	mustIs(t, err, vaultclient.ErrUnavailable)
	_, err = s.NewFileEncoder(ctx, "down", "f.bin", bytes.NewReader(nil), FileOptions{})
	mustIs(t, err, vaultclient.ErrUnavailable, ErrDataKey)
	_, _, err = EncodeLegacy(ctx, ks, "", "f.bin", []byte("x"))
	mustIs(t, err, vaultclient.ErrUnavailable, ErrDataKey)
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("error leaks plaintext")
	}
	if !errors.Is(err, vaultclient.ErrUnavailable) {
		t.Fatal("unreachable")
	}
}

func TestDetectFormat(t *testing.T) {
	cases := []struct {
		hs   []Header
		want Format
		err  error
	}{
		{nil, FormatNone, nil},
		{[]Header{{Key: "traceparent", Value: nil}}, FormatNone, nil},
		{[]Header{{Key: HeaderFormat, Value: []byte("record/1")}}, FormatRecord, nil},
		{[]Header{{Key: HeaderFormat, Value: []byte("chunk/1")}}, FormatChunk, nil},
		{[]Header{{Key: LegacyKeyHeader, Value: []byte("vault:v1:x")}, {Key: LegacyNameHeader, Value: []byte("a")}}, FormatLegacy, nil},
		{[]Header{{Key: HeaderFormat, Value: []byte("record/7")}}, FormatNone, ErrUnknownFormat},
		{[]Header{{Key: HeaderFormat, Value: []byte("record/1")}, {Key: HeaderFormat, Value: []byte("record/1")}}, FormatNone, ErrBadHeader},
	}
	for i, c := range cases {
		f, err := DetectFormat(c.hs)
		if f != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("case %d: %v %v", i, f, err)
		}
	}
}
