package helmtest

import (
	"os"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/kafkagate/kafkagate/internal/metrics"
)

const operationsDoc = "../../../docs/operations.md"

// TestOperationsDocCoversMetrics: every kafkagate_* metric the metrics
// package exports is listed in docs/operations.md.
func TestOperationsDocCoversMetrics(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.ObserveHTTP("/v3/clusters", "GET", 200, 0)
	m.VaultCall("encrypt", 1, 1, 0, nil)
	m.Records("encrypt", "fields", "t", "ok", 1)
	if err := m.WatchDEKCache(func() metrics.DEKCacheStats { return metrics.DEKCacheStats{Cached: 1} }); err != nil {
		t.Fatal(err)
	}
	unwatch, err := m.WatchBridge("t", func() metrics.BridgeStats { return metrics.BridgeStats{Lag: 1} })
	if err != nil {
		t.Fatal(err)
	}
	defer unwatch()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "kafkagate_") {
			continue
		}
		n++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/operations.md does not list metric %s", name)
		}
	}
	if n < 10 {
		t.Fatalf("gathered %d kafkagate metrics, want at least 10", n)
	}
}

// TestOperationsDocCoversValues: every value of the chart's values.yaml,
// down to the second level, is named in docs/operations.md (as
// `top.key`, or `.key` in a row that starts with `top.`).
func TestOperationsDocCoversValues(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	vals, err := chartutil.ReadValuesFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(doc, "\n")
	for top, v := range vals {
		if !strings.Contains(doc, "`"+top) {
			t.Errorf("docs/operations.md does not name value %s", top)
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok || top == "podSecurityContext" || top == "securityContext" {
			continue
		}
		for key := range sub {
			full := "`" + top + "." + key
			short := "`." + key
			if strings.Contains(doc, full) || slices.ContainsFunc(rows, func(r string) bool {
				return strings.Contains(r, "`"+top+".") && strings.Contains(r, short)
			}) {
				continue
			}
			t.Errorf("docs/operations.md does not name value %s.%s", top, key)
		}
	}
}
