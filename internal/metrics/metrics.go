// Package metrics is kafkagate's Prometheus instrumentation. A Metrics
// owns its own registry (never the process-wide default one), so each
// gateway, and each test, has its own. It counts HTTP requests and their
// latency by route pattern and status, Vault calls with their batch sizes
// and latencies (as a transit.Observer), records encrypted and decrypted by
// mode and topic (as a protect.Observer), envelope DEK cache use, the Kafka
// proxy's requests by API and result, and the
// counters (dead letters, lag) of running bridges. Label values are bounded: route patterns,
// not paths, and topics only as the policies name them.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

const namespace = "kafkagate"

// Metrics holds kafkagate's collectors and their registry. It is safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	vaultCalls    *prometheus.CounterVec
	vaultDuration *prometheus.HistogramVec
	vaultItems    *prometheus.HistogramVec
	vaultCallers  *prometheus.HistogramVec

	records *prometheus.CounterVec

	proxyRequests *prometheus.CounterVec

	bridgeOnce sync.Once
	bridges    *bridgeCollector
	bridgeErr  error
}

// New returns a Metrics with a fresh registry that also carries the Go
// runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		vaultCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "vault", Name: "batch_calls_total",
			Help: "Vault transit batch_input calls by operation and outcome (ok, or the whole-call error kind).",
		}, []string{"op", "outcome"}),
		vaultDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "vault", Name: "batch_call_duration_seconds",
			Help:    "Latency of Vault transit batch_input calls by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		vaultItems: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "vault", Name: "batch_items",
			Help:    "Items per Vault transit batch_input call, by operation.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}, []string{"op"}),
		vaultCallers: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "vault", Name: "batch_callers",
			Help:    "Callers' batches merged into one Vault transit call, by operation.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}, []string{"op"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "records_total",
			Help: "Records encrypted or decrypted, by operation, record mode, topic and outcome.",
		}, []string{"op", "mode", "topic", "outcome"}),
		proxyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "proxy", Name: "requests_total",
			Help: "Kafka requests answered by the Kafka proxy, by API and result (ok, refused, error).",
		}, []string{"api", "result"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.vaultCalls, m.vaultDuration, m.vaultItems, m.vaultCallers, m.records, m.proxyRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// KafkaRequest counts one request answered by the Kafka proxy, by API name
// and result (ok, refused, error).
func (m *Metrics) KafkaRequest(api, result string) {
	m.proxyRequests.WithLabelValues(api, result).Inc()
}

// Registry is the registry the collectors are registered with, for
// callers that add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveHTTP counts one request; route is the matched route pattern
// ("unmatched" when none matched).
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// VaultCall implements transit.Observer.
func (m *Metrics) VaultCall(op string, items, callers int, d time.Duration, err error) {
	m.vaultCalls.WithLabelValues(op, outcome(err)).Inc()
	m.vaultDuration.WithLabelValues(op).Observe(d.Seconds())
	m.vaultItems.WithLabelValues(op).Observe(float64(items))
	m.vaultCallers.WithLabelValues(op).Observe(float64(callers))
}

// Records implements protect.Observer: n records of topic went through op
// (encrypt or decrypt) in record mode mode with outcome (ok, failed,
// partial, ...).
func (m *Metrics) Records(op, mode, topic, outcome string, n int) {
	if n > 0 {
		m.records.WithLabelValues(op, mode, topic, outcome).Add(float64(n))
	}
}

// outcome names a whole-call error by its kind.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, vaultclient.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, vaultclient.ErrDenied):
		return "denied"
	case errors.Is(err, vaultclient.ErrNotFound):
		return "not_found"
	case errors.Is(err, vaultclient.ErrInvalid):
		return "invalid"
	}
	return "error"
}

// DEKCacheStats are envelope data-key cache counters (see
// protect.Engine.DEKCacheStats).
type DEKCacheStats struct {
	SealHits    int64 // records sealed with a cached DEK
	SealFetches int64 // DEKs fetched from Vault to seal
	OpenHits    int64 // records opened with a cached (or in-flight) DEK
	OpenMisses  int64 // DEKs that had to be unwrapped
	UnwrapCalls int64 // unwrap calls to Vault
	Cached      int   // DEKs cached for opening now
}

// WatchDEKCache reports the envelope DEK cache counters that stats returns,
// read at each scrape. Call it once per registry.
func (m *Metrics) WatchDEKCache(stats func() DEKCacheStats) error {
	return m.reg.Register(&dekCollector{stats: stats,
		hits: prometheus.NewDesc(namespace+"_dek_cache_hits_total", "Envelope records sealed or opened with a cached data key.", []string{"op"}, nil),
		miss: prometheus.NewDesc(namespace+"_dek_cache_misses_total", "Envelope data keys fetched (seal) or unwrapped (open) from Vault.", []string{"op"}, nil),
		call: prometheus.NewDesc(namespace+"_dek_unwrap_calls_total", "Vault calls that unwrapped envelope data keys.", nil, nil),
		size: prometheus.NewDesc(namespace+"_dek_cache_entries", "Unwrapped envelope data keys cached for opening.", nil, nil),
	})
}

type dekCollector struct {
	stats                  func() DEKCacheStats
	hits, miss, call, size *prometheus.Desc
}

func (c *dekCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.miss
	ch <- c.call
	ch <- c.size
}

func (c *dekCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.SealHits), "seal")
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.OpenHits), "open")
	ch <- prometheus.MustNewConstMetric(c.miss, prometheus.CounterValue, float64(s.SealFetches), "seal")
	ch <- prometheus.MustNewConstMetric(c.miss, prometheus.CounterValue, float64(s.OpenMisses), "open")
	ch <- prometheus.MustNewConstMetric(c.call, prometheus.CounterValue, float64(s.UnwrapCalls))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Cached))
}

// BridgeStats are the counters of one running encryptor bridge.
type BridgeStats struct {
	Consumed, Produced, DeadLettered, Retries int64
	// Lag is the consumer lag in records summed over the source
	// partitions; negative when the bridge does not know it.
	Lag int64
}

// WatchBridge reports the counters stats returns for the bridge writing to
// target, read at each scrape, until the returned function is called.
func (m *Metrics) WatchBridge(target string, stats func() BridgeStats) (unwatch func(), err error) {
	m.bridgeOnce.Do(func() {
		m.bridges = &bridgeCollector{watched: map[string]func() BridgeStats{},
			counter: prometheus.NewDesc(namespace+"_bridge_records_total", "Bridge records by target topic and what happened to them (consumed, produced, dead_lettered).", []string{"target", "event"}, nil),
			retries: prometheus.NewDesc(namespace+"_bridge_retries_total", "Bridge waits after Vault or Kafka failed, by target topic.", []string{"target"}, nil),
			lag:     prometheus.NewDesc(namespace+"_bridge_consumer_lag", "Bridge consumer lag in records, by target topic.", []string{"target"}, nil),
		}
		m.bridgeErr = m.reg.Register(m.bridges)
	})
	if m.bridgeErr != nil {
		return nil, m.bridgeErr
	}
	return m.bridges.watch(target, stats)
}

type bridgeCollector struct {
	mu                    sync.Mutex
	watched               map[string]func() BridgeStats
	counter, retries, lag *prometheus.Desc
}

func (c *bridgeCollector) watch(target string, stats func() BridgeStats) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.watched[target]; dup {
		return nil, fmt.Errorf("metrics: a bridge to %q is already watched", target)
	}
	c.watched[target] = stats
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watched, target)
	}, nil
}

func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.counter
	ch <- c.retries
	ch <- c.lag
}

func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for target, stats := range c.watched {
		s := stats()
		ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, float64(s.Consumed), target, "consumed")
		ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, float64(s.Produced), target, "produced")
		ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, float64(s.DeadLettered), target, "dead_lettered")
		ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(s.Retries), target)
		if s.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(s.Lag), target)
		}
	}
}
