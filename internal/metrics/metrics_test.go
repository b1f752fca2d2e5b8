package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/metrics"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// The interfaces metrics implements, checked at compile time.
var (
	_ transit.Observer = (*metrics.Metrics)(nil)
	_ protect.Observer = (*metrics.Metrics)(nil)
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestCollectors(t *testing.T) {
	m := metrics.New()
	m.ObserveHTTP("/v3/clusters/{cluster_id}/topics/{topic}/records", "POST", 200, 3*time.Millisecond)
	m.ObserveHTTP("", "GET", 404, time.Millisecond)
	m.VaultCall("encrypt", 300, 42, 2*time.Millisecond, nil)
	m.VaultCall("decrypt", 10, 1, time.Millisecond, &vaultclient.Error{Op: "write", Kind: vaultclient.ErrUnavailable})
	m.VaultCall("decrypt", 10, 1, time.Millisecond, context.Canceled)
	m.VaultCall("hmac", 1, 1, time.Millisecond, errors.New("other"))
	m.Records("encrypt", "fields", "purchases", "ok", 7)
	m.Records("decrypt", "envelope", "files", "failed", 2)
	m.Records("decrypt", "fields", "x", "ok", 0) // nothing: no series
	if err := m.WatchDEKCache(func() metrics.DEKCacheStats {
		return metrics.DEKCacheStats{SealHits: 99, SealFetches: 1, OpenHits: 50, OpenMisses: 3, UnwrapCalls: 2, Cached: 3}
	}); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, m)
	for _, want := range []string{
		`kafkagate_http_requests_total{code="200",method="POST",route="/v3/clusters/{cluster_id}/topics/{topic}/records"} 1`,
		`kafkagate_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`kafkagate_http_request_duration_seconds_bucket{method="POST",route="/v3/clusters/{cluster_id}/topics/{topic}/records",le="0.005"} 1`,
		`kafkagate_vault_batch_calls_total{op="encrypt",outcome="ok"} 1`,
		`kafkagate_vault_batch_calls_total{op="decrypt",outcome="unavailable"} 1`,
		`kafkagate_vault_batch_calls_total{op="decrypt",outcome="canceled"} 1`,
		`kafkagate_vault_batch_calls_total{op="hmac",outcome="error"} 1`,
		`kafkagate_vault_batch_items_sum{op="encrypt"} 300`,
		`kafkagate_vault_batch_callers_sum{op="encrypt"} 42`,
		`kafkagate_vault_batch_call_duration_seconds_count{op="decrypt"} 2`,
		`kafkagate_records_total{mode="fields",op="encrypt",outcome="ok",topic="purchases"} 7`,
		`kafkagate_records_total{mode="envelope",op="decrypt",outcome="failed",topic="files"} 2`,
		`kafkagate_dek_cache_hits_total{op="seal"} 99`,
		`kafkagate_dek_cache_hits_total{op="open"} 50`,
		`kafkagate_dek_cache_misses_total{op="open"} 3`,
		`kafkagate_dek_unwrap_calls_total 2`,
		`kafkagate_dek_cache_entries 3`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, `topic="x"`) {
		t.Error("a zero count created a series")
	}
	if err := m.WatchDEKCache(func() metrics.DEKCacheStats { return metrics.DEKCacheStats{} }); err == nil {
		t.Error("a second DEK cache collector was accepted")
	}
}

// Two gateways in one process keep separate metrics: nothing goes to the
// global default registry.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Records("encrypt", "fields", "only-a", "ok", 1)
	if strings.Contains(scrape(t, b), "only-a") {
		t.Fatal("metrics leaked between registries")
	}
	if a.Registry() == b.Registry() {
		t.Fatal("shared registry")
	}
}

func TestBridges(t *testing.T) {
	m := metrics.New()
	un, err := m.WatchBridge("purchases_encrypted", func() metrics.BridgeStats {
		return metrics.BridgeStats{Consumed: 10, Produced: 8, DeadLettered: 2, Retries: 1, Lag: 5}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WatchBridge("purchases_encrypted", func() metrics.BridgeStats { return metrics.BridgeStats{} }); err == nil {
		t.Fatal("the same target watched twice")
	}
	if _, err := m.WatchBridge("other", func() metrics.BridgeStats { return metrics.BridgeStats{Lag: -1} }); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, m)
	for _, want := range []string{
		`kafkagate_bridge_records_total{event="dead_lettered",target="purchases_encrypted"} 2`,
		`kafkagate_bridge_records_total{event="produced",target="purchases_encrypted"} 8`,
		`kafkagate_bridge_retries_total{target="purchases_encrypted"} 1`,
		`kafkagate_bridge_consumer_lag{target="purchases_encrypted"} 5`,
		`kafkagate_bridge_records_total{event="consumed",target="other"} 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, `kafkagate_bridge_consumer_lag{target="other"}`) {
		t.Error("unknown lag reported")
	}
	un()
	if strings.Contains(scrape(t, m), `target="purchases_encrypted"`) {
		t.Error("unwatched bridge still reported")
	}
}
