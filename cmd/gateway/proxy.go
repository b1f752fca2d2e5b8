package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
	"github.com/kafkagate/kafkagate/internal/server"
)

func newProxyCmd(g *globals) *cobra.Command {
	var listen, advertised, metricsAddr, pprofAddr string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the Kafka protocol proxy: Kafka clients produce and fetch through it, encrypted by the topic policies (docs/proxy.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Metrics are served without authentication: loopback only.
			var metricsLn net.Listener
			if metricsAddr != "" {
				if !server.IsLoopback(metricsAddr) {
					return fmt.Errorf("--metrics-listen %s: metrics are served without authentication, so on a loopback address only (e.g. 127.0.0.1:9464)", metricsAddr)
				}
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-listen %s: %w", metricsAddr, err)
				}
				defer ln.Close()
				metricsLn = ln
			}
			log, cfg, err := g.loggerAndConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				stop, err := server.ServePprof(cmd.Context(), pprofAddr, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			gw, err := server.New(g.coreOptions(log, cfg))
			if err != nil {
				return err
			}
			defer gw.Close()
			if metricsLn != nil {
				stop := serveMetrics(metricsLn, gw.Core, log)
				defer stop()
			}
			// With an access file, clients log in with SASL against its
			// sasl lines or a certificate of its cert lines. Without one
			// every client has every right, so the proxy listens on
			// loopback only, as serve does.
			o, authed, err := gw.ProxyAuth()
			if err != nil {
				return err
			}
			if err := server.CheckExposure(listen, authed); err != nil {
				return err
			}
			o.Addr, o.AdvertisedHost = listen, advertised
			px, err := startProxy(cmd.Context(), gw, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kafka proxy on %s (topics with a policy: %s)\n", px.addr, strings.Join(cfg.Policies.Topics(), ","))
			return px.wait()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9192", "bootstrap address; the broker with node id N is served on port+1+N")
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (loopback only): requests by API and result, records by mode, Vault calls")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	cmd.Flags().StringVar(&advertised, "advertised", "", "host written into the broker addresses clients are sent to (default: the listen host)")
	return cmd
}

// runningProxy is a proxy served until its context ends.
type runningProxy struct {
	addr string
	done chan error
}

// wait returns Serve's result once the context has ended.
func (r *runningProxy) wait() error { return <-r.done }

// startProxy builds the Kafka proxy on gw and serves it until ctx ends.
func startProxy(ctx context.Context, gw *server.Gateway, o server.ProxyOptions) (*runningProxy, error) {
	px, err := gw.NewProxy(o)
	if err != nil {
		return nil, err
	}
	r := &runningProxy{addr: px.Addr(), done: make(chan error, 1)}
	go func(p *kafkaproxy.Proxy) { r.done <- p.Serve(ctx) }(px)
	return r, nil
}

// serveMetrics serves gw's Prometheus registry at /metrics on ln until
// the returned stop is called.
func serveMetrics(ln net.Listener, gw *core.Core, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", gw.Metrics.Handler())
	srv := server.NewHTTPServer(mux, 0)
	served := make(chan struct{})
	go func() { // ends when stop shuts the server down
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}
}
