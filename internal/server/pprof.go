package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// ServePprof serves Go's net/http/pprof profiles on addr, a loopback
// address of its own (profiles show internals and are never exposed on the
// API listener), until ctx ends or stop is called; stop waits for the
// server to end.
func ServePprof(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	if !IsLoopback(addr) {
		return nil, fmt.Errorf("--pprof %s: profiles are served on a loopback address only (e.g. 127.0.0.1:6060)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := NewHTTPServer(mux, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "error", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("pprof profiles served", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	return func() {
		cancel()
		<-done
	}, nil
}
