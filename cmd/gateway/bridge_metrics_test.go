package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const bridgeMetricsConfig = `
[policy:enc]
fields = Name transit, Address transit
`

// metricValue finds the sample name{labels} in a Prometheus text
// exposition (labels as the exposition writes them, sorted by name).
func metricValue(body, sample string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestCLIBridgeMetrics runs `gateway bridge --metrics-listen` in-process
// against real Vault and kfake: after plaintext records (one of them not
// JSON, so dead-lettered) pass through, /metrics shows the bridge's
// consumed, produced and dead-lettered counts, zero suspected duplicates
// and a consumer lag of 0 (with Vault frozen first, the lag is every
// record and nothing is produced); after the bridge stops the endpoint is
// gone.
func TestCLIBridgeMetrics(t *testing.T) {
	env := testkit.Start(t)
	testkit.UseVault(t, env)
	cfgPath := filepath.Join(t.TempDir(), "kafkagate.ini")
	if err := os.WriteFile(cfgPath, []byte(bridgeMetricsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := testkit.KafkaClient(t, testkit.KafkaSettings(t, env.Brokers))
	const n = 20
	var msgs []kafka.Message
	for i := range n {
		v := fmt.Sprintf(`{"Name":"pt-name-%d","Address":"pt-addr-%d","n":%d}`, i, i, i)
		if i == 7 {
			v = "not json"
		}
		msgs = append(msgs, kafka.Message{Topic: "plain", Partition: -1, Key: []byte(strconv.Itoa(i)), Value: []byte(v)})
	}
	ds, err := kc.Produce(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}

	// Vault frozen: the bridge can encrypt nothing, so the lag is every
	// record; after SIGCONT it drains to 0.
	resume := testkit.PauseVault(t, env.Vault)
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &out, "--config", cfgPath, "--brokers="+env.Brokers[0], "--log-level", "warn",
			"bridge", "--source", "plain", "--target", "enc", "--metrics-listen", addr, "--pprof", pprofAddr)
	}()
	url := "http://" + addr + "/metrics"
	frozen := map[string]float64{
		`kafkagate_bridge_records_total{event="produced",target="enc"}`: 0,
		`kafkagate_bridge_consumer_lag{target="enc"}`:                   n,
	}
	waitMetrics(t, url, frozen, done, &out)
	resume()
	want := map[string]float64{
		`kafkagate_bridge_records_total{event="consumed",target="enc"}`:      n,
		`kafkagate_bridge_records_total{event="produced",target="enc"}`:      n - 1,
		`kafkagate_bridge_records_total{event="dead_lettered",target="enc"}`: 1,
		`kafkagate_bridge_duplicates_suspected_total{target="enc"}`:          0,
		`kafkagate_bridge_consumer_lag{target="enc"}`:                        0,
	}
	body := waitMetrics(t, url, want, done, &out)
	// The engine's own counters are served too; no record content is.
	if v, ok := metricValue(body, `kafkagate_records_total{mode="fields",op="encrypt",outcome="ok",topic="enc"}`); !ok || v != n-1 {
		t.Errorf("records encrypted: %v %v\n%s", v, ok, grepBridge(body))
	}
	if strings.Contains(body, "pt-") {
		t.Fatal("/metrics carries record content")
	}
	t.Logf("bridge /metrics after %d records:\n%s", n, grepBridge(body))
	// --pprof serves the bridge process's Go profiles beside it.
	checkPprof(t, "bridge", pprofAddr)

	stopRun(t, cancel, done, 60*time.Second, "bridge")
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("/metrics still served after the bridge stopped")
	}

	// An address that is taken is refused before the bridge starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var errOut testkit.SyncBuffer
	err = run(context.Background(), &errOut, "--config", cfgPath, "--brokers="+env.Brokers[0], "bridge", "--source", "plain", "--target", "enc", "--metrics-listen", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "--metrics-listen "+ln.Addr().String()) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("taken --metrics-listen address: %v", err)
	}
	// Profiles are served on a loopback address only.
	err = run(context.Background(), &errOut, "--config", cfgPath, "--brokers="+env.Brokers[0], "bridge", "--source", "plain", "--target", "enc", "--pprof", "0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "--pprof 0.0.0.0:0") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("--pprof on a non-loopback address: %v", err)
	}
}

// waitMetrics polls url until every sample in want has its value, and
// returns the exposition.
func waitMetrics(t *testing.T, url string, want map[string]float64, done <-chan error, out *testkit.SyncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var body string
	for {
		select {
		case err := <-done:
			t.Fatalf("bridge ended early: %v\n%s", err, out.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
			}
			body = string(b)
			ok := true
			for sample, v := range want {
				got, found := metricValue(body, sample)
				ok = ok && found && got == v
			}
			if ok {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s /metrics does not show %v:\n%s\nlog:\n%s", want, grepBridge(body), out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func grepBridge(body string) string {
	var b strings.Builder
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "kafkagate_bridge_") || strings.HasPrefix(line, "kafkagate_records_total") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// checkPprof fails t unless cmd's --pprof server at addr answers.
func checkPprof(t *testing.T, cmd, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("%s --pprof: %v", cmd, err)
	}
	cmdline, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(cmdline) == 0 {
		t.Fatalf("%s --pprof: HTTP %d %q", cmd, resp.StatusCode, cmdline)
	}
}
