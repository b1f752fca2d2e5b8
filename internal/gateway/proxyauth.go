package gateway

import (
	"fmt"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/access/sasl"
	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
)

// ProxyAuth is the Kafka proxy's SASL login (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) against the sasl lines of g's access file, and the
// rights of the principals it logs in (see access.KafkaPrincipal). ok is
// false when no access file is configured: the proxy then runs without
// SASL and must listen on loopback only.
func (g *Gateway) ProxyAuth() (o ProxyOptions, ok bool, err error) {
	rules := g.Access.Rules()
	if rules == nil {
		return ProxyOptions{}, false, nil
	}
	srv, err := sasl.New(rules)
	if err != nil {
		return ProxyOptions{}, false, fmt.Errorf("kafka proxy: %w", err)
	}
	if rules.SASLUsers() == 0 {
		g.log.Warn("kafka proxy: the access file has no sasl lines: every Kafka client login will be refused (see gateway token sasl)")
	}
	return ProxyOptions{Auth: saslAuth{srv}, Rights: func(principal string) kafkaproxy.Rights {
		p := rules.KafkaPrincipal(principal)
		if p == nil {
			return nil
		}
		return principalRights{p}
	}}, true, nil
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
