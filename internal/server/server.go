// Package server is what `gateway serve` and `gateway proxy` run: on a
// core.Core it builds the HTTP API (internal/httpapi), the live viewer
// (internal/ui) and the Kafka proxy (internal/kafkaproxy) with its TLS and
// SASL from the access file; it reads the [kafkagate] serving settings
// (listener, TLS, access file, limits) and serves with a graceful drain.
package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/httpapi"
)

// Options configure a gateway: the Core's options; the [kafkagate]
// serving keys come from Config.
type Options = core.Options

// Gateway is a Core with the HTTP API and the viewer served on it.
type Gateway struct {
	*core.Core
	API *httpapi.Server
	// Settings are the [kafkagate] serving keys; Access is the parsed
	// access_file (nil: authentication off).
	Settings Settings
	Access   *httpapi.Access
	// UI is the live viewer served under /ui (viewer.go); nil with
	// [kafkagate] ui = off.
	UI       http.Handler
	log      *slog.Logger
	draining atomic.Bool // set once Serve drains (drain.go)
}

// New reads the serving settings and the access file, opens a Core and
// builds the API and the viewer on it.
func New(o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	set, access, err := loadServing(o.Config)
	if err != nil {
		return nil, err
	}
	c, err := core.Open(o)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Core: c, Settings: set, Access: access, log: o.Logger}
	// The streaming file upload (POST .../topics/{topic}/files, docs/files.md).
	files, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: envelope.NewKMSKeys(c.Transit), Producer: c.Kafka,
		MaxMessageBytes: c.Kafka.Settings().MaxMessageBytes(), Logger: o.Logger})
	if err != nil {
		c.Close()
		return nil, err
	}
	g.API = httpapi.New(set.apply(httpapi.Config{Engine: c.Engine, Policies: o.Config.Policies, Kafka: c.Kafka, Vault: c.Vault, Logger: o.Logger, Access: access, Metrics: c.Metrics, Files: files, Admin: adminService{c}}))
	g.UI = g.newViewer()
	return g, nil
}

// Close closes the API's v2 consumer instances (they leave their groups),
// then the Core.
func (g *Gateway) Close() error {
	g.API.Close()
	return g.Core.Close()
}

// Listen opens the API's listener.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// DefaultIdleTimeout is how long an idle keep-alive connection is kept
// ([kafkagate] idle_timeout).
const DefaultIdleTimeout = 120 * time.Second

// NewHTTPServer is every HTTP server the product runs (the API, pprof,
// the bridge's metrics): headers within 10 s, idle keep-alive connections
// closed after idle (DefaultIdleTimeout when 0), so idle clients cannot
// hold connections for ever.
func NewHTTPServer(h http.Handler, idle time.Duration) *http.Server {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
}
