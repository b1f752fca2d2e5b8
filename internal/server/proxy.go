package server

import (
	"crypto/tls"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
)

// ProxyOptions configure the Kafka proxy of a gateway.
type ProxyOptions struct {
	Addr           string // bootstrap listen address; broker N at port+1+N
	AdvertisedHost string // host written into broker addresses; default Addr's
	// Auth terminates SASL at the proxy (nil: no SASL, every client has
	// every right); Rights maps its principals to rights.
	Auth   kafkaproxy.Authenticator
	Rights func(principal string) kafkaproxy.Rights
	// TLS serves clients over TLS; CertPrincipal maps their verified
	// certificates to principals (see ProxyAuth).
	TLS           *tls.Config
	CertPrincipal func(tls.ConnectionState) (string, kafkaproxy.Rights)
}

// NewProxy builds the Kafka proxy on g's engine, policies and metrics,
// forwarding to g's Kafka cluster with the [default] credentials.
func (g *Gateway) NewProxy(o ProxyOptions) (*kafkaproxy.Proxy, error) {
	ks := g.Kafka.Settings()
	up := kafkaproxy.Upstream{Bootstrap: ks.Brokers}
	if n := ks.Sarama.Net; n.TLS.Enable {
		up.TLS = n.TLS.Config
	}
	if n := ks.Sarama.Net; n.SASL.Enable {
		m, err := upstreamSASL(n.SASL.Mechanism, n.SASL.User, n.SASL.Password)
		if err != nil {
			return nil, err
		}
		up.SASL = m
	}
	return kafkaproxy.New(kafkaproxy.Config{Addr: o.Addr, AdvertisedHost: o.AdvertisedHost, Upstream: up,
		Engine: g.Engine, Policies: g.Config.Policies, Auth: o.Auth, Rights: o.Rights, TLS: o.TLS, CertPrincipal: o.CertPrincipal, Logger: g.log, Observer: g.Metrics})
}

// upstreamSASL is franz-go's client mechanism for the [default] SASL
// settings.
func upstreamSASL(mech sarama.SASLMechanism, user, pass string) (sasl.Mechanism, error) {
	switch mech {
	case sarama.SASLTypePlaintext:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case sarama.SASLTypeSCRAMSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case sarama.SASLTypeSCRAMSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka proxy: upstream sasl mechanism %q is not supported", mech)
}
