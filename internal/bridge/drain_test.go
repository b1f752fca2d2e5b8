package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/bridge"
)

// procFixture prepares topics plain (3 partitions), enc and enc.dlq, an
// ini with the given [encryptor] group timing, and the built binary.
func procFixture(t *testing.T, encryptor string, extra ...string) (*fixture, *bridgeProcs) {
	t.Helper()
	bin := buildGateway(t)
	f := setup(t, 10*time.Second, nil)
	f.createTopic("plain", 3)
	f.createTopic("enc", 3)
	f.createTopic("enc.dlq", 1)
	conf := filepath.Join(t.TempDir(), "bridge.ini")
	ini := fmt.Sprintf("[default]\nbootstrap.servers = %s\n\n[encryptor]\nsourcetopic = plain\ntargettopic = enc\n%s\n[policy:enc]\nfields = Name transit, Address transit\n",
		f.env.Brokers[0], encryptor)
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--config", conf, "--log-level", "info", "bridge", "--batch", "100", "--stats-interval", "500ms"}, extra...)
	return f, newBridgeProcs(t, f, bin, args)
}

func (f *fixture) total(topic string) int64 {
	var n int64
	for _, e := range f.ends(topic) {
		n += e
	}
	return n
}

// producing starts produceUntil on plain; stop ends it and returns how
// many records were acknowledged.
func (f *fixture) producing(t *testing.T) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan int, 1)
	var err error
	go func() { // owned by the test: ends when stop cancels ctx
		n, perr := produceUntil(ctx, f.cl, "plain")
		err = perr
		sent <- n
	}()
	stopped := false
	var n int
	stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			n = <-sent
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
		}
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// sigterm stops c with SIGTERM and fails t unless it exits 0 and logs its
// final counts.
func sigterm(t *testing.T, c *child) time.Duration {
	t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the bridge did not exit within 60 s of SIGTERM")
	}
	if c.err != nil {
		t.Fatalf("bridge after SIGTERM: %v, want exit 0", c.err)
	}
	if !bytes.Contains([]byte(c.logs.String()), []byte("bridge stopped")) {
		t.Fatal("the bridge did not log its final counts")
	}
	return time.Since(start)
}

// check reads the target (at-least-once: no transactions) page by page
// to its high watermark: no plaintext, no dead letter, no record of
// 0..n-1 lost; it returns the duplicates.
func (f *fixture) check(t *testing.T, n int) (targets, dups int) {
	t.Helper()
	msgs := f.readWhole("enc")
	if dlq := f.readAll("enc.dlq"); len(dlq) != 0 {
		t.Fatalf("%d dead letters, want 0", len(dlq))
	}
	ids := targetIDs(t, msgs) // fatal on plaintext
	return len(msgs), lossAndDups(t, ids, n, nil)
}

// TestBuiltBridgeSIGTERMMidStream: the built bridge gets SIGTERM three
// times in the middle of a steady stream; each time it finishes the batch
// in flight, commits and exits 0. A last bridge catches up. Nothing is
// lost, no plaintext is written, and a clean stop leaves no duplicate
// (each restart resumes from the committed offsets).
func TestBuiltBridgeSIGTERMMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: three bridge processes stopped by SIGTERM (-short skips it)")
	}
	f, procs := procFixture(t, "session.timeout.ms = 1000\nheartbeat.interval.ms = 100\n")
	stop := f.producing(t)
	var stops []time.Duration
	for k := 0; k < 3; k++ {
		c := procs.start()
		base := f.total("enc")
		waitProgress(t, c, func() bool { return f.total("enc") >= base+200 })
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		stops = append(stops, sigterm(t, c).Round(time.Millisecond))
	}
	n := stop()
	last := procs.start()
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 180*time.Second)
	sigterm(t, last)
	targets, dups := f.check(t, n)
	suspected, _ := procs.reported()
	t.Logf("SIGTERM x3 mid-stream: records sent %d, target records %d, lost 0, duplicates %d (bridges reported %d suspected), plaintext 0; each bridge exited 0, %v after SIGTERM",
		n, targets, dups, suspected, stops)
	if dups != 0 {
		t.Errorf("%d duplicates after clean stops, want 0 (a SIGTERM must commit what was written)", dups)
	}
}

// TestBuiltBridgeStaticMembershipTakeover: a bridge with --instance-id and
// a 20 s session timeout is killed with SIGKILL mid-stream; a new bridge
// with the same id takes its partitions over without waiting for the
// session to expire. The same run without --instance-id shows the wait a
// dynamic member has (both times are printed, next to the session
// timeout; neither is asserted). Nothing is lost; duplicates are counted.
func TestBuiltBridgeStaticMembershipTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: a bridge killed and replaced (-short skips it)")
	}
	t.Run("static", func(t *testing.T) { takeover(t, "bridge-0") })
	t.Run("dynamic", func(t *testing.T) { takeover(t, "") })
}

func takeover(t *testing.T, instanceID string) {
	const session = 20 * time.Second
	extra := []string{"--session-timeout", session.String()}
	if instanceID != "" {
		extra = append(extra, "--instance-id", instanceID)
	}
	f, procs := procFixture(t, "heartbeat.interval.ms = 500\n", extra...)
	stop := f.producing(t)
	first := procs.start()
	base := f.total("enc")
	waitProgress(t, first, func() bool { return f.total("enc") >= base+300 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	atKill := f.total("enc")

	second := procs.start()
	started := time.Now()
	waitProgress(t, second, func() bool { return f.total("enc") >= atKill+100 })
	took := time.Since(started)
	n := stop()
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 180*time.Second)
	sigterm(t, second)
	targets, dups := f.check(t, n)
	suspected, _ := procs.reported()
	t.Logf("instance id %q: after SIGKILL the next bridge wrote its first 100 records %v after it started (session timeout %v); records sent %d, target records %d, lost 0, duplicates %d (reported %d suspected), plaintext 0",
		instanceID, took.Round(time.Millisecond), session, n, targets, dups, suspected)
	if dups > suspected {
		t.Errorf("%d duplicates, but the restarted bridge reported only %d suspected", dups, suspected)
	}
}
