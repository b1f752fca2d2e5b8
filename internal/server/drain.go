package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
)

// The serve command's drain defaults (--drain-delay, --drain-timeout).
const (
	DefaultDrainDelay   = 5 * time.Second
	DefaultDrainTimeout = 25 * time.Second
)

// streamGrace is how long handlers get to return once the drain timeout
// has cancelled their contexts.
const streamGrace = 2 * time.Second

// Drain is how Serve stops once its context ends:
//
//  1. /readyz answers 503 at once (/healthz stays 200) and responses carry
//     "Connection: close", so clients and load balancers move away;
//  2. the listener keeps accepting and serving for Delay, so a load
//     balancer health-checking /readyz notices first;
//  3. the server stops accepting and waits up to Timeout for requests and
//     streams in flight (produce streams stop reading at once, report
//     every record they have read and end their answers); at Timeout the request contexts are cancelled,
//     so streams end cleanly (a stream's last batch is complete), and the
//     handlers get a few more seconds to return.
//
// Serve then returns; the caller closes the gateway (Close: the producer
// flushes, then the Vault client closes).
type Drain struct {
	Delay   time.Duration
	Timeout time.Duration
}

// Draining reports whether Serve has begun to drain.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// Serve serves the API on l until ctx ends, then drains with
// g.Settings' drain_delay and drain_timeout (no delay, 10 s when unset).
func (g *Gateway) Serve(ctx context.Context, l net.Listener) error {
	d := Drain{Delay: g.Settings.DrainDelay, Timeout: g.Settings.DrainTimeout}
	if !g.Settings.DrainTimeoutSet {
		d.Timeout = 10 * time.Second
	}
	return g.ServeDrain(ctx, l, d)
}

// ServeDrain serves the API on l until ctx ends, then drains as d says.
// It returns nil after a clean drain, even when streams had to be ended
// at the deadline, and an error when handlers outlived it.
func (g *Gateway) ServeDrain(ctx context.Context, l net.Listener, d Drain) error {
	// Handlers' contexts derive from base: cancelling it ends streams.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := NewHTTPServer(g.readiness(g.Handler()), g.Settings.IdleTimeout)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	// Produce streams stop reading, report what they read and end when
	// the listener closes.
	srv.RegisterOnShutdown(g.API.BeginDrain)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	g.draining.Store(true)
	srv.SetKeepAlivesEnabled(false)
	g.log.Info("draining: /readyz answers 503", "drain_delay", d.Delay.String(), "drain_timeout", d.Timeout.String())
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("http server: %w", err)
		}
	}
	g.log.Info("draining: listener closed, waiting for requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	err := srv.Shutdown(sctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		g.log.Info("draining: drain timeout reached, ending streams and requests in flight")
		cancelBase()
		gctx, gcancel := context.WithTimeout(context.Background(), streamGrace)
		err = srv.Shutdown(gctx)
		gcancel()
		if err != nil {
			_ = srv.Close()
			err = fmt.Errorf("drain: handlers still running %s after the drain timeout: %w", streamGrace, err)
		}
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	g.log.Info("draining: server stopped", "drain_ms", time.Since(start).Milliseconds())
	return err
}

// readiness answers /readyz with 503 once the gateway drains; everything
// else, /healthz included, goes to h.
func (g *Gateway) readiness(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && g.draining.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", httpapi.RetryAfterSeconds)
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "draining"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
