package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// ErrExposed is returned when the API would listen beyond loopback with
// authentication off.
var ErrExposed = errors.New("refusing to listen beyond loopback with authentication off")

// ServerTLS builds the listener's TLS configuration from tls_cert, tls_key
// and tls_client_ca; nil when tls_cert is unset (plain HTTP). With a
// client CA every client must present a certificate it verifies (the
// handshake fails otherwise). Certificates are read once: restart the
// gateway to pick up renewed files.
func ServerTLS(s Settings) (*tls.Config, error) {
	if s.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("[kafkagate] tls_cert/tls_key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}
	if s.TLSClientCA != "" {
		pem, err := os.ReadFile(s.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("[kafkagate] tls_client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("[kafkagate] tls_client_ca %s: no PEM certificate in it", s.TLSClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ListenTLS opens the API's listener, wrapped in TLS when cfg is not nil.
// Gateway.Serve serves it as it serves a plain one.
func ListenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	l, err := Listen(addr)
	if err != nil || cfg == nil {
		return l, err
	}
	return tls.NewListener(l, cfg), nil
}

// CheckExposure refuses a listen address that is not loopback when
// authentication is off: an unauthenticated gateway encrypts and decrypts
// for whoever can reach it.
func CheckExposure(addr string, authenticated bool) error {
	if authenticated || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: listen %q is not a loopback address and no access_file is configured; set [kafkagate] access_file (see docs/security.md) or listen on 127.0.0.1", ErrExposed, addr)
}

// IsLoopback reports whether a host:port listen address binds loopback
// only: localhost or a loopback IP. An empty host, 0.0.0.0, :: and other
// names are not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
