package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/metrics"
)

type metricsKafka struct{}

func (metricsKafka) Produce(context.Context, []kafka.Message) ([]kafka.Delivery, error) {
	return nil, nil
}
func (metricsKafka) Read(context.Context, string, int32, int64, int) ([]kafka.Record, error) {
	return nil, nil
}
func (metricsKafka) ClusterID(context.Context) (string, error) { return "c1", nil }
func (metricsKafka) Ping(context.Context) error                { return nil }

type metricsVault struct{}

func (metricsVault) Health(context.Context) error { return nil }

func TestMetricsEndpoint(t *testing.T) {
	m := metrics.New()
	access, err := ParseAccess(strings.NewReader("token " + HashToken("kgt_prom") + " prom metrics\n" +
		"token " + HashToken("kgt_app") + " app consume:orders\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Kafka: metricsKafka{}, Vault: metricsVault{}, Metrics: m, Access: access,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	do := func(path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("/v3/clusters/c1", "kgt_app"); rec.Code != 200 {
		t.Fatalf("cluster: %d %s", rec.Code, rec.Body)
	}
	if rec := do("/no/such/thing", "kgt_app"); rec.Code != 404 {
		t.Fatalf("unknown path: %d", rec.Code)
	}
	// /metrics needs the metrics right.
	if rec := do("/metrics", "kgt_app"); rec.Code != http.StatusForbidden {
		t.Fatalf("metrics without the right: %d", rec.Code)
	}
	if rec := do("/metrics", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: %d", rec.Code)
	}
	rec := do("/metrics", "kgt_prom")
	if rec.Code != 200 {
		t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	out := rec.Body.String()
	for _, want := range []string{
		`kafkagate_http_requests_total{code="200",method="GET",route="/v3/clusters/{cluster_id}"} 1`,
		`kafkagate_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`kafkagate_http_requests_total{code="403",method="GET",route="/metrics"} 1`,
		`kafkagate_http_requests_total{code="401",method="GET",route="unauthenticated"} 1`,
		`kafkagate_http_request_duration_seconds_count{method="GET",route="/v3/clusters/{cluster_id}"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, grepLines(out, "kafkagate_http_requests_total"))
		}
	}
	if strings.Contains(out, "/no/such/thing") || strings.Contains(out, `route="/v3/clusters/c1`) {
		t.Error("a raw path became a label value")
	}

	// Without Metrics the endpoint is absent and nothing is counted.
	plain := New(Config{Kafka: metricsKafka{}, Vault: metricsVault{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec = httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/metrics", nil)) // authentication off: a loopback Host
	if rec.Code != http.StatusNotFound {
		t.Fatalf("metrics off: %d", rec.Code)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
