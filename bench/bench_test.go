package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

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
	for _, id := range []string{"demo_pattern", "rest_saturation", "bridge_vs_demo", "envelope_overhead", "files_throughput"} {
		if l := byID[id]; l.Missing != "not run" || l.Met != nil {
			t.Errorf("%s: a section not run must say so and claim no verdict: %+v", id, l)
		}
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(table.String(), "\n"); got != len(rep.Lines)+3 {
		t.Errorf("table has %d lines for %d report lines:\n%s", got, len(rep.Lines), table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
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
