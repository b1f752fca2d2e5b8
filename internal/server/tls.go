package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/kafkagate/kafkagate/internal/tlsconf"
)

// ErrExposed is returned when the API would listen beyond loopback with
// authentication off.
var ErrExposed = errors.New("refusing to listen beyond loopback with authentication off")

// ServerTLS builds the API listener's TLS configuration from tls_cert,
// tls_key and tls_client_ca (tlsconf.Server, offering HTTP/1.1); nil when
// tls_cert is unset (plain HTTP).
func ServerTLS(s Settings) (*tls.Config, error) {
	return tlsconf.Server(s.tlsFiles(), "http/1.1")
}

// ProxyTLS builds the Kafka proxy listener's TLS configuration from the
// same tls_cert, tls_key and tls_client_ca (no ALPN: Kafka clients do not
// negotiate one); nil when tls_cert is unset (plaintext).
func ProxyTLS(s Settings) (*tls.Config, error) {
	return tlsconf.Server(s.tlsFiles())
}

func (s Settings) tlsFiles() tlsconf.Files {
	return tlsconf.Files{Cert: s.TLSCert, Key: s.TLSKey, ClientCA: s.TLSClientCA}
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
