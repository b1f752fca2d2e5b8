package filetransfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// rssChildEnv makes the test binary act as the sender or receiver of
// BenchmarkFileRSS (see TestMain) instead of running tests.
const rssChildEnv = "FILETRANSFER_RSS_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(rssChildEnv); role != "" {
		os.Exit(rssChild(role))
	}
	os.Exit(m.Run())
}

// BenchmarkFileRSS sends and receives 256 MiB and 1 GiB files through
// Kafka, each side in a child process of its own, and reports each child's
// peak resident memory (VmHWM). The broker (kfake, which keeps the log in
// memory) and Vault run in the parent, so they are not counted. Run:
//
//	go test -run '^$' -bench FileRSS -benchtime 1x ./filetransfer/
//
// FILETRANSFER_RSS_SIZES (MiB, comma-separated) overrides the sizes.
// Build without -race: the race detector's shadow memory would be counted.
func BenchmarkFileRSS(b *testing.B) {
	sizes := []int64{256, 1024}
	if v := os.Getenv("FILETRANSFER_RSS_SIZES"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	te := newTestEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, mib := range sizes {
			topic := fmt.Sprintf("rss-%d-%d", mib, i)
			dir := filepath.Join(b.TempDir(), "in")
			env := []string{
				"VAULT_ADDR=" + te.Vault.Addr, "VAULT_TOKEN=" + te.Vault.Token,
				"RSS_BROKERS=" + strings.Join(te.Brokers, ","), "RSS_TOPIC=" + topic,
				"RSS_SIZE=" + strconv.FormatInt(mib<<20, 10), "RSS_DIR=" + dir,
			}
			start := time.Now()
			send := runRSSChild(b, "send", env)
			sendTime := time.Since(start)
			start = time.Now()
			recv := runRSSChild(b, "receive", env)
			recvTime := time.Since(start)
			if send["sha256"] != recv["sha256"] || send["sha256"] == "" {
				b.Fatalf("%d MiB: sent sha256 %s, received %s", mib, send["sha256"], recv["sha256"])
			}
			if recv["disk_sha256"] != send["sha256"] {
				b.Fatalf("%d MiB: the received file on disk has sha256 %s, sent %s", mib, recv["disk_sha256"], send["sha256"])
			}
			line := fmt.Sprintf("file %5d MiB: sender peak RSS %s MiB (%.1fs, %.0f MiB/s), receiver peak RSS %s MiB (%.1fs, %.0f MiB/s), sha256 equal (file on disk re-hashed)",
				mib, send["vmhwm_mib"], sendTime.Seconds(), float64(mib)/sendTime.Seconds(), recv["vmhwm_mib"], recvTime.Seconds(), float64(mib)/recvTime.Seconds())
			fmt.Println(line)
			b.Log(line)
			os.RemoveAll(dir)
		}
	}
}

// runRSSChild runs this test binary as a child in role and parses its
// "key=value" result line.
func runRSSChild(b *testing.B, role string, env []string) map[string]string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, rssChildEnv+"="+role)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s child: %v\n%s", role, err, stderr.String())
	}
	res := map[string]string{}
	for _, f := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			res[k] = v
		}
	}
	return res
}

// rssChild sends or receives one file and prints sha256= and vmhwm_mib=.
func rssChild(role string) int {
	if err := rssChildRun(role); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

func rssChildRun(role string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	size, err := strconv.ParseInt(os.Getenv("RSS_SIZE"), 10, 64)
	if err != nil {
		return err
	}
	topic := os.Getenv("RSS_TOPIC")
	settings, err := kafka.Configure(map[string]string{"bootstrap.servers": os.Getenv("RSS_BROKERS"), "message.max.bytes": "8388608"}, log)
	if err != nil {
		return err
	}
	kc, err := kafka.Dial(settings)
	if err != nil {
		return err
	}
	defer kc.Close()
	vc, err := vaultclient.New(vaultclient.FromEnv())
	if err != nil {
		return err
	}
	keys := envelope.NewKMSKeys(transit.New(vc, transit.Options{}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var sum, path string
	switch role {
	case "send":
		s, err := NewSender(SenderOptions{Keys: keys, Producer: kc, MaxMessageBytes: settings.Sarama.Producer.MaxMessageBytes, Logger: log})
		if err != nil {
			return err
		}
		g := newGen(42, size)
		res, err := s.Send(ctx, File{Topic: topic, Name: "big.bin", Body: g})
		if err != nil {
			return err
		}
		if res.SHA256 != g.hex() || res.Size != size {
			return fmt.Errorf("sent %d bytes, sha %s; generated %s", res.Size, res.SHA256, g.hex())
		}
		sum = res.SHA256
	case "receive":
		op, err := envelope.NewOpener(keys, envelope.OpenerOptions{})
		if err != nil {
			return err
		}
		var got []Received
		r, err := NewReceiver(ReceiverOptions{Dir: os.Getenv("RSS_DIR"), Topic: topic, Group: "rss", Settings: settings, Kafka: kc, Opener: op,
			Quarantine: &DirQuarantine{Dir: filepath.Join(os.Getenv("RSS_DIR"), "..", "q")}, Once: true, Logger: log,
			OnFile: func(rc Received) { got = append(got, rc) }})
		if err != nil {
			return err
		}
		if err := r.Run(ctx); err != nil {
			return err
		}
		if len(got) != 1 || got[0].Size != size {
			return fmt.Errorf("received %+v", got)
		}
		sum, path = got[0].SHA256, got[0].Path
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	fmt.Printf("sha256=%s vmhwm_mib=%.1f\n", sum, float64(hwm)/1024)
	if path != "" { // after VmHWM was read: hash the file written, as a check
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Printf("disk_sha256=%s\n", hex.EncodeToString(h.Sum(nil)))
	}
	return nil
}

// vmHWM is the process's peak resident set size in KiB.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, io.ErrUnexpectedEOF
}
