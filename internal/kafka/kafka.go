// Package kafka is kafkagate's Kafka layer over IBM/sarama, and the only
// package that imports sarama (kgclient, whose public API is sarama's, and
// the bench's plain-Kafka baselines aside). It maps the librdkafka-style
// properties of the configuration file's [default] section onto a sarama
// configuration, and provides:
//   - Client: the gateway's producer, stateless partition reader, live
//     streams and cluster lookups (topics, watermarks, consumer lag);
//   - Group: the one consumer-group runner (join and rebalance, claims,
//     offset marks and commits, static membership), which the bridge, the
//     file receiver and the group streams use;
//   - Producer: a standalone idempotent or transactional producer;
//   - Admin: topics, consumer groups and committed offsets.
package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
	"github.com/xdg-go/scram"
)

func init() {
	// sarama's go-metrics registry starts a process-wide ticker goroutine
	// that outlives every client; kafkagate exposes its own metrics.
	metrics.UseNilMetrics = true
}

// ErrUnavailable wraps failures to reach Kafka.
var ErrUnavailable = errors.New("kafka unavailable")

// ErrConfig wraps invalid Kafka properties.
var ErrConfig = errors.New("invalid kafka configuration")

// Settings is a resolved Kafka client configuration.
type Settings struct {
	Brokers []string
	Sarama  *sarama.Config
}

// known properties of [default] that kafkagate maps or deliberately ignores.
var (
	mapped  = []string{"bootstrap.servers", "security.protocol", "sasl.mechanisms", "sasl.mechanism", "sasl.username", "sasl.password", "message.max.bytes", "client.id", "session.timeout.ms", "acks", "ssl.ca.location", "enable.ssl.certificate.verification"}
	ignored = []string{"enable.metrics.push", "group.id", "auto.offset.reset"}
)

// Configure builds settings from librdkafka-style properties. Unknown keys
// are logged as warnings, never silently dropped.
func Configure(props map[string]string, logger *slog.Logger) (*Settings, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "kafkagate"
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 3
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Timeout = 10 * time.Second
	cfg.Producer.MaxMessageBytes = 1 << 20
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 15 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 2
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond

	s := &Settings{Sarama: cfg}
	for k := range props {
		if !slices.Contains(mapped, k) && !slices.Contains(ignored, k) {
			logger.Warn("unknown Kafka property ignored", "property", k)
		}
	}
	for _, b := range strings.Split(props["bootstrap.servers"], ",") {
		if b = strings.TrimSpace(b); b != "" {
			s.Brokers = append(s.Brokers, b)
		}
	}
	if len(s.Brokers) == 0 {
		return nil, fmt.Errorf("%w: bootstrap.servers is empty", ErrConfig)
	}
	if v := props["client.id"]; v != "" {
		cfg.ClientID = v
	}
	if v := props["message.max.bytes"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 {
			return nil, fmt.Errorf("%w: message.max.bytes %q is not an integer >= 1024", ErrConfig, v)
		}
		cfg.Producer.MaxMessageBytes = n
		if int32(n) > cfg.Consumer.Fetch.Default {
			cfg.Consumer.Fetch.Default = int32(n)
		}
	}
	proto := strings.ToUpper(strings.TrimSpace(props["security.protocol"]))
	switch proto {
	case "", "PLAINTEXT":
	case "SSL", "SASL_SSL":
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
		if v := strings.ToLower(props["enable.ssl.certificate.verification"]); v == "false" {
			logger.Warn("enable.ssl.certificate.verification=false: the broker's TLS certificate is NOT verified")
			cfg.Net.TLS.Config.InsecureSkipVerify = true
		}
	case "SASL_PLAINTEXT":
		logger.Warn("security.protocol=SASL_PLAINTEXT sends SASL credentials without TLS")
	default:
		return nil, fmt.Errorf("%w: security.protocol %q is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", ErrConfig, props["security.protocol"])
	}
	if strings.HasPrefix(proto, "SASL_") {
		mech := strings.ToUpper(strings.TrimSpace(firstNonEmpty(props["sasl.mechanisms"], props["sasl.mechanism"], "PLAIN")))
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = props["sasl.username"]
		cfg.Net.SASL.Password = props["sasl.password"]
		if cfg.Net.SASL.User == "" {
			return nil, fmt.Errorf("%w: %s needs sasl.username and sasl.password", ErrConfig, proto)
		}
		switch mech {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha256.New} }
		case "SCRAM-SHA-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha512.New} }
		default:
			return nil, fmt.Errorf("%w: sasl.mechanisms %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrConfig, mech)
		}
	} else if props["sasl.username"] != "" {
		logger.Warn("sasl.username is set but security.protocol is not SASL_*: credentials unused")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return s, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// scramClient adapts xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash func() hash.Hash
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := scram.HashGeneratorFcn(c.hash).NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram client: %w", err)
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }

// MaxMessageBytes is the largest record the producer sends
// (message.max.bytes).
func (s *Settings) MaxMessageBytes() int { return s.Sarama.Producer.MaxMessageBytes }
