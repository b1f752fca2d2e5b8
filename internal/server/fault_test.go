package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const faultConfig = `
[default]
message.max.bytes = 1048576

[policy:load]
fields = secret transit
`

type outcome struct {
	id        int
	status    int
	partition int32
	offset    int64
	retry     string
	at        time.Time
}

// loadRun posts records with unique ids from several clients until
// finish; lastOK holds the time (UnixNano) of the latest 200.
type loadRun struct {
	lastOK atomic.Int64
	stop   chan struct{}
	wait   func()
	mu     sync.Mutex
	outs   []outcome
}

// startLoad starts n clients posting to url.
func startLoad(url string, n int) *loadRun {
	l := &loadRun{stop: make(chan struct{})}
	var next atomic.Int64
	client := &http.Client{Timeout: 20 * time.Second}
	l.wait = testkit.Repeat(n, l.stop, func(int) bool {
		id := int(next.Add(1))
		body := fmt.Sprintf(`{"value":{"type":"JSON","data":{"id":%d,"secret":"plaintext-%d"}}}`, id, id)
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		o := outcome{id: id, at: time.Now()}
		if err != nil {
			o.status = -1
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			o.status, o.retry = resp.StatusCode, resp.Header.Get("Retry-After")
			if resp.StatusCode == 200 {
				var pr struct {
					PartitionID int32 `json:"partition_id"`
					Offset      int64 `json:"offset"`
				}
				_ = json.Unmarshal(b, &pr)
				o.partition, o.offset = pr.PartitionID, pr.Offset
				l.lastOK.Store(o.at.UnixNano())
			}
		}
		l.mu.Lock()
		l.outs = append(l.outs, o)
		l.mu.Unlock()
		if o.status != 200 {
			time.Sleep(20 * time.Millisecond)
		}
		return true
	})
	return l
}

// finish stops the clients and returns every request's outcome.
func (l *loadRun) finish() []outcome {
	close(l.stop)
	l.wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outs
}

func newLoadGateway(t *testing.T, env *testkit.Env) *fixture {
	t.Helper()
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	cfg := testkit.Config(t, faultConfig)
	return serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, time.Second),
		Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

// verifyTopic checks every 2xx outcome is in the topic with its id, that
// the topic has no record without a 2xx (none unacknowledged yet answered
// ok), and that no plaintext reached Kafka.
func verifyTopic(t *testing.T, f *fixture, outs []outcome) (ok, refused int) {
	t.Helper()
	recs := f.raw(t, "load")
	byPos := map[string]string{}
	for _, r := range recs {
		if strings.Contains(string(r.Value), "plaintext-") {
			t.Fatalf("plaintext reached kafka at %d/%d", r.Partition, r.Offset)
		}
		byPos[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = string(r.Value)
	}
	for _, o := range outs {
		switch o.status {
		case 200:
			ok++
			v, found := byPos[fmt.Sprintf("%d/%d", o.partition, o.offset)]
			if !found || !strings.Contains(v, fmt.Sprintf(`"id":%d,`, o.id)) {
				t.Fatalf("record %d answered 200 at %d/%d but is not there", o.id, o.partition, o.offset)
			}
		case 503:
			refused++
			if o.retry == "" {
				t.Fatalf("503 without Retry-After for record %d", o.id)
			}
		default:
			t.Fatalf("record %d: unexpected status %d", o.id, o.status)
		}
	}
	return ok, refused
}

// TestVaultFrozenUnderLoad stops Vault with SIGSTOP for 3 s under load:
// every request in the window gets 503 with Retry-After or succeeds,
// nothing plaintext reaches Kafka, and the gateway serves again within 2 s
// of SIGCONT without a restart.
func TestVaultFrozenUnderLoad(t *testing.T) {
	env := testkit.Start(t)
	f := newLoadGateway(t, env)
	load := startLoad(f.url("load"), 4)
	time.Sleep(700 * time.Millisecond)
	resume := testkit.PauseVault(t, env.Vault)
	pausedAt := time.Now()
	time.Sleep(3 * time.Second)
	resume()
	resumedAt := time.Now()
	time.Sleep(2500 * time.Millisecond)
	outs := load.finish()
	ok, refused := verifyTopic(t, f, outs)
	var firstOK time.Time
	inWindow := 0
	for _, o := range outs {
		if o.at.After(pausedAt) && o.at.Before(resumedAt) {
			inWindow++
		}
		if o.status == 200 && o.at.After(resumedAt) && (firstOK.IsZero() || o.at.Before(firstOK)) {
			firstOK = o.at
		}
	}
	if refused == 0 || inWindow == 0 {
		t.Fatalf("the outage was not observed: %d refused, %d in window", refused, inWindow)
	}
	if firstOK.IsZero() || firstOK.Sub(resumedAt) > 2*time.Second {
		t.Fatalf("gateway not serving within 2 s of SIGCONT (first success %v after)", firstOK.Sub(resumedAt))
	}
	t.Logf("vault SIGSTOP 3 s: %d requests, %d ok, %d refused with 503+Retry-After, %d answered during the window; first success %v after SIGCONT; 0 plaintext in kafka",
		len(outs), ok, refused, inWindow, firstOK.Sub(resumedAt).Round(time.Millisecond))
}

// TestBrokerRestartUnderLoad closes the kfake broker and reopens it on the
// same port with its data dir, under load: every record that got a 200 is
// in the topic afterwards, and none got a 200 that Kafka did not keep.
func TestBrokerRestartUnderLoad(t *testing.T) {
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ko := devenv.KafkaOptions{Port: port, DataDir: dir, Partitions: 2}
	env := testkit.StartWith(t, ko)
	f := newLoadGateway(t, env)
	load := startLoad(f.url("load"), 4)
	time.Sleep(700 * time.Millisecond)
	env.Kafka.Close()
	closedAt := time.Now()
	time.Sleep(1500 * time.Millisecond)
	var c2 *kfake.Cluster
	for i := 0; i < 50; i++ { // the port may take a moment to free
		if c2, err = devenv.StartKafka(ko); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	reopenedAt := time.Now()
	// Keep the load on until the gateway has served again (its Kafka
	// client reconnects with backoff; slower on a loaded machine), then a
	// second more.
	for deadline := reopenedAt.Add(30 * time.Second); load.lastOK.Load() < reopenedAt.UnixNano() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	outs := load.finish()
	ok, refused := verifyTopic(t, f, outs)
	after := 0
	var firstOK time.Time
	for _, o := range outs {
		if o.status == 200 && o.at.After(reopenedAt) {
			after++
			if firstOK.IsZero() || o.at.Before(firstOK) {
				firstOK = o.at
			}
		}
	}
	if refused == 0 || after == 0 {
		t.Fatalf("restart not observed: %d refused, %d ok after reopen", refused, after)
	}
	t.Logf("broker closed %v, reopened on :%d with its data dir: %d requests, %d ok (all present), %d refused 503, %d ok after reopen, the first %v after it; lost 0",
		reopenedAt.Sub(closedAt).Round(time.Millisecond), port, len(outs), ok, refused, after, firstOK.Sub(reopenedAt).Round(time.Millisecond))
}

// TestLeadershipMovesUnderLoad: REST produce on a three-broker kfake
// cluster while the leader of each of the topic's six partitions moves to
// another broker every 300 ms for 6 s (and the coordinators move): every
// 200 is in the topic, no plaintext is stored, and any refusal is a 503
// with Retry-After. kfake keeps one log per partition for all brokers, so
// this shows the gateway's producer following a new leader, not a real
// election's effect on data.
func TestLeadershipMovesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("leadership moves under load (-short skips it)")
	}
	env := testkit.StartWith(t, devenv.KafkaOptions{Brokers: 3, Partitions: 6})
	f := newLoadGateway(t, env)
	load := startLoad(f.url("load"), 4)
	for deadline := time.Now().Add(30 * time.Second); load.lastOK.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no produce succeeded within 30 s")
		}
	}
	moves, coordinators := testkit.MoveLeaders(t, env.Kafka, []string{"load"}, 6*time.Second)
	moved := time.Now()
	for deadline := moved.Add(30 * time.Second); load.lastOK.Load() < moved.UnixNano() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	outs := load.finish()
	ok, refused := verifyTopic(t, f, outs)
	if load.lastOK.Load() < moved.UnixNano() {
		t.Fatal("no produce succeeded after the last leader move")
	}
	t.Logf("3 brokers, %d leader moves over 6 partitions and %d coordinator moves in 6 s: %d requests, %d ok (all present), %d refused 503 with Retry-After, lost 0, plaintext found 0",
		moves, coordinators, len(outs), ok, refused)
}
