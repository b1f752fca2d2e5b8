package testkit

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"testing"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// TestTLS is a throwaway CA and a server certificate it issued for
// 127.0.0.1, written to a test's directory.
type TestTLS struct {
	CA                *devenv.TestCA
	Cert, Key, CAFile string // paths of the server certificate, its key and the CA certificate (ca.pem)
}

// ServerTLS makes a CA named caName, issues it a server certificate named
// cn for 127.0.0.1 and writes that as <name>.crt/.key, with the CA as
// ca.pem, to dir. It fails t on error.
func ServerTLS(t testing.TB, dir, caName, cn, name string) TestTLS {
	t.Helper()
	ca, err := devenv.NewTestCA(caName)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(cn, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := srv.Write(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return TestTLS{CA: ca, Cert: certPath, Key: keyPath, CAFile: WriteFile(t, dir, "ca.pem", string(ca.PEM))}
}

// ClientCert issues a client certificate for subject from ca, failing t
// on error.
func ClientCert(t testing.TB, ca *devenv.TestCA, subject pkix.Name) tls.Certificate {
	t.Helper()
	is, err := ca.IssueClient(subject)
	if err != nil {
		t.Fatal(err)
	}
	return is.TLS
}
