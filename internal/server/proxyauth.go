package server

import (
	"crypto/tls"
	"fmt"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/access/sasl"
	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
)

// ProxyAuth is the Kafka proxy's client side from g's settings: TLS from
// tls_cert, tls_key and tls_client_ca (ProxyTLS; none when tls_cert is
// unset), SASL logins (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) against the
// sasl lines of the access file, and client certificates mapped through
// its cert lines. A principal's rights are those of access.KafkaPrincipal.
// authed is false when no access file is configured: every client then
// has every right and the proxy must listen on loopback only.
func (g *Gateway) ProxyAuth() (o ProxyOptions, authed bool, err error) {
	if o.TLS, err = ProxyTLS(g.Settings); err != nil {
		return ProxyOptions{}, false, fmt.Errorf("kafka proxy: %w", err)
	}
	rules := g.Access.Rules()
	if rules == nil {
		return o, false, nil
	}
	srv, err := sasl.New(rules)
	if err != nil {
		return ProxyOptions{}, false, fmt.Errorf("kafka proxy: %w", err)
	}
	if rules.SASLUsers() == 0 && o.TLS == nil {
		g.log.Warn("kafka proxy: the access file has no sasl lines and there is no TLS: every Kafka client will be refused (see gateway token sasl)")
	}
	rights := func(principal string) kafkaproxy.Rights {
		p := rules.KafkaPrincipal(principal)
		if p == nil {
			return nil
		}
		return principalRights{p}
	}
	o.Auth, o.Rights = saslAuth{srv}, rights
	o.CertPrincipal = func(cs tls.ConnectionState) (string, kafkaproxy.Rights) {
		p := rules.ByConn(cs)
		if p == nil {
			return "", nil
		}
		return p.Name, rights(p.Name)
	}
	return o, true, nil
}

// saslAuth adapts sasl.Server to kafkaproxy.Authenticator.
type saslAuth struct{ s *sasl.Server }

func (a saslAuth) Mechanisms() []string { return a.s.Mechanisms() }

func (a saslAuth) Start(mechanism string) (kafkaproxy.SASLSession, error) {
	sess, err := a.s.Start(mechanism)
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// principalRights adapts an access principal to kafkaproxy.Rights.
type principalRights struct{ p *access.Principal }

func (r principalRights) Can(right, topic string) bool { return r.p.Can(access.Right(right), topic) }
