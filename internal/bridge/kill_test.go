package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestKillNineFiveTimes: the `gateway bridge` process is killed
// with SIGKILL five times while a producer keeps writing to the source
// topic, then runs to the end and is stopped with SIGTERM. Every source
// record must be in the target (lost 0), encrypted (plaintext 0);
// at-least-once duplicates are counted, and bounded by what the restarted
// bridges reported as suspected.
func TestKillNineFiveTimes(t *testing.T) { killNine(t, false) }

// TestKillNineFiveTimesExactlyOnce is TestKillNineFiveTimes with
// --exactly-once: a read_committed reader sees no duplicate.
func TestKillNineFiveTimesExactlyOnce(t *testing.T) { killNine(t, true) }

const kills = 5

// bridgeProcs runs `gateway bridge` processes (bin with args, against
// f's Vault) for a test: each is killed when the test ends, and when the
// test failed the tail of each one's log is printed.
type bridgeProcs struct {
	t        *testing.T
	bin      string
	args     []string
	env      []string
	children []*child
}

func newBridgeProcs(t *testing.T, f *fixture, bin string, args []string) *bridgeProcs {
	p := &bridgeProcs{t: t, bin: bin, args: args,
		env: append(os.Environ(), "VAULT_ADDR="+f.env.Vault.Addr, "VAULT_TOKEN="+f.env.Vault.Token, "VAULT_NAMESPACE=", "VAULT_CACERT=")}
	t.Cleanup(func() {
		if t.Failed() {
			for i, c := range p.children {
				s := c.logs.String()
				if len(s) > 8000 {
					s = "…" + s[len(s)-8000:]
				}
				t.Logf("bridge process %d log:\n%s", i+1, s)
			}
		}
	})
	return p
}

// start starts one more bridge process.
func (p *bridgeProcs) start() *child {
	t := p.t
	t.Helper()
	c := &child{cmd: exec.Command(p.bin, p.args...), logs: &testkit.SyncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = p.env
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process exits
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	p.children = append(p.children, c)
	return c
}

// reported sums what the processes logged: records suspected of being
// duplicates after an unclean stop, and fencings of abandoned
// transactions.
func (p *bridgeProcs) reported() (suspected, fences int) {
	for _, c := range p.children {
		fences += strings.Count(c.logs.String(), "fenced the transactional ids")
		for _, m := range suspectedLine.FindAllStringSubmatch(c.logs.String(), -1) {
			s, _ := strconv.Atoi(m[1])
			suspected += s
		}
	}
	return suspected, fences
}

// suspectedLine is a restarted bridge's report of records an unclean stop
// may have written twice.
var suspectedLine = regexp.MustCompile(`resuming after an unclean stop.* suspected=(\d+)`)

// child is one `gateway bridge` process.
type child struct {
	cmd  *exec.Cmd
	logs *testkit.SyncBuffer
	done chan struct{} // closed when the process has exited
	err  error
}

func killNine(t *testing.T, exactlyOnce bool) {
	if testing.Short() {
		t.Skip("fault test: five bridge processes killed (-short skips it)")
	}
	var extra []string
	if exactlyOnce {
		extra = append(extra, "--exactly-once")
	}
	f, procs := procFixture(t, "session.timeout.ms = 1000\nheartbeat.interval.ms = 100\n", extra...)
	start := procs.start
	total := f.total

	// The producer writes records 0, 1, 2, ... until stopped.
	stopProducer := f.producing(t)

	// Five times: start a bridge, let it write at least 200 records, then
	// SIGKILL it at a random moment of the stream.
	var atKill []int64
	var toProgress []time.Duration // from a start to 200 records written
	for k := 0; k < kills; k++ {
		c := start()
		started := time.Now()
		base := total("enc")
		waitProgress(t, c, func() bool { return total("enc") >= base+200 })
		toProgress = append(toProgress, time.Since(started).Round(time.Millisecond))
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.done
		ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("bridge process %d: %v, want killed by SIGKILL", k+1, c.err)
		}
		atKill = append(atKill, total("enc"))
	}
	n := stopProducer()

	// A sixth bridge catches up; SIGTERM then stops it cleanly (exit 0).
	last := start()
	caughtUp := time.Now()
	group := bridge.DefaultGroup("enc")
	f.waitCommitted(group, "plain", 180*time.Second)
	took := time.Since(caughtUp)
	sigterm(t, last)
	f.waitCommitted(group, "plain", 5*time.Second) // still at the ends after the stop

	msgs := f.readAll("enc")
	leaked := 0
	for _, m := range msgs {
		if bytes.Contains(m.Value, []byte(marker)) || bytes.Contains(m.Key, []byte(marker)) {
			leaked++
		}
		for _, h := range m.Headers {
			if bytes.Contains(h.Value, []byte(marker)) {
				leaked++
			}
		}
	}
	dlq := f.readAll("enc.dlq")
	if leaked != 0 || len(dlq) != 0 {
		t.Fatalf("%d target records with plaintext, %d dead letters (want 0 and 0)", leaked, len(dlq))
	}
	ids := targetIDs(t, msgs)           // every record encrypted, headers intact
	dups := lossAndDups(t, ids, n, nil) // fatal on any loss
	suspected, fences := procs.reported()
	mode := "at-least-once"
	if exactlyOnce {
		// Records of the transactions the kills interrupted stay in the
		// log, aborted: a read_uncommitted reader sees them.
		aborted := len(testkit.ReadAllAs(t, f.env.Brokers, "enc", sarama.ReadUncommitted)) - len(msgs)
		mode = fmt.Sprintf("exactly-once (%d records in aborted transactions, hidden from read_committed)", aborted)
		if dups != 0 {
			t.Fatalf("exactly-once: %d duplicates seen by a read_committed reader", dups)
		}
	} else if dups > suspected {
		t.Fatalf("%d duplicates, but the restarted bridges reported only %d suspected", dups, suspected)
	}
	t.Logf("%s, kill -9 x%d: records sent %d, target records %d, lost 0, duplicates %d (bridges reported %d suspected), plaintext leaked 0, dead letters 0; abandoned transactions fenced %d times; target high watermark at each kill %v; each restarted bridge wrote its first 200 records after %v; last bridge caught up in %v and exited 0 on SIGTERM",
		mode, kills, n, len(msgs), dups, suspected, fences, atKill, toProgress, took.Round(time.Millisecond))
}

// waitProgress waits for cond while the bridge process runs.
func waitProgress(t *testing.T, c *child, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		select {
		case <-c.done:
			t.Fatalf("the bridge exited on its own: %v", c.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge wrote nothing within 90 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// produceUntil writes goodValue(i) records (key k-<i>, header trace) to
// topic in batches of 20, about 1,000 a second, until ctx ends; it returns
// how many were acknowledged.
func produceUntil(ctx context.Context, cl sarama.Client, topic string) (int, error) {
	p, err := sarama.NewSyncProducerFromClient(cl)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	n := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, nil
		case <-tick.C:
		}
		msgs := make([]*sarama.ProducerMessage, 20)
		for j := range msgs {
			i := n + j
			msgs[j] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k-%d", i)),
				Value: sarama.ByteEncoder(goodValue(i)), Timestamp: baseTime.Add(time.Duration(i) * time.Millisecond),
				Headers: []sarama.RecordHeader{{Key: []byte("trace"), Value: fmt.Appendf(nil, "t-%d", i)}}}
		}
		if err := p.SendMessages(msgs); err != nil {
			return n, fmt.Errorf("records %d..%d: %w", n, n+len(msgs)-1, err)
		}
		n += len(msgs)
	}
}

// buildGateway builds the gateway command into a temporary directory: the
// fault test kills the real program, not a goroutine.
func buildGateway(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/kafkagate/kafkagate/cmd/gateway").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/gateway: %v\n%s", err, out)
	}
	return bin
}
