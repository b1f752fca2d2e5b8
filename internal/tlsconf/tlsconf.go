// Package tlsconf builds the server-side TLS configuration of kafkagate's
// listeners (the HTTP API and the Kafka proxy) from the [kafkagate]
// tls_cert, tls_key and tls_client_ca files.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files are a listener's PEM files: [kafkagate] tls_cert, tls_key and
// tls_client_ca.
type Files struct {
	Cert, Key string
	ClientCA  string // optional: require client certificates issued by it
}

// Server builds a listener's TLS configuration; nil when f.Cert is unset
// (plaintext). TLS 1.2 is the minimum. With a client CA every client must
// present a certificate it verifies (the handshake fails otherwise).
// nextProtos are the ALPN protocols offered ("http/1.1" for the API, none
// for Kafka). Files are read once: restart to pick up renewed ones.
func Server(f Files, nextProtos ...string) (*tls.Config, error) {
	if f.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("[kafkagate] tls_cert/tls_key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   nextProtos,
	}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("[kafkagate] tls_client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("[kafkagate] tls_client_ca %s: no PEM certificate in it", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
