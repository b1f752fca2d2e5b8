package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/tlsconf"
)

// TestServerMutualTLS serves a raw TLS listener (as the Kafka proxy does,
// no ALPN): a client certificate from the client CA completes the
// handshake and maps to its principal through a cert line; no certificate
// or one from another CA fails the handshake.
func TestServerMutualTLS(t *testing.T) {
	tt := testkit.ServerTLS(t, t.TempDir(), "clients", "proxy", "proxy")
	ca := tt.CA
	rogue, _ := devenv.NewTestCA("rogue")
	cfg, err := tlsconf.Server(tlsconf.Files{Cert: tt.Cert, Key: tt.Key, ClientCA: tt.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 0 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("config %+v", cfg)
	}
	a, err := access.Parse(strings.NewReader("cert CN=bridge bridge produce:orders\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		principal string
		err       error
	}
	results := make(chan result, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
			err = tc.Handshake()
			r := result{err: err}
			if p := a.ByConn(tc.ConnectionState()); p != nil {
				r.principal = p.Name
			}
			tc.Close()
			results <- r
		}
	}()
	dial := func(certs ...tls.Certificate) result {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), Certificates: certs})
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		r := <-results
		if err == nil {
			t.Fatal("the server closed without error but the client read data")
		}
		return r
	}
	bridge, _ := ca.IssueClient(pkix.Name{CommonName: "bridge"})
	stranger, _ := ca.IssueClient(pkix.Name{CommonName: "stranger"})
	rogueBridge, _ := rogue.IssueClient(pkix.Name{CommonName: "bridge"})
	if r := dial(bridge.TLS); r.err != nil || r.principal != "bridge" {
		t.Fatalf("bridge: %+v", r)
	}
	if r := dial(stranger.TLS); r.err != nil || r.principal != "" {
		t.Fatalf("a verified certificate without a cert line: %+v", r)
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA": {rogueBridge.TLS}} {
		if r := dial(certs...); r.err == nil || r.principal != "" {
			t.Fatalf("%s: handshake %+v", name, r)
		}
	}
}

func TestServerErrors(t *testing.T) {
	if cfg, err := tlsconf.Server(tlsconf.Files{}); cfg != nil || err != nil {
		t.Fatalf("no cert: %v %v", cfg, err)
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	_ = os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	ca, _ := devenv.NewTestCA("ca")
	is, _ := ca.IssueServer("s", nil, "localhost")
	certPath, keyPath, _ := is.Write(dir, "s")
	for _, c := range []struct {
		f    tlsconf.Files
		want string
	}{
		{tlsconf.Files{Cert: filepath.Join(dir, "missing"), Key: keyPath}, "tls_cert/tls_key"},
		{tlsconf.Files{Cert: certPath, Key: keyPath, ClientCA: filepath.Join(dir, "missing")}, "tls_client_ca"},
		{tlsconf.Files{Cert: certPath, Key: keyPath, ClientCA: notPEM}, "no PEM certificate"},
	} {
		if _, err := tlsconf.Server(c.f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%+v: %v", c.f, err)
		}
	}
}
