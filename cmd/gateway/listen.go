package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/server"
)

// serveSettings reads the serving settings, refuses a non-loopback listen
// address without authentication and loads the listener's TLS files, all
// before anything is dialled.
func serveSettings(cfg *config.File, listen string) (server.Settings, *tls.Config, error) {
	set, err := server.ReadSettings(cfg)
	if err != nil {
		return set, nil, err
	}
	if err := server.CheckExposure(listen, set.AccessFile != ""); err != nil {
		return set, nil, err
	}
	tc, err := server.ServerTLS(set)
	return set, tc, err
}

// openServeListener opens the API listener and says how it is protected.
func openServeListener(gw *server.Gateway, listen string, tc *tls.Config, log *slog.Logger) (net.Listener, error) {
	l, err := server.ListenTLS(listen, tc)
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	switch {
	case gw.Access == nil && !server.IsLoopback(addr):
		// "localhost" resolved to something else.
		l.Close()
		return nil, server.CheckExposure(addr, false)
	case gw.Access == nil:
		log.Warn("authentication is off: listening on loopback only", "listen", addr)
	case tc == nil && !server.IsLoopback(addr):
		log.Warn("bearer tokens travel in cleartext: set [kafkagate] tls_cert and tls_key, or terminate TLS in front of the gateway", "listen", addr)
	}
	if gw.Access != nil {
		log.Info("authentication is on", "credentials", gw.Access.Principals(), "client_certificates", gw.Settings.TLSClientCA != "",
			"rate_limit", fmt.Sprint(gw.Settings.RateLimit))
	}
	return l, nil
}
