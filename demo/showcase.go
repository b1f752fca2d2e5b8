// Package demo runs the original demo's three demos end to end on a
// running kafkagate, for `gateway demo` (and `make demo`): demo 1 writes
// fake purchases in plaintext, demo 2 encrypts them into another topic
// with the encryptor bridge and reads them back decrypted, then rotates
// the topic's keys, and demo 3 sends a directory of files encrypted in
// flight and receives them byte for byte; with a Kafka proxy, kcat then
// produces and consumes through it. For each it prints what the
// broker's operator sees next to what the consumer gets.
//
// The demo programs themselves (demo/producer, demo/encryptor, ...) are
// thin main packages over the same library code in demo/internal.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/demo/internal/encrypted"
	"github.com/kafkagate/kafkagate/demo/internal/files"
	"github.com/kafkagate/kafkagate/demo/internal/plaintext"
	"github.com/kafkagate/kafkagate/demo/internal/purchase"
	"github.com/kafkagate/kafkagate/demo/internal/settings"
	"github.com/kafkagate/kafkagate/demo/internal/views"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/gateway"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Options configure a showcase.
type Options struct {
	// Gateway is the running gateway whose configuration, Kafka client
	// and engine the demos use (the bridge shares its engine, so a
	// rotation through it takes effect at once).
	Gateway *gateway.Gateway
	// Count is the number of records of demo 1 (default 5); the rotation
	// adds Count/2+1 more.
	Count int
	// Sleep is the pause between two records of demo 1.
	Sleep time.Duration
	// LargeFileBytes is the size of demo 3's large file (default 5 MiB).
	LargeFileBytes int
	// WorkDir holds demo 3's source and destination directories (created
	// if missing).
	WorkDir string
	// Wait bounds each wait for the bridge or the receiver (default 60 s).
	Wait   time.Duration
	Out    io.Writer
	Logger *slog.Logger
	// Seed makes the fake data repeatable (0: random).
	Seed uint64
	// ProxyAddr is the bootstrap address of the gateway's Kafka proxy;
	// when set, a last step drives kcat through it.
	ProxyAddr string
}

// Result is what the showcase did, for tests.
type Result struct {
	Produced []plaintext.Produced // demo 1 and the records after the rotation
	// Decrypted are the consumer's lines for the encrypted topic, in the
	// order of Produced.
	Decrypted []encrypted.Line
	Rotated   []gateway.Rotated
	// OldAfterRotation is the first encrypted record read again after the
	// rotation.
	OldAfterRotation encrypted.Line
	Sent             []filetransfer.Result
	Received         []filetransfer.Received
	SourceDir        string
	DestinationDir   string
}

// Showcase is a finished showcase whose encryptor keeps running until
// Close, so records produced to the plaintext topic later are encrypted
// too.
type Showcase struct {
	Result
	stop context.CancelFunc
	done chan struct{}
}

// Close stops the encryptor and waits for it.
func (s *Showcase) Close() {
	if s.stop != nil {
		s.stop()
		<-s.done
		s.stop = nil
	}
}

// Run runs demo 1, demo 2 (with a rotation) and demo 3 in that order.
// On success the encryptor bridge keeps running (Close stops it); on
// error everything it started is stopped.
func Run(ctx context.Context, o Options) (*Showcase, error) {
	if o.Gateway == nil {
		return nil, errors.New("demo: no gateway")
	}
	if o.Count <= 0 {
		o.Count = 5
	}
	if o.LargeFileBytes <= 0 {
		o.LargeFileBytes = 5 << 20
	}
	if o.Wait <= 0 {
		o.Wait = 60 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := settings.Read(o.Gateway.Config)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, d: d, gw: o.Gateway, kc: o.Gateway.Kafka, gen: purchase.NewGenerator(o.Seed), w: o.Out}
	s := &Showcase{}
	if err := r.demo1(ctx, &s.Result); err != nil {
		return nil, fmt.Errorf("demo 1: %w", err)
	}
	bctx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	if err := r.demo2(ctx, bctx, s.done, &s.Result); err != nil {
		s.Close()
		return nil, fmt.Errorf("demo 2: %w", err)
	}
	if err := r.rotation(ctx, &s.Result); err != nil {
		s.Close()
		return nil, fmt.Errorf("rotation: %w", err)
	}
	if err := r.demo3(ctx, &s.Result); err != nil {
		s.Close()
		return nil, fmt.Errorf("demo 3: %w", err)
	}
	if o.ProxyAddr != "" {
		if err := r.proxy(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("demo 4 (Kafka proxy): %w", err)
		}
	}
	return s, nil
}

type runner struct {
	o   Options
	d   settings.Demo
	gw  *gateway.Gateway
	kc  *kafka.Client
	gen *purchase.Generator
	w   io.Writer
	// encBefore are the encrypted topic's offsets before demo 2.
	encBefore map[int32]int64
	firstEnc  *kafka.Record
}

func (r *runner) demo1(ctx context.Context, res *Result) error {
	views.Section(r.w, "Demo 1: producer → "+r.d.PlaintextTopic+" in plaintext (no kafkagate)")
	fmt.Fprintf(r.w, "The producer writes %d fake purchases (gofakeit, Luhn-valid cards) straight to Kafka.\n\n", r.o.Count)
	before, err := offsets(r.kc, r.d.PlaintextTopic)
	if err != nil {
		return err
	}
	prod, err := plaintext.Produce(ctx, r.kc, plaintext.ProduceOptions{Topic: r.d.PlaintextTopic, Count: r.o.Count, Sleep: r.o.Sleep, Generator: r.gen})
	if err != nil {
		return err
	}
	res.Produced = append(res.Produced, prod...)
	recs, err := waitRecords(ctx, r.kc, r.d.PlaintextTopic, before, len(prod), r.o.Wait)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		views.Record(r.w, rec, plaintext.NewLine(rec).Value, "")
	}
	fmt.Fprintf(r.w, "\nThe broker's operator reads every name, address and card number: nothing is protected.\n")
	return nil
}

func (r *runner) demo2(ctx, bctx context.Context, done chan struct{}, res *Result) error {
	views.Section(r.w, "Demo 2: encryptor "+r.d.SourceTopic+" → "+r.d.TargetTopic)
	p, ok := r.gw.Config.Policies.For(r.d.TargetTopic)
	if !ok {
		close(done)
		return fmt.Errorf("topic %s has no policy", r.d.TargetTopic)
	}
	fmt.Fprintf(r.w, "The encryptor (kafkagate's bridge) applies [policy:%s]: %s.\n\n", r.d.TargetTopic, describePolicy(p))
	var err error
	if r.encBefore, err = offsets(r.kc, r.d.TargetTopic); err != nil {
		close(done)
		return err
	}
	br, err := encrypted.NewEncryptor(ctx, encrypted.EncryptorOptions{
		Source: r.d.SourceTopic, Target: r.d.TargetTopic, Policies: r.gw.Config.Policies, Engine: r.gw.Engine,
		Kafka: r.kc.Settings(), Logger: r.o.Logger,
	})
	if err != nil {
		close(done)
		return err
	}
	go func() { // owned by the Showcase: ends when Close cancels bctx
		defer close(done)
		if err := br.Run(bctx); err != nil {
			r.o.Logger.Error("encryptor stopped", "error", err)
		}
	}()
	// The bridge copies the whole source topic (it is a new group).
	srcTotal, err := total(r.kc, r.d.SourceTopic)
	if err != nil {
		return err
	}
	recs, err := waitRecords(ctx, r.kc, r.d.TargetTopic, r.encBefore, int(srcTotal), r.o.Wait)
	if err != nil {
		return err
	}
	lines, err := r.show(ctx, recs)
	if err != nil {
		return err
	}
	r.firstEnc = &recs[0]
	res.Decrypted = append(res.Decrypted, orderLike(res.Produced, lines)...)
	fmt.Fprintf(r.w, "\n%d of %d records read back through kafkagate equal what the producer wrote.\n", matches(res.Produced, res.Decrypted), len(res.Produced))
	fmt.Fprintf(r.w, "\nThe operator sees ciphertext (vault:vN:… for transit, a different card-shaped number for FPE);\nthe consumer, with Vault's permission, gets the purchases back.\n")
	return nil
}

// show prints each record's two views and returns the consumer's lines.
func (r *runner) show(ctx context.Context, recs []kafka.Record) ([]encrypted.Line, error) {
	lines, err := encrypted.Decrypt(ctx, r.gw.Engine, recs)
	if err != nil {
		return nil, err
	}
	for i, rec := range recs {
		views.Record(r.w, rec, lines[i].Value, string(lines[i].Status))
	}
	return lines, nil
}

func (r *runner) rotation(ctx context.Context, res *Result) error {
	views.Section(r.w, "Key rotation on "+r.d.TargetTopic)
	rot, err := r.gw.RotateTopicKeys(ctx, r.d.TargetTopic)
	if err != nil {
		return err
	}
	res.Rotated = rot
	for _, k := range rot {
		if k.Kind == "fpe" {
			fmt.Fprintf(r.w, "rotated FPE domain %s: new records use v%d   (gateway keys rotate-fpe %s)\n", k.Domain, k.Version, k.Domain)
		} else {
			fmt.Fprintf(r.w, "rotated transit key %s: new records use v%d   (gateway keys rotate %s)\n", k.Key, k.Version, k.Key)
		}
	}
	n := r.o.Count/2 + 1
	fmt.Fprintf(r.w, "\nThe producer writes %d more purchases; the encryptor encrypts them with the new versions:\n\n", n)
	before, err := offsets(r.kc, r.d.TargetTopic)
	if err != nil {
		return err
	}
	prod, err := plaintext.Produce(ctx, r.kc, plaintext.ProduceOptions{Topic: r.d.PlaintextTopic, Count: n, Sleep: r.o.Sleep, Generator: r.gen})
	if err != nil {
		return err
	}
	recs, err := waitRecords(ctx, r.kc, r.d.TargetTopic, before, n, r.o.Wait)
	if err != nil {
		return err
	}
	lines, err := r.show(ctx, recs)
	if err != nil {
		return err
	}
	res.Decrypted = append(res.Decrypted, orderLike(prod, lines)...)
	res.Produced = append(res.Produced, prod...)
	fmt.Fprintf(r.w, "\n%d of %d records read back through kafkagate equal what the producer wrote.\n", matches(prod, lines), len(prod))
	fmt.Fprintf(r.w, "\nAn old record still decrypts (its ciphertext names its key version):\n\n")
	old, err := r.show(ctx, []kafka.Record{*r.firstEnc})
	if err != nil {
		return err
	}
	res.OldAfterRotation = old[0]
	return nil
}

func (r *runner) demo3(ctx context.Context, res *Result) error {
	views.Section(r.w, "Demo 3: file transfer "+r.d.FileTopic)
	p, ok := r.gw.Config.Policies.For(r.d.FileTopic)
	if !ok || p.Mode != policy.Envelope {
		return fmt.Errorf("topic %s needs an envelope policy", r.d.FileTopic)
	}
	src, dst := filepath.Join(r.o.WorkDir, "source"), filepath.Join(r.o.WorkDir, "destination")
	res.SourceDir, res.DestinationDir = src, dst
	if err := r.makeFiles(src); err != nil {
		return err
	}
	fmt.Fprintf(r.w, "Every regular file of %s goes to Kafka encrypted under a fresh data key (KEK %s),\nin chunks that fit message.max.bytes, and is written back into %s.\n\n", src, p.Envelope.Key, dst)
	before, err := offsets(r.kc, r.d.FileTopic)
	if err != nil {
		return err
	}
	snd, err := files.NewSender(r.kc, r.gw.Transit, r.o.Logger)
	if err != nil {
		return err
	}
	sent, err := files.SendDir(ctx, snd, files.SendOptions{Dir: src, Topic: r.d.FileTopic, KEK: p.Envelope.Key, Out: r.w})
	if err != nil {
		return err
	}
	res.Sent = sent
	var chunks int64
	for _, s := range sent {
		chunks += s.Chunks
	}
	recs, err := waitRecords(ctx, r.kc, r.d.FileTopic, before, int(chunks), r.o.Wait)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.w, "\nWhat the broker's operator sees (the first record of each file; %d records in all):\n", len(recs))
	shown := map[string]bool{}
	for _, rec := range recs {
		id := header(rec, "kafkagate.file")
		if shown[id] {
			continue
		}
		shown[id] = true
		views.Record(r.w, rec, []byte("(one chunk of a file: the receiver reassembles and checks it)"), "")
	}
	fmt.Fprintf(r.w, "\nWhat the consumer gets:\n")
	rctx, cancel := context.WithTimeout(ctx, r.o.Wait)
	defer cancel()
	got, err := files.Receive(rctx, files.ReceiveOptions{
		Dir: dst, Topic: r.d.FileTopic, Group: r.d.ConsumerGroup("consumer-file-transfer"), KEKs: []string{p.Envelope.Key}, AcceptLegacy: p.AcceptLegacy,
		Kafka: r.kc, Transit: r.gw.Transit, QuarantineDir: filepath.Join(r.o.WorkDir, "quarantine"), Once: true, Out: r.w, Logger: r.o.Logger,
	})
	if err != nil {
		return err
	}
	res.Received = got
	same := 0
	for _, s := range sent {
		for _, g := range got {
			if g.Name == s.Name && g.SHA256 == s.SHA256 {
				if sum, err := fileSHA256(g.Path); err == nil && sum == s.SHA256 {
					same++
				}
				break
			}
		}
	}
	fmt.Fprintf(r.w, "\n%d of %d files are byte-identical to their source (SHA-256).\n", same, len(sent))
	if same != len(sent) {
		return fmt.Errorf("%d of %d files arrived intact", same, len(sent))
	}
	return nil
}

// makeFiles writes demo 3's three files: fake purchases as JSON, a note,
// and a large random file.
func (r *runner) makeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("source directory: %w", err)
	}
	var ps []purchase.Purchase
	for range 50 {
		_, p := r.gen.Next()
		ps = append(ps, p)
	}
	js, _ := json.MarshalIndent(ps, "", "  ")
	big := make([]byte, r.o.LargeFileBytes)
	_, _ = rand.Read(big)
	for name, data := range map[string][]byte{
		"purchases.json": js,
		"notes.txt":      []byte("Sent by kafkagate's demo 3: encrypted in flight, checked on arrival.\n"),
		"large.bin":      big,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func describePolicy(p *policy.Policy) string {
	var parts []string
	for _, f := range p.Fields {
		s := f.PathString() + " by " + string(f.Mode)
		switch f.Mode {
		case policy.Transit:
			s += " (key " + p.TransitKey + ")"
		case policy.FPE:
			s += " (format " + f.Options["format"] + ", domain " + f.Options["domain"] + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// matches counts the produced purchases that a decrypted line gives back
// exactly (same key, same value).
func matches(prod []plaintext.Produced, lines []encrypted.Line) int {
	n := 0
	for _, p := range prod {
		for _, l := range lines {
			var got purchase.Purchase
			if l.Key != nil && *l.Key == p.Key && l.Status == protect.StatusDecrypted && json.Unmarshal(l.Value, &got) == nil && got == p.Purchase {
				n++
				break
			}
		}
	}
	return n
}

// orderLike puts the consumer's lines in the order of the produced
// records (matched by record key).
func orderLike(prod []plaintext.Produced, lines []encrypted.Line) []encrypted.Line {
	out := make([]encrypted.Line, 0, len(lines))
	used := make([]bool, len(lines))
	for _, p := range prod {
		for i, l := range lines {
			if !used[i] && l.Key != nil && *l.Key == p.Key {
				out = append(out, l)
				used[i] = true
				break
			}
		}
	}
	for i, l := range lines {
		if !used[i] {
			out = append(out, l)
		}
	}
	return out
}

func header(r kafka.Record, name string) string {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

// offsets returns the next offset of each partition of topic (empty when
// the topic does not exist yet).
func offsets(kc *kafka.Client, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	ok, err := kc.TopicExists(topic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return out, nil
	}
	parts, err := kc.Partitions(topic)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		_, hi, err := kc.Watermarks(topic, p)
		if err != nil {
			return nil, err
		}
		out[p] = hi
	}
	return out, nil
}

// total counts the records of topic.
func total(kc *kafka.Client, topic string) (int64, error) {
	parts, err := kc.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		lo, hi, err := kc.Watermarks(topic, p)
		if err != nil {
			return 0, err
		}
		n += hi - lo
	}
	return n, nil
}

// waitRecords waits until topic holds n records after the offsets in
// before and returns them, oldest first.
func waitRecords(ctx context.Context, kc *kafka.Client, topic string, before map[int32]int64, n int, wait time.Duration) ([]kafka.Record, error) {
	deadline := time.Now().Add(wait)
	for {
		recs, err := readAfter(ctx, kc, topic, before)
		if err != nil && !errors.Is(err, kafka.ErrUnknownTopic) {
			return nil, err
		}
		if len(recs) >= n {
			return recs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s has %d of %d expected records after %s", topic, len(recs), n, wait)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func readAfter(ctx context.Context, kc *kafka.Client, topic string, before map[int32]int64) ([]kafka.Record, error) {
	now, err := offsets(kc, topic)
	if err != nil {
		return nil, err
	}
	var out []kafka.Record
	for p, hi := range now {
		from, ok := before[p]
		if !ok {
			from = kafka.OffsetOldest
		}
		if from == hi {
			continue
		}
		recs, err := kc.Read(ctx, topic, p, from, int(hi-max(from, 0)))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	slices.SortStableFunc(out, func(a, b kafka.Record) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
