package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench executable when
// the bench re-runs it as the broker process.
func TestMain(m *testing.M) {
	if os.Getenv(BrokerEnv) != "" {
		os.Exit(RunBroker(context.Background()))
	}
	os.Exit(m.Run())
}

// TestQuickReport runs the quick mode of the cheap sections against a real
// Vault dev server and kfake, and checks the report is well-formed: every
// line id present, the sections run have positive figures and a ratio, the
// others say why they are missing, and the table and JSON render. It never
// asserts a time or a rate's size.
func TestQuickReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Vault")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{Quick: true, Sections: []string{"vault", "fpe"}, Point: 100 * time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if !rep.Quick || rep.CPUs < 1 || rep.LoadBefore == "" {
		t.Fatalf("report header: %+v", rep)
	}
	byID := map[string]Line{}
	for _, l := range rep.Lines {
		if _, dup := byID[l.ID]; dup {
			t.Errorf("duplicate line id %q", l.ID)
		}
		byID[l.ID] = l
	}
	for _, id := range LineIDs {
		if _, ok := byID[id]; !ok {
			t.Errorf("line %q missing from the report", id)
		}
	}
	for _, id := range []string{"vault_ceiling", "fpe_wrapper"} {
		if l := byID[id]; l.Missing != "" || l.Value <= 0 {
			t.Errorf("%s: measured section without a figure: %+v", id, l)
		}
	}
	if l := byID["fpe_wrapper"]; l.Ratio <= 0 || l.RatioText == "" || l.Met == nil || l.Target == "" {
		t.Errorf("fpe_wrapper: no ratio or target verdict: %+v", l)
	}
	// Per-process CPU: the ceiling's Vault and client (this process)
	// each have a CPU time and a cost per field; no figure is judged.
	vl := byID["vault_ceiling"]
	if vl.CPUPer != "field" {
		t.Errorf("vault_ceiling: cpu_per %q, want field", vl.CPUPer)
	}
	for _, p := range []string{procVault, procClient} {
		if c := cpuOf(vl.CPU, p); c == nil {
			t.Errorf("vault_ceiling: no CPU figure for process %s: %+v", p, vl.CPU)
		} else if c.CPUSec < 0 || c.USPerField < 0 || c.USPerRecord < 0 {
			t.Errorf("vault_ceiling: negative CPU figure for %s: %+v", p, c)
		}
	}
	for _, id := range []string{"demo_pattern", "rest_saturation", "rest_gateway_cpu", "rest_single_saturation", "rest_single_vault_calls",
		"rest_single_latency", "rest_single_gateway_cpu", "bridge_vs_demo", "bridge_gateway_cpu", "envelope_overhead", "envelope_client_cpu", "files_throughput"} {
		if l := byID[id]; l.Missing != "not run" || l.Met != nil {
			t.Errorf("%s: a section not run must say so and claim no verdict: %+v", id, l)
		}
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if len(rep.Capacity) == 0 || rep.Capacity[0].ID != "vault_ceiling" || rep.Capacity[0].Cores[procVault] < 0 {
		t.Errorf("capacity: want a vault_ceiling row with Vault's cores: %+v", rep.Capacity)
	}
	tableLines := len(rep.Lines) + 3
	if len(rep.Capacity) > 0 {
		tableLines += 4 + len(rep.Capacity) // blank, title, blank, header, rows
	}
	if got := strings.Count(table.String(), "\n"); got != tableLines {
		t.Errorf("table has %d lines for %d report lines:\n%s", got, len(rep.Lines), table.String())
	}
	for _, col := range []string{"CPU µs per", procVault, procGateway, procBroker, procClient} {
		if !strings.Contains(strings.SplitN(table.String(), "\n", 4)[2], col) {
			t.Errorf("table header lacks the %q column:\n%s", col, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"cpu"`, `"cpu_per"`, `"process"`, `"cpu_sec"`, `"us_per_record"`, `"us_per_field"`, `"capacity"`, `"cores_per_100k_per_sec"`} {
		if !bytes.Contains(js.Bytes(), []byte(key)) {
			t.Errorf("JSON report lacks the key %s", key)
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Lines) != len(rep.Lines) {
		t.Fatalf("JSON does not round-trip: %v", err)
	}
}

func TestUnknownSection(t *testing.T) {
	if _, err := Run(context.Background(), Config{Sections: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `unknown section "nope"`) {
		t.Fatalf("want an unknown-section error, got %v", err)
	}
}

func TestCardNumbersPassLuhn(t *testing.T) {
	for i := range 1000 {
		c := cardNumber(i)
		if len(c) != 16 {
			t.Fatalf("%d: %q", i, c)
		}
		sum := 0
		for j := range c {
			v := int(c[len(c)-1-j] - '0')
			if j%2 == 1 {
				if v *= 2; v > 9 {
					v -= 9
				}
			}
			sum += v
		}
		if sum%10 != 0 {
			t.Fatalf("%d: %q fails Luhn", i, c)
		}
	}
}

func TestProcessCPUTime(t *testing.T) {
	s, err := cpuSeconds(os.Getpid())
	if err != nil || s < 0 {
		t.Fatalf("cpuSeconds(self) = %v, %v", s, err)
	}
	if s, err := selfCPUSeconds(); err != nil || s < 0 {
		t.Fatalf("selfCPUSeconds = %v, %v", s, err)
	}
	if _, err := cpuSeconds(-1); err == nil {
		t.Fatal("cpuSeconds(-1): no error")
	}
}

func TestMetricSum(t *testing.T) {
	m := map[string]float64{
		`kafkagate_vault_batch_calls_total{op="encrypt",outcome="ok"}`:    3,
		`kafkagate_vault_batch_calls_total{op="encrypt",outcome="error"}`: 1,
		`kafkagate_vault_batch_calls_total{op="decrypt",outcome="ok"}`:    5,
		`kafkagate_vault_batch_calls_total_other{op="encrypt"}`:           7,
	}
	if got := metricSum(m, "kafkagate_vault_batch_calls_total", `op="encrypt"`); got != 4 {
		t.Fatalf("encrypt calls = %v, want 4", got)
	}
	if got := metricSum(m, "kafkagate_vault_batch_calls_total"); got != 9 {
		t.Fatalf("all calls = %v, want 9", got)
	}
}
