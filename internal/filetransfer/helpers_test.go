package filetransfer

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// testEnv is a real Vault dev server and a kfake broker with the keys the
// file transfer needs, and a connected Kafka client.
type testEnv struct {
	*devenv.Env
	settings *kafka.Settings
	kc       *kafka.Client
	keys     *envelope.KMSKeys
	log      *slog.Logger
}

var topicSeq atomic.Int64

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx := context.Background()
	// testkit assembles gateways, which import this package, so these
	// internal tests start the stack through devenv directly.
	env, err := devenv.StartEnv(ctx, devenv.VaultOptions{}, devenv.KafkaOptions{FastGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	if err := env.Transit.EnsureKey(ctx, envelope.DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		t.Fatal(err)
	}
	if err := env.Transit.EnsureKey(ctx, envelope.DefaultLegacyKEK, transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	te := &testEnv{Env: env, keys: envelope.NewKMSKeys(env.Transit), log: testLogger(t)}
	te.settings = te.kafkaSettings(t)
	kc, err := kafka.Dial(te.settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	te.kc = kc
	return te
}

func (te *testEnv) kafkaSettings(t testing.TB) *kafka.Settings {
	s, err := kafka.Configure(map[string]string{"bootstrap.servers": strings.Join(te.Brokers, ","), "message.max.bytes": "8388608"}, te.log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLogger writes warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTopic(prefix string) string {
	return prefix + "-" + time.Now().Format("150405") + "-" + string(rune('a'+topicSeq.Add(1)%26)) + hex.EncodeToString([]byte{byte(topicSeq.Load())})
}

func (te *testEnv) sender(t testing.TB, chunkSize int) *Sender {
	t.Helper()
	s, err := NewSender(SenderOptions{Keys: te.keys, Producer: te.kc, MaxMessageBytes: te.settings.Sarama.Producer.MaxMessageBytes, ChunkSize: chunkSize, Logger: te.log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (te *testEnv) opener(t testing.TB) *envelope.Opener {
	t.Helper()
	op, err := envelope.NewOpener(te.keys, envelope.OpenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}

// outcome is what a receiver run did.
type outcome struct {
	mu          sync.Mutex
	files       []Received
	quarantined []Quarantined
}

func (o *outcome) quarantinedOffsets() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var offs []int64
	for _, q := range o.quarantined {
		offs = append(offs, q.Offsets...)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}

type recvOpts struct {
	group      string
	quarantine Quarantine
	// refuseLegacy receives as a topic whose policy does not set
	// legacy = accept.
	refuseLegacy bool
	timeout      time.Duration
	opener       *envelope.Opener
	maxOpen      int
}

// receiveOnce runs a receiver with Once on topic into dir.
func (te *testEnv) receiveOnce(t testing.TB, topic, dir string, ro recvOpts) *outcome {
	t.Helper()
	out := &outcome{}
	if ro.group == "" {
		ro.group = "g-" + topic
	}
	if ro.quarantine == nil {
		ro.quarantine = &DirQuarantine{Dir: filepath.Join(filepath.Dir(dir), "quarantine")}
	}
	if ro.timeout == 0 {
		ro.timeout = 500 * time.Millisecond
	}
	if ro.opener == nil {
		ro.opener = te.opener(t)
	}
	r, err := NewReceiver(ReceiverOptions{
		Dir: dir, Topic: topic, Group: ro.group, Settings: te.settings, Kafka: te.kc, Opener: ro.opener,
		Quarantine: ro.quarantine, IncompleteTimeout: ro.timeout, MaxOpenFiles: ro.maxOpen, Once: true, Logger: te.log, AcceptLegacy: !ro.refuseLegacy,
		RetryBackoff: 50 * time.Millisecond,
		OnFile: func(r Received) {
			out.mu.Lock()
			out.files = append(out.files, r)
			out.mu.Unlock()
		},
		OnQuarantine: func(q Quarantined) {
			out.mu.Lock()
			out.quarantined = append(out.quarantined, q)
			out.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("receiver: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("receiver did not catch up within 90 s")
	}
	return out
}

// genReader yields n pseudo-random bytes from seed, hashing them as read.
type genReader struct {
	r   io.Reader
	sum hash.Hash
}

func newGen(seed uint64, n int64) *genReader {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	return &genReader{r: io.LimitReader(rand.NewChaCha8(key), n), sum: sha256.New()}
}

func (g *genReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.sum.Write(p[:n])
	return n, err
}

func (g *genReader) hex() string { return hex.EncodeToString(g.sum.Sum(nil)) }

func fileSHA(t testing.TB, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// listFiles returns the names of the regular files in dir, without the
// receiver's hidden state folder.
func listFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() == StateDirName {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// produceRaw produces envelope records as they are (tampering tests).
func (te *testEnv) produceRaw(t testing.TB, recs []envelope.Record, partition int32) {
	t.Helper()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Topic: r.Topic, Partition: partition, Key: r.Key, Value: r.Value, Headers: r.Headers}
	}
	dels, err := te.kc.Produce(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dels {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
}

// encodeChunks encodes data as chunk/1 records with the envelope package.
func (te *testEnv) encodeChunks(t testing.TB, topic, name string, data []byte, chunkSize int) []envelope.Record {
	t.Helper()
	sl, err := envelope.NewSealer(te.keys, envelope.SealerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := sl.NewFileEncoder(context.Background(), topic, name, bytes.NewReader(data), envelope.FileOptions{ChunkSize: chunkSize})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out []envelope.Record
	for {
		rec, err := enc.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

// records counts the records of topic (sum of the partitions' extents).
func (te *testEnv) records(t testing.TB, topic string) int64 {
	t.Helper()
	ps, err := te.kc.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range ps {
		lo, hi, err := te.kc.Watermarks(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		n += hi - lo
	}
	return n
}

// randomData returns n random bytes.
func randomData(n int) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}
