// Package httpapi is kafkagate's HTTP API, built on chi in the shapes of
// Confluent REST Proxy v3: produce (single, streamed and batch) with
// encryption by the topic's policy, a stateless decrypting read, REST
// Proxy v2's consumer instances over the decrypting reader (v2consumer.go),
// the
// read-only cluster, broker, topic and partition resources (resources.go),
// and health and readiness probes. Errors are {error_code,
// message} with the codes in errors.go (documented in docs/errors.md).
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Kafka is what the API needs of the Kafka layer (*kafka.Client).
type Kafka interface {
	Produce(ctx context.Context, msgs []kafka.Message) ([]kafka.Delivery, error)
	Read(ctx context.Context, topic string, partition int32, offset int64, max int) ([]kafka.Record, error)
	ClusterID(ctx context.Context) (string, error)
	Ping(ctx context.Context) error
}

// Vault is what the API needs to check Vault's health.
type Vault interface {
	Health(ctx context.Context) error
}

// Config configures the API.
type Config struct {
	Engine   *protect.Engine
	Policies *policy.Set
	Kafka    Kafka
	Vault    Vault
	Logger   *slog.Logger

	// MaxBodyBytes bounds a records:batch body and each record of a
	// produce stream; default 8 MiB.
	MaxBodyBytes      int64
	MaxRecords        int           // entries per records:batch, default 1000
	MaxHeaders        int           // headers per record, default 32
	MaxHeaderBytes    int           // header name+value bytes, default 16 KiB
	MaxReadRecords    int           // records per GET, default 1000
	RequestTimeout    time.Duration // default 30 s
	DefaultReadRecord int           // default max for GET, default 100

	// ProduceIdleTimeout ends a produce stream that sends nothing for
	// this long (and bounds each write of its reports); default 30 s.
	ProduceIdleTimeout time.Duration
	// ProduceInFlight bounds a produce stream's records read but not yet
	// reported; default 1000.
	ProduceInFlight int
	// ProduceBatchRecords bounds the records of a stream encrypted and
	// produced together; default 500.
	ProduceBatchRecords int

	// Access, when set, requires a bearer token or a client certificate
	// on every endpoint but /healthz and /readyz (see auth.go); nil turns
	// authentication off.
	Access    *Access
	RateLimit float64 // requests per second per principal; 0: no limit
	RateBurst int     // bucket size; default ceil(RateLimit)

	Stream StreamConfig // GET .../records:stream (stream.go)

	// Metrics, when set, counts requests and is served at /metrics
	// (metrics.go).
	Metrics Metrics

	// Files, when set, serves the streaming file upload POST
	// .../topics/{topic}/files (files.go); nil answers 501.
	Files FileSender
	// MaxUploadsPerPrincipal bounds one principal's concurrent file
	// uploads; default 4.
	MaxUploadsPerPrincipal int

	// Admin, when set, serves the key lifecycle endpoints under /v3/admin
	// (admin.go); nil answers 501.
	Admin AdminService

	// V2 configures the REST Proxy v2 consumer API under /consumers
	// (v2consumer.go).
	V2 V2Config
}

// Server serves the API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	router  chi.Router
	limiter *rateLimiter
	uploads *principalSlots
	// v2 holds the v2 consumer instances of this replica; v2Groups reaches
	// Kafka for them (nil: the v2 API answers 501).
	v2       *v2Manager
	v2Groups ConsumerGroups
	// drainc is closed by BeginDrain.
	drainc    chan struct{}
	drainOnce sync.Once
}

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 1000
	}
	if cfg.MaxHeaders <= 0 {
		cfg.MaxHeaders = 32
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 16 << 10
	}
	if cfg.MaxReadRecords <= 0 {
		cfg.MaxReadRecords = 1000
	}
	if cfg.DefaultReadRecord <= 0 {
		cfg.DefaultReadRecord = 100
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxUploadsPerPrincipal <= 0 {
		cfg.MaxUploadsPerPrincipal = 4
	}
	if cfg.ProduceIdleTimeout <= 0 {
		cfg.ProduceIdleTimeout = 30 * time.Second
	}
	if cfg.ProduceInFlight <= 0 {
		cfg.ProduceInFlight = 1000
	}
	if cfg.ProduceBatchRecords <= 0 {
		cfg.ProduceBatchRecords = 500
	}
	cfg.V2 = v2Defaults(cfg.V2, cfg.RequestTimeout)
	s := &Server{cfg: cfg, log: cfg.Logger, limiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst), uploads: newPrincipalSlots(cfg.MaxUploadsPerPrincipal),
		drainc: make(chan struct{}), v2: newV2Manager(cfg.V2, cfg.Logger), v2Groups: cfg.V2.Groups}
	if kc, ok := cfg.Kafka.(*kafka.Client); ok && s.v2Groups == nil {
		s.v2Groups = KafkaGroups{Client: kc}
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.logRequests, s.instrument, s.recoverer, s.access, BrowserGuard(cfg.Access == nil, s.bodyType), s.rateLimit,
		s.bodyDeadline, s.timeout(cfg.RequestTimeout))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeErr(w, newErr(CodeNotFound, "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeErr(w, newErr(CodeMethod, "method not allowed on this endpoint"))
	})
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/metrics", s.metrics)
	r.Route("/v3/clusters", func(r chi.Router) {
		r.Get("/", s.listClusters)
		r.Route("/{cluster_id}", func(r chi.Router) {
			r.Use(s.checkCluster)
			r.Get("/", s.getCluster)
			r.Get("/brokers", s.listBrokers)
			r.Get("/brokers/{broker_id}", s.getBroker)
			r.Get("/topics", s.listTopics)
			r.Get("/topics/{topic}", s.getTopic)
			r.Get("/topics/{topic}/partitions", s.listPartitions)
			r.Get("/topics/{topic}/partitions/{partition_id}", s.getPartition)
			r.Post("/topics/{topic}/records", s.produce)
			r.Post("/topics/{topic}/records:batch", s.produceBatch)
			r.Get("/topics/{topic}/records", s.read)
			r.Get("/topics/{topic}/records:stream", s.streamHandler())
			r.Post("/topics/{topic}/files", s.uploadFile)
		})
	})
	r.Route("/v3/admin", s.adminRoutes)
	r.Route("/consumers", s.v2Routes)
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Close closes the v2 consumer instances (each leaves its group). The
// server answers no v2 request after it.
func (s *Server) Close() { s.v2.Close() }

// v2Defaults fills V2Config's zero fields.
func v2Defaults(c V2Config, requestTimeout time.Duration) V2Config {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MaxInstances <= 0 {
		c.MaxInstances = 256
	}
	if c.MaxPerPrincipal <= 0 {
		c.MaxPerPrincipal = 16
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = 32
	}
	if c.MaxWait <= 0 {
		c.MaxWait = requestTimeout / 2
	}
	if c.DefaultWait <= 0 {
		c.DefaultWait = min(time.Second, c.MaxWait)
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 8 << 20
	}
	if c.PatternRefresh <= 0 {
		c.PatternRefresh = time.Minute
	}
	return c
}

// logRequests logs method (one of MetricMethod's), path, status,
// principal and duration — never bodies or credentials. Its slot carries
// the principal back from the access middleware (and to instrument).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		r, slot := withLogSlot(r)
		next.ServeHTTP(ww, r)
		s.log.Info("http request", "method", MetricMethod(r.Method), "path", r.URL.Path, "status", ww.Status(), "principal", slot.principal,
			"bytes_in", r.ContentLength, "duration_ms", time.Since(start).Milliseconds(), "request_id", middleware.GetReqID(r.Context()))
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	out := map[string]string{"vault": "ok", "kafka": "ok"}
	ready := true
	if err := s.cfg.Vault.Health(ctx); err != nil {
		out["vault"], ready = "unavailable", false
	}
	if err := s.cfg.Kafka.Ping(ctx); err != nil {
		out["kafka"], ready = "unavailable", false
	}
	if !ready {
		w.Header().Set("Retry-After", RetryAfterSeconds)
		writeJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type clusterIDKey struct{}

func (s *Server) checkCluster(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.cfg.Kafka.ClusterID(r.Context())
		if err != nil {
			writeErr(w, fromError(err))
			return
		}
		if chi.URLParam(r, "cluster_id") != id {
			// REST Proxy's answer and message for a cluster id that is not
			// this cluster's.
			writeErr(w, newErr(CodeClusterNotFound, "Cluster "+chi.URLParam(r, "cluster_id")+" cannot be found."))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clusterIDKey{}, id)))
	})
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
