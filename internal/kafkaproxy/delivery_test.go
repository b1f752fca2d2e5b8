package kafkaproxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// kgoClient is a franz-go client on addr; it is closed when t ends.
func kgoClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeUntil polls topic from the start through addr at the given
// isolation level until done reports true for what was read (or 60 s).
func consumeUntil(t *testing.T, addr, topic string, level kgo.IsolationLevel, done func([]*kgo.Record) bool, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)
	cl := kgoClient(t, addr, opts...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []*kgo.Record
	for !done(got) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records read in 60 s, not done", topic, len(got))
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("%s/%d: fetch error: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	return got
}

func hasValue(recs []*kgo.Record, v string) bool {
	for _, r := range recs {
		if string(r.Value) == v {
			return true
		}
	}
	return false
}

// cutConn closes its connection right after the client writes a Produce
// request, while cuts remain: the proxy has forwarded the request, the
// broker writes the batch, and the answer is lost, so the idempotent
// producer retries the same sequence.
type cutConn struct {
	net.Conn
	cuts *atomic.Int32
}

func (c *cutConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if len(b) >= 6 && int16(binary.BigEndian.Uint16(b[4:])) == 0 && c.cuts.Add(-1) >= 0 {
		_ = c.Conn.Close() // the request is sent; its answer is lost
	}
	return n, err
}

// TestIdempotentProduceRetriesNoDuplicates: an idempotent franz-go
// producer through the proxy whose connections are cut after Produce
// requests were forwarded retries them with the same producer id, epoch
// and sequences; the broker deduplicates them, so every record is stored
// exactly once (encrypted) and reads back once through the proxy.
func TestIdempotentProduceRetriesNoDuplicates(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	// The broker's view of the batches: (producer id, sequence) -> times
	// received, so the test sees the retries arrive with the same ids.
	var bmu sync.Mutex
	batches := map[string]int{}
	f.env.Kafka.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		f.env.Kafka.KeepControl()
		bmu.Lock()
		defer bmu.Unlock()
		for _, t := range r.(*kmsg.ProduceRequest).Topics {
			for _, p := range t.Partitions {
				var b kmsg.RecordBatch
				if b.ReadFrom(p.Records) == nil {
					batches[fmt.Sprintf("%d/%d/%d", b.ProducerID, b.ProducerEpoch, b.FirstSequence)]++
				}
			}
		}
		return nil, nil, false
	})
	cuts := &atomic.Int32{}
	cuts.Store(8)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	cl := kgoClient(t, f.proxy, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, host)
			if err != nil {
				return nil, err
			}
			return &cutConn{Conn: c, cuts: cuts}, nil
		}))
	const n = 120
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	want := map[string]bool{}
	for i := range n {
		v := fmt.Sprintf("idempotent document %03d", i)
		want[v] = true
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Topic: "docs", Partition: 0, Value: []byte(v)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		if i%10 == 9 {
			time.Sleep(150 * time.Millisecond) // several requests, some cut
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d records failed, first: %v", len(errs), errs[0])
	}
	if cuts.Load() >= 0 {
		t.Fatalf("only %d of 8 connection cuts happened", 8-cuts.Load()-1)
	}
	stored := assertStoredEncrypted(t, f, "docs", n, "idempotent document")
	got := consumeUntil(t, f.proxy, "docs", kgo.ReadCommitted(), func(r []*kgo.Record) bool { return len(r) >= n })
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for v := range want {
		if seen[v] != 1 {
			t.Fatalf("%q read %d times through the proxy", v, seen[v])
		}
	}
	if len(got) != n {
		t.Fatalf("%d records read, want %d", len(got), n)
	}
	bmu.Lock()
	defer bmu.Unlock()
	resent := 0
	for id, times := range batches {
		if strings.HasPrefix(id, "-1/") {
			t.Fatalf("batch %s reached the broker without a producer id", id)
		}
		if times > 1 {
			resent++
		}
	}
	if resent == 0 {
		t.Fatalf("no batch reached the broker twice (%d batches): the retries were not exercised", len(batches))
	}
	t.Logf("%d records in %d batches, %d of them received twice by the broker (same producer id, epoch, sequence); %d stored, %d read back once each",
		n, len(batches), resent, len(stored), len(got))
}

// TestTransactionsReadCommitted: a transactional franz-go producer
// commits, aborts and commits again through the proxy. A read_committed
// consumer through the proxy sees the committed records decrypted and
// none of the aborted ones; a read_uncommitted one sees the aborted ones
// too (they were written); the broker holds only ciphertext.
func TestTransactionsReadCommitted(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	cl := kgoClient(t, f.proxy, kgo.TransactionalID("proxy-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	txn := func(prefix string, from, to int, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			v := fmt.Sprintf(`{"id":%d,"name":"%s","card":"4000-%s-%04d"}`, i, prefix, prefix, i)
			recs = append(recs, &kgo.Record{Topic: "orders", Partition: 0, Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("%s: end transaction: %v", prefix, err)
		}
	}
	txn("committed", 0, 10, kgo.TryCommit)
	txn("aborted", 10, 20, kgo.TryAbort)
	txn("committed", 20, 30, kgo.TryCommit)
	last := `{"id":29,"name":"committed","card":"4000-committed-0029"}`

	committed := consumeUntil(t, f.proxy, "orders", kgo.ReadCommitted(), func(r []*kgo.Record) bool { return hasValue(r, last) })
	if len(committed) != 20 {
		t.Fatalf("read_committed through the proxy: %d records, want 20", len(committed))
	}
	for i, r := range committed {
		id := i
		if i >= 10 {
			id = i + 10
		}
		if want := fmt.Sprintf(`{"id":%d,"name":"committed","card":"4000-committed-%04d"}`, id, id); string(r.Value) != want {
			t.Fatalf("read_committed record %d: %s, want %s", i, r.Value, want)
		}
	}
	all := consumeUntil(t, f.proxy, "orders", kgo.ReadUncommitted(), func(r []*kgo.Record) bool { return hasValue(r, last) })
	if len(all) != 30 || !hasValue(all, `{"id":10,"name":"aborted","card":"4000-aborted-0010"}`) {
		t.Fatalf("read_uncommitted through the proxy: %d records, want 30 with the aborted ones", len(all))
	}
	direct := consumeUntil(t, f.gw.Kafka.Settings().Brokers[0], "orders", kgo.ReadUncommitted(), func(r []*kgo.Record) bool { return len(r) >= 30 })
	for _, r := range direct {
		if bytes.Contains(r.Value, []byte("4000-")) || !bytes.Contains(r.Value, []byte(`"card":"vault:v1:`)) {
			t.Fatalf("broker offset %d: not field-encrypted: %s", r.Offset, r.Value)
		}
	}
}

// TestLargeEnvelopeRecord: a 5 MiB record of random bytes produced
// through the proxy to an envelope topic is stored sealed (none of its
// bytes in the clear) and fetched back through the proxy byte for byte,
// although it exceeds the consumer's per-partition fetch size (the first
// batch of an answer is always returned).
func TestLargeEnvelopeRecord(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	value := make([]byte, 5<<20)
	if _, err := rand.Read(value); err != nil {
		t.Fatal(err)
	}
	cl := kgoClient(t, f.proxy, kgo.ProducerBatchMaxBytes(8<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "docs", Partition: 0, Key: []byte("big"), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The broker's view, read with franz-go (no idle limit while its fetch
	// size grows to the record).
	direct := consumeUntil(t, f.gw.Kafka.Settings().Brokers[0], "docs", kgo.ReadUncommitted(), func(r []*kgo.Record) bool { return len(r) >= 1 })
	if len(direct) != 1 {
		t.Fatalf("%d records stored, want 1", len(direct))
	}
	st := record.Record{Topic: "docs", Partition: direct[0].Partition, Offset: direct[0].Offset, Key: direct[0].Key, Value: direct[0].Value}
	for _, h := range direct[0].Headers {
		st.Headers = append(st.Headers, record.Header{Key: h.Key, Value: h.Value})
	}
	if c := f.gw.Engine.Classify(st); c.Err != nil || c.Format != protect.FormatEnvelope {
		t.Fatalf("stored record: format %s, error %v; want envelope", c.Format, c.Err)
	}
	if len(st.Value) <= len(value) {
		t.Fatalf("stored value %d bytes, not sealed (plaintext %d)", len(st.Value), len(value))
	}
	for off := 0; off+64 <= len(value); off += 512 << 10 {
		if bytes.Contains(st.Value, value[off:off+64]) {
			t.Fatalf("plaintext bytes at %d are stored in the clear", off)
		}
	}
	got := consumeUntil(t, f.proxy, "docs", kgo.ReadCommitted(), func(r []*kgo.Record) bool { return len(r) >= 1 },
		kgo.FetchMaxPartitionBytes(1<<20), kgo.FetchMaxBytes(2<<20))
	if len(got) != 1 || !bytes.Equal(got[0].Value, value) || string(got[0].Key) != "big" {
		t.Fatalf("fetched %d records; value equal: %v", len(got), len(got) == 1 && bytes.Equal(got[0].Value, value))
	}
}

// TestVaultFrozenUnderLoadProxy freezes Vault (SIGSTOP) for 4 s while
// producers write through the proxy. Producers without retries see
// NOT_ENOUGH_REPLICAS (retriable); a retrying producer's records all land
// after SIGCONT; the proxy serves again without a restart; every stored
// record is encrypted and every acknowledged one is stored exactly once.
func TestVaultFrozenUnderLoadProxy(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	type outcome struct {
		value string
		err   error
		at    time.Time
	}
	var (
		mu    sync.Mutex
		outs  []outcome
		seq   atomic.Int64
		stop  = make(chan struct{})
		value = func(w string) string {
			i := seq.Add(1)
			return fmt.Sprintf(`{"id":%d,"name":"%s","card":"3700-%06d"}`, i, w, i)
		}
	)
	// Producers that see every error: no retries.
	var once []*kgo.Client
	for range 3 {
		once = append(once, kgoClient(t, f.proxy, kgo.RecordRetries(0), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner())))
	}
	waitOnce := testkit.Repeat(3, stop, func(w int) bool {
		v := value(fmt.Sprint("once-", w))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := once[w].ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: int32(w % 3), Value: []byte(v)}).FirstErr()
		cancel()
		mu.Lock()
		outs = append(outs, outcome{v, err, time.Now()})
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return true
	})
	// A producer with the client's default retries: its records wait out
	// the outage.
	retrying := kgoClient(t, f.proxy, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var retried []string
	var retryErrs atomic.Int32
	var rwg sync.WaitGroup
	time.Sleep(time.Second)
	resume := testkit.PauseVault(t, f.env.Vault)
	pausedAt := time.Now()
	for range 20 {
		v := value("retrying")
		retried = append(retried, v)
		rwg.Add(1)
		retrying.Produce(context.Background(), &kgo.Record{Topic: "orders", Partition: 1, Value: []byte(v)}, func(_ *kgo.Record, err error) {
			defer rwg.Done()
			if err != nil {
				retryErrs.Add(1)
			}
		})
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	resume()
	resumedAt := time.Now()
	time.Sleep(4 * time.Second)
	close(stop)
	waitOnce()
	rwg.Wait()
	if n := retryErrs.Load(); n > 0 {
		t.Fatalf("%d records of the retrying producer failed", n)
	}
	acked := map[string]bool{}
	refused := 0
	var firstOK time.Time
	for _, o := range outs {
		switch {
		case o.err == nil:
			acked[o.value] = true
			if o.at.After(resumedAt) && firstOK.IsZero() {
				firstOK = o.at
			}
		case errors.Is(o.err, kerr.NotEnoughReplicas):
			if !kerr.IsRetriable(o.err) {
				t.Fatalf("%v is not retriable", o.err)
			}
			refused++
		default:
			t.Fatalf("produce %s: unexpected error %v", o.value, o.err)
		}
	}
	for _, v := range retried {
		acked[v] = true
	}
	if refused == 0 {
		t.Fatal("the outage was not observed: no NOT_ENOUGH_REPLICAS")
	}
	if firstOK.IsZero() {
		t.Fatal("no produce succeeded after SIGCONT: the proxy did not recover")
	}
	count := map[string]int{}
	for _, r := range assertStoredEncrypted(t, f, "orders", len(acked), "3700-") {
		count[string(r.Value)]++
	}
	got := consumeUntil(t, f.proxy, "orders", kgo.ReadCommitted(), func(r []*kgo.Record) bool { return len(r) >= len(acked) })
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Fatalf("acknowledged %s read %d times", v, seen[v])
		}
	}
	t.Logf("vault SIGSTOP %v: %d produce calls, %d acknowledged, %d refused with NOT_ENOUGH_REPLICAS; retrying producer's %d records all stored; first success %v after SIGCONT; 0 plaintext stored",
		resumedAt.Sub(pausedAt).Round(100*time.Millisecond), len(outs), len(acked)-len(retried), refused, len(retried), firstOK.Sub(resumedAt).Round(time.Millisecond))
}

// TestBuffersReusedAcrossRequests: one client connection produces
// records from 1 byte to 300 KiB, in shuffled sizes and interleaved with a
// passthrough topic, so consecutive requests and responses on the same
// connection shrink and grow; every value reads back through the proxy
// byte for byte, and the envelope topic holds none of them in clear.
func TestBuffersReusedAcrossRequests(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	sizes := []int{1, 300 << 10, 17, 64 << 10, 2, 1000, 200 << 10, 5, 9000, 128 << 10, 3, 40 << 10}
	want := map[string][]byte{}
	for ci, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression()} {
		cl := kgoClient(t, f.proxy, kgo.ProducerLinger(2*time.Millisecond), kgo.ProducerBatchCompression(codec))
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(sizes))
		for round := range 4 {
			for i, n := range sizes {
				key := fmt.Sprintf("c%d-%d-%d", ci, round, i)
				v := bytes.Repeat([]byte(fmt.Sprintf("secret-%s|", key)), n/len("secret-"+key+"|")+1)[:n]
				topic := "docs"
				if i%3 == 2 {
					topic = "open"
				} else {
					want[key] = v
				}
				wg.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: v}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						errs <- fmt.Errorf("%s: %w", key, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// One fetch response carries every partition's records.
	got := consumeUntil(t, f.proxy, "docs", kgo.ReadUncommitted(), func(rs []*kgo.Record) bool { return len(rs) >= len(want) })
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for _, r := range got {
		if w, ok := want[string(r.Key)]; !ok || !bytes.Equal(r.Value, w) {
			t.Fatalf("record %s: %d bytes read, want %d (%v)", r.Key, len(r.Value), len(w), ok)
		}
	}
	for _, r := range testkit.Stored(t, f.gw.Kafka, "docs") {
		if bytes.Contains(r.Value, []byte("secret-")) {
			t.Fatalf("record %s stored in clear", r.Key)
		}
	}
}
