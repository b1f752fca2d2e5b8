package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// fileResult is one file size sent and received encrypted (filetransfer:
// chunk/1 records, one Vault data key per file) and the same bytes
// produced and consumed in plain 512 KiB records, each of the four sides
// in a child process that reports its own peak RSS (VmHWM).
type fileResult struct {
	Size         int64   `json:"size"`
	EncMBps      float64 `json:"encrypted_mb_per_sec"` // size / (send + receive time)
	PlainMBps    float64 `json:"plain_mb_per_sec"`
	SendSec      float64 `json:"send_sec"`
	ReceiveSec   float64 `json:"receive_sec"`
	ProduceSec   float64 `json:"plain_produce_sec"`
	ConsumeSec   float64 `json:"plain_consume_sec"`
	SendRSS      float64 `json:"send_rss_mib"`
	ReceiveRSS   float64 `json:"receive_rss_mib"`
	ProduceRSS   float64 `json:"plain_produce_rss_mib"`
	ConsumeRSS   float64 `json:"plain_consume_rss_mib"`
	SHA256Agreed bool    `json:"sha256_agreed"`
}

// ChildEnv, when set, makes the bench executable act as one side of the
// files section (RunChild) instead of running the bench.
const ChildEnv = "KAFKAGATE_BENCH_CHILD"

// childSpec is what the parent passes to a child, as JSON in ChildEnv.
type childSpec struct {
	Role    string   `json:"role"` // send, receive, produce, consume
	Brokers []string `json:"brokers"`
	Vault   string   `json:"vault"`
	Token   string   `json:"token"`
	Topic   string   `json:"topic"`
	Size    int64    `json:"size"`
	Dir     string   `json:"dir"`
}

// childOut is the child's one line of output.
type childOut struct {
	Bytes   int64   `json:"bytes"`
	SHA256  string  `json:"sha256"`
	Seconds float64 `json:"seconds"`
	// PeakRSSKiB is the child's VmHWM: the peak resident set of its own
	// address space. (getrusage's maxrss is no use here: Linux carries the
	// high-water mark of the forking parent's address space across exec.)
	PeakRSSKiB int64 `json:"peak_rss_kib"`
}

// plainChunk is the record size of the plain comparison: the sender's
// chunk size.
const plainChunk = envelope.DefaultChunkSize

func (e *env) fileTransfer(ctx context.Context) ([]fileResult, error) {
	if err := e.transit().EnsureKey(ctx, envelope.DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		return nil, err
	}
	self, err := e.cfg.self()
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	var out []fileResult
	for i, size := range e.cfg.FileSizes {
		dir, err := os.MkdirTemp(e.cfg.TmpDir, "kafkagate-bench-files-")
		if err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		r, err := e.oneFile(ctx, self, dir, size, i)
		_ = os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (e *env) oneFile(ctx context.Context, self, dir string, size int64, i int) (*fileResult, error) {
	enc, plain := fmt.Sprintf("bench-files-%d", i), fmt.Sprintf("bench-files-plain-%d", i)
	spec := childSpec{Brokers: e.brokers, Vault: e.vault.Addr, Token: e.vault.Token, Size: size}
	run := func(role, topic, sub string) (childOut, float64, error) {
		s := spec
		s.Role, s.Topic, s.Dir = role, topic, filepath.Join(dir, sub)
		return runChild(ctx, self, s)
	}
	r := &fileResult{Size: size}
	var send, recv, prod, cons childOut
	// Each child runs in turn: send and receive encrypted, then produce and
	// consume plain.
	for _, c := range []struct {
		role, topic, sub string
		out              *childOut
		sec, rss         *float64
	}{
		{"send", enc, "", &send, &r.SendSec, &r.SendRSS},
		{"receive", enc, "enc", &recv, &r.ReceiveSec, &r.ReceiveRSS},
		{"produce", plain, "", &prod, &r.ProduceSec, &r.ProduceRSS},
		{"consume", plain, "plain", &cons, &r.ConsumeSec, &r.ConsumeRSS},
	} {
		var err error
		if *c.out, *c.rss, err = run(c.role, c.topic, c.sub); err != nil {
			return nil, err
		}
		*c.sec = c.out.Seconds
	}
	mb := float64(size) / 1e6
	r.EncMBps, r.PlainMBps = mb/(r.SendSec+r.ReceiveSec), mb/(r.ProduceSec+r.ConsumeSec)
	r.SHA256Agreed = send.SHA256 == recv.SHA256 && recv.SHA256 == prod.SHA256 && prod.SHA256 == cons.SHA256 &&
		recv.Bytes == size && cons.Bytes == size
	if !r.SHA256Agreed {
		return nil, fmt.Errorf("files %d bytes: digests or sizes differ: send %+v receive %+v produce %+v consume %+v", size, send, recv, prod, cons)
	}
	e.deleteTopics(enc, plain) // kfake keeps logs in memory
	e.progress("files %d MiB: encrypted %.0f MB/s (send %.1fs, receive %.1fs, RSS %.0f/%.0f MiB), plain %.0f MB/s (RSS %.0f/%.0f MiB)",
		size>>20, r.EncMBps, r.SendSec, r.ReceiveSec, r.SendRSS, r.ReceiveRSS, r.PlainMBps, r.ProduceRSS, r.ConsumeRSS)
	return r, nil
}

func (e *env) deleteTopics(topics ...string) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(e.brokers, cfg)
	if err != nil {
		return
	}
	defer admin.Close()
	for _, t := range topics {
		_ = admin.DeleteTopic(t)
	}
}

// runChild runs self as one side and returns its output and peak RSS in MiB.
func runChild(ctx context.Context, self string, s childSpec) (childOut, float64, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return childOut{}, 0, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(b))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return childOut{}, 0, fmt.Errorf("files: %s child: %w: %s", s.Role, err, strings.TrimSpace(stderr.String()))
	}
	var out childOut
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return childOut{}, 0, fmt.Errorf("files: %s child output %q: %w", s.Role, stdout.String(), err)
	}
	if out.PeakRSSKiB <= 0 {
		return childOut{}, 0, fmt.Errorf("files: %s child reported no peak RSS", s.Role)
	}
	return out, float64(out.PeakRSSKiB) / 1024, nil
}

// RunChild is the child side of the files section, run when ChildEnv is
// set: it prints one JSON line and returns the exit code.
func RunChild(ctx context.Context) int {
	var s childSpec
	if err := json.Unmarshal([]byte(os.Getenv(ChildEnv)), &s); err != nil {
		fmt.Fprintf(os.Stderr, "bench child: %s: %v\n", ChildEnv, err)
		return 2
	}
	out, err := s.run(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", s.Role, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 1
	}
	return 0
}

func (s childSpec) run(ctx context.Context) (childOut, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ks, err := kafka.Configure(map[string]string{"bootstrap.servers": strings.Join(s.Brokers, ","), "message.max.bytes": strconv.Itoa(8 << 20)}, log)
	if err != nil {
		return childOut{}, err
	}
	kc, err := kafka.Dial(ks)
	if err != nil {
		return childOut{}, err
	}
	defer kc.Close()
	vc, err := vaultclient.New(vaultclient.Config{Addr: s.Vault, Token: s.Token, Timeout: time.Minute, Logger: log})
	if err != nil {
		return childOut{}, err
	}
	defer vc.Close()
	keys := envelope.NewKMSKeys(transit.New(vc, transit.Options{}))
	start := time.Now()
	var out childOut
	switch s.Role {
	case "send":
		snd, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: keys, Producer: kc, MaxMessageBytes: ks.MaxMessageBytes(), Logger: log})
		if err != nil {
			return out, err
		}
		res, err := snd.Send(ctx, filetransfer.File{Topic: s.Topic, Name: "bench.bin", Body: newGen(s.Size), Size: s.Size})
		if err != nil {
			return out, err
		}
		out.Bytes, out.SHA256 = res.Size, res.SHA256
	case "receive":
		op, err := envelope.NewOpener(keys, envelope.OpenerOptions{})
		if err != nil {
			return out, err
		}
		var got []filetransfer.Received
		r, err := filetransfer.NewReceiver(filetransfer.ReceiverOptions{Dir: s.Dir, Topic: s.Topic, Group: "bench-files", Settings: ks, Kafka: kc, Opener: op,
			Quarantine: &filetransfer.DirQuarantine{Dir: s.Dir + ".quarantine"}, Once: true, Logger: log,
			OnFile: func(rc filetransfer.Received) { got = append(got, rc) }})
		if err != nil {
			return out, err
		}
		if err := r.Run(ctx); err != nil {
			return out, err
		}
		if len(got) != 1 {
			return out, fmt.Errorf("received %d files, want 1", len(got))
		}
		out.Bytes, out.SHA256 = got[0].Size, got[0].SHA256
	case "produce":
		out, err = plainProduce(ctx, kc, s.Topic, s.Size)
		if err != nil {
			return out, err
		}
	case "consume":
		out, err = plainConsume(kc, ks, s.Topic, s.Dir)
		if err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("unknown role %q", s.Role)
	}
	out.Seconds = time.Since(start).Seconds()
	out.PeakRSSKiB, err = vmHWM()
	return out, err
}

// vmHWM is this process's peak resident set size in KiB (Linux).
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/self/status")
}

// plainProduce produces size generated bytes to partition 0 of topic in
// plainChunk records, filetransfer.DefaultBatchBytes per produce call:
// what the sender does, without encryption.
func plainProduce(ctx context.Context, kc *kafka.Client, topic string, size int64) (childOut, error) {
	g := newGen(size)
	h := sha256.New()
	var n int64
	per := filetransfer.DefaultBatchBytes / plainChunk
	for {
		msgs := make([]kafka.Message, 0, per)
		for range per {
			buf := make([]byte, plainChunk)
			k, err := io.ReadFull(g, buf)
			if k > 0 {
				h.Write(buf[:k])
				n += int64(k)
				msgs = append(msgs, kafka.Message{Topic: topic, Partition: 0, Value: buf[:k]})
			}
			if err != nil {
				break
			}
		}
		if len(msgs) == 0 {
			break
		}
		dels, err := kc.Produce(ctx, msgs)
		if err != nil {
			return childOut{}, err
		}
		for _, d := range dels {
			if d.Err != nil {
				return childOut{}, d.Err
			}
		}
	}
	return childOut{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// plainConsume reads partition 0 of topic up to its high watermark into a
// file in dir, with the receiver's fetch settings.
func plainConsume(kc *kafka.Client, ks *kafka.Settings, topic, dir string) (childOut, error) {
	_, hw, err := kc.Watermarks(topic, 0)
	if err != nil {
		return childOut{}, err
	}
	cfg := *ks.Sarama
	cfg.ChannelBufferSize = 2
	cfg.Consumer.Fetch.Default = 1 << 20
	cfg.Consumer.Fetch.Max = 0
	c, err := sarama.NewConsumer(ks.Brokers, &cfg)
	if err != nil {
		return childOut{}, fmt.Errorf("plain consumer: %w", err)
	}
	defer c.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return childOut{}, err
	}
	f, err := os.Create(filepath.Join(dir, "plain.bin"))
	if err != nil {
		return childOut{}, err
	}
	defer f.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return childOut{}, fmt.Errorf("plain consumer: %w", err)
	}
	defer pc.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	var n int64
	for off := int64(-1); off+1 < hw; {
		var m *sarama.ConsumerMessage
		select {
		case m = <-pc.Messages():
		case cerr := <-pc.Errors():
			return childOut{}, fmt.Errorf("plain consumer: %w", cerr)
		}
		if _, err := w.Write(m.Value); err != nil {
			return childOut{}, err
		}
		n += int64(len(m.Value))
		off = m.Offset
	}
	if err := f.Sync(); err != nil {
		return childOut{}, err
	}
	return childOut{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// gen is a reader of size deterministic pseudo-random bytes.
type gen struct {
	r    *rand.ChaCha8
	left int64
}

func newGen(size int64) *gen {
	return &gen{r: rand.NewChaCha8([32]byte{'k', 'a', 'f', 'k', 'a', 'g', 'a', 't', 'e'}), left: size}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.r.Read(p)
	g.left -= int64(n)
	return n, nil
}
