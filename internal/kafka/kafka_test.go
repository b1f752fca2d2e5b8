package kafka

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

func TestConfigure(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := Configure(map[string]string{
		"bootstrap.servers": "a:9092, b:9093",
		"security.protocol": "SASL_SSL",
		"sasl.mechanisms":   "SCRAM-SHA-512",
		"sasl.username":     "u",
		"sasl.password":     "secret-pw",
		"message.max.bytes": "8388608",
		"client.id":         "me",
		"linger.ms":         "5",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Sarama
	if len(s.Brokers) != 2 || !c.Net.TLS.Enable || !c.Net.SASL.Enable || c.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 ||
		c.Producer.MaxMessageBytes != 8388608 || c.ClientID != "me" || c.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Fatalf("%+v", s)
	}
	if !strings.Contains(logs.String(), "linger.ms") {
		t.Fatalf("unknown key not warned: %s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-pw") {
		t.Fatal("password logged")
	}
	p, err := Configure(map[string]string{"bootstrap.servers": "a:1", "security.protocol": "plaintext"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || p.Sarama.Net.TLS.Enable || p.Sarama.Net.SASL.Enable {
		t.Fatalf("plaintext: %v", err)
	}
}

func TestConfigureRefuses(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, props := range map[string]map[string]string{
		"no brokers":     {},
		"bad protocol":   {"bootstrap.servers": "a:1", "security.protocol": "TLS"},
		"bad mechanism":  {"bootstrap.servers": "a:1", "security.protocol": "SASL_SSL", "sasl.mechanisms": "GSSAPI", "sasl.username": "u"},
		"no username":    {"bootstrap.servers": "a:1", "security.protocol": "SASL_SSL"},
		"bad max bytes":  {"bootstrap.servers": "a:1", "message.max.bytes": "lots"},
		"tiny max bytes": {"bootstrap.servers": "a:1", "message.max.bytes": "10"},
	} {
		if _, err := Configure(props, quiet); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
