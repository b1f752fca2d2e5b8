package server

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/httpapi"
)

// Settings are the [kafkagate] keys that shape how the API is served:
// listener, TLS, access control and request limits. Zero limits mean the
// API's defaults.
type Settings struct {
	Listen string // listen, default 127.0.0.1:8080

	// Paths; a relative path is taken from the configuration file's
	// directory.
	AccessFile  string // access_file: tokens and certificate subjects (see docs/security.md)
	TLSCert     string // tls_cert: the listener's certificate chain (PEM)
	TLSKey      string // tls_key: its private key (PEM)
	TLSClientCA string // tls_client_ca: CAs of client certificates; when set, every client must present one

	MaxBodyBytes   int64         // max_body_bytes, default 8 MiB
	MaxRecords     int           // max_records per request, default 1000
	MaxHeaders     int           // max_headers per record, default 32
	MaxHeaderBytes int           // max_header_bytes per record header, default 16 KiB
	MaxJSONDepth   int           // max_json_depth of record values (core.MaxJSONDepth)
	RequestTimeout time.Duration // request_timeout, default 30s
	IdleTimeout    time.Duration // idle_timeout of keep-alive connections, default 120s
	// produce_idle_timeout: a produce stream that sends nothing for this
	// long is closed (default 30s).
	ProduceIdleTimeout time.Duration
	// drain_delay and drain_timeout: how Serve stops (Drain). Zero in the
	// library (a test's Serve stops at once); the serve command defaults
	// them to DefaultDrainDelay and DefaultDrainTimeout.
	DrainDelay   time.Duration
	DrainTimeout time.Duration
	// DrainDelaySet and DrainTimeoutSet tell whether the file set them.
	DrainDelaySet, DrainTimeoutSet bool
	RateLimit                      float64 // rate_limit: requests per second per principal; 0 = off
	RateBurst                      int     // rate_burst, default ceil(rate_limit)
	// max_streams_per_principal and max_uploads_per_principal: one
	// principal's concurrent records:stream and file uploads (default 8
	// and 4).
	MaxStreamsPerPrincipal int
	MaxUploadsPerPrincipal int
	// stream_session_timeout, stream_rebalance_timeout and
	// stream_heartbeat_interval: the group membership of records:stream
	// with a group (0: sarama's 10 s, 60 s and 3 s); a request's
	// session_timeout and rebalance_timeout override the first two.
	StreamSessionTimeout    time.Duration
	StreamRebalanceTimeout  time.Duration
	StreamHeartbeatInterval time.Duration
	// consumer_instance_timeout: a REST Proxy v2 consumer instance no
	// request used for this long is closed (default 5m).
	ConsumerInstanceTimeout time.Duration
}

// ReadSettings reads and checks the [kafkagate] serving keys.
func ReadSettings(f *config.File) (Settings, error) {
	s := Settings{Listen: f.Get("kafkagate", "listen", "127.0.0.1:8080")}
	var errs []error
	path := func(key string) string {
		v := f.Get("kafkagate", key, "")
		if v != "" && !filepath.IsAbs(v) && f.Path != "" {
			v = filepath.Join(filepath.Dir(f.Path), v)
		}
		return v
	}
	s.AccessFile, s.TLSCert, s.TLSKey, s.TLSClientCA = path("access_file"), path("tls_cert"), path("tls_key"), path("tls_client_ca")

	intKey := func(key string, lo, hi int64) int64 {
		v := f.Get("kafkagate", key, "")
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%w: [kafkagate] %s = %q: want an integer from %d to %d", config.ErrConfig, key, v, lo, hi))
			return 0
		}
		return n
	}
	s.MaxBodyBytes = intKey("max_body_bytes", 1, 1<<30)
	s.MaxRecords = int(intKey("max_records", 1, 1_000_000))
	s.MaxHeaders = int(intKey("max_headers", 1, 10_000))
	s.MaxHeaderBytes = int(intKey("max_header_bytes", 1, 1<<30))
	if d, err := core.MaxJSONDepth(f); err != nil {
		errs = append(errs, err)
	} else {
		s.MaxJSONDepth = d
	}
	s.RateBurst = int(intKey("rate_burst", 1, 1_000_000))
	s.MaxStreamsPerPrincipal = int(intKey("max_streams_per_principal", 1, 10_000))
	s.MaxUploadsPerPrincipal = int(intKey("max_uploads_per_principal", 1, 10_000))

	durKey := func(key, example string) time.Duration {
		v := f.Get("kafkagate", key, "")
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 24*time.Hour {
			errs = append(errs, fmt.Errorf("%w: [kafkagate] %s = %q: want a duration such as %s (at most 24h)", config.ErrConfig, key, v, example))
		}
		return d
	}
	s.RequestTimeout = durKey("request_timeout", "30s or 2m")
	s.IdleTimeout = durKey("idle_timeout", "120s or 5m")
	s.StreamSessionTimeout = durKey("stream_session_timeout", "10s or 45s")
	s.StreamRebalanceTimeout = durKey("stream_rebalance_timeout", "60s or 5m")
	s.StreamHeartbeatInterval = durKey("stream_heartbeat_interval", "3s")
	s.ConsumerInstanceTimeout = durKey("consumer_instance_timeout", "5m or 30s")
	s.ProduceIdleTimeout = durKey("produce_idle_timeout", "30s or 5m")
	drainKey := func(key string) (time.Duration, bool) {
		v := f.Get("kafkagate", key, "")
		if v == "" {
			return 0, false
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			errs = append(errs, fmt.Errorf("%w: [kafkagate] %s = %q: want a duration such as 5s or 0s (at most 1h)", config.ErrConfig, key, v))
		}
		return d, true
	}
	s.DrainDelay, s.DrainDelaySet = drainKey("drain_delay")
	s.DrainTimeout, s.DrainTimeoutSet = drainKey("drain_timeout")
	if v := f.Get("kafkagate", "rate_limit", ""); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			errs = append(errs, fmt.Errorf("%w: [kafkagate] rate_limit = %q: want requests per second (a number >= 0; 0 turns the limit off)", config.ErrConfig, v))
		}
		s.RateLimit = r
	}

	switch {
	case s.RateBurst > 0 && s.RateLimit <= 0:
		errs = append(errs, fmt.Errorf("%w: [kafkagate] rate_burst needs rate_limit", config.ErrConfig))
	case (s.TLSCert == "") != (s.TLSKey == ""):
		errs = append(errs, fmt.Errorf("%w: [kafkagate] tls_cert and tls_key go together", config.ErrConfig))
	case s.TLSClientCA != "" && s.TLSCert == "":
		errs = append(errs, fmt.Errorf("%w: [kafkagate] tls_client_ca needs tls_cert and tls_key (client certificates are checked by the TLS listener)", config.ErrConfig))
	case s.TLSClientCA != "" && s.AccessFile == "":
		errs = append(errs, fmt.Errorf("%w: [kafkagate] tls_client_ca needs access_file, which maps certificate subjects to principals and rights", config.ErrConfig))
	}
	return s, errors.Join(errs...)
}

// loadServing reads the settings and the access file (nil: no
// authentication) for New.
func loadServing(f *config.File) (Settings, *httpapi.Access, error) {
	s, err := ReadSettings(f)
	if err != nil {
		return s, nil, err
	}
	if s.AccessFile == "" {
		return s, nil, nil
	}
	a, err := httpapi.LoadAccess(s.AccessFile)
	if err != nil {
		return s, nil, fmt.Errorf("[kafkagate] access_file: %w", err)
	}
	return s, a, nil
}

// apply sets the API's limits from the settings.
func (s Settings) apply(c httpapi.Config) httpapi.Config {
	c.MaxBodyBytes = s.MaxBodyBytes
	c.MaxRecords = s.MaxRecords
	c.MaxHeaders = s.MaxHeaders
	c.MaxHeaderBytes = s.MaxHeaderBytes
	c.RequestTimeout = s.RequestTimeout
	c.ProduceIdleTimeout = s.ProduceIdleTimeout
	c.RateLimit = s.RateLimit
	c.RateBurst = s.RateBurst
	c.Stream.MaxPerPrincipal = s.MaxStreamsPerPrincipal
	c.Stream.SessionTimeout = s.StreamSessionTimeout
	c.Stream.RebalanceTimeout = s.StreamRebalanceTimeout
	c.Stream.HeartbeatInterval = s.StreamHeartbeatInterval
	c.MaxUploadsPerPrincipal = s.MaxUploadsPerPrincipal
	c.V2.IdleTimeout = s.ConsumerInstanceTimeout
	return c
}
