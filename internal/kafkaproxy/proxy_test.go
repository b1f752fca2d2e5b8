package kafkaproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const proxyConfig = `
[policy:orders]
mode = fields
fields = card transit, name plain

[policy:docs]
mode = envelope

[policy:open]
mode = passthrough

[policy:strict]
mode = fields
fields = card transit
fetch_failed = error

[policy:vaulted]
mode = fields
fields = card transit
fetch_denied = stored
`

// fixture is a gateway on Vault and kfake, its REST API and its proxy.
type fixture struct {
	env   *testkit.Env
	gw    *server.Gateway
	proxy string
	api   string
}

func setup(t *testing.T, o server.ProxyOptions) *fixture {
	t.Helper()
	return setupLogged(t, o, nil)
}

// setupLogged is setup with the gateway's and the proxy's logs in log
// (nil: discarded).
func setupLogged(t *testing.T, o server.ProxyOptions, log *slog.Logger) *fixture {
	t.Helper()
	env := testkit.Start(t)
	testkit.EnsureEnvelopeKEK(t, env)
	cfg := testkit.Config(t, proxyConfig)
	gw := testkit.Gateway(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second), Logger: log})
	return &fixture{env: env, gw: gw, proxy: testkit.StartProxy(t, gw, o), api: testkit.Serve(t, gw)}
}

// admin is a direct (not proxied) admin client on the broker.
func (f *fixture) admin(t *testing.T) *kafka.Admin {
	t.Helper()
	a, err := kafka.NewAdmin(f.gw.Kafka.Settings(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func saramaConfig() *sarama.Config {
	cfg := testkit.SaramaConfig()
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	return cfg
}

func produceSarama(t *testing.T, cfg *sarama.Config, addr, topic string, values ...string) {
	t.Helper()
	sp, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := make([]*sarama.ProducerMessage, len(values))
	for i, v := range values {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(fmt.Sprint("k", i)), Value: sarama.StringEncoder(v),
			Headers: []sarama.RecordHeader{{Key: []byte("app"), Value: []byte("x")}}}
	}
	if err := sp.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func orderValue(i int) string {
	return fmt.Sprintf(`{"id":%d,"name":"Ada %d","card":"4111-1111-1111-%04d"}`, i, i, i)
}

// assertStoredEncrypted reads topic straight from the broker: every value
// is protected and holds none of the plaintext secrets.
func assertStoredEncrypted(t *testing.T, f *fixture, topic string, n int, secrets ...string) []kafka.Record {
	t.Helper()
	recs := testkit.Stored(t, f.gw.Kafka, topic)
	if len(recs) != n {
		t.Fatalf("%s: %d records stored, want %d", topic, len(recs), n)
	}
	for _, r := range recs {
		for _, s := range secrets {
			if bytes.Contains(r.Value, []byte(s)) {
				t.Fatalf("%s offset %d: plaintext %q stored", topic, r.Offset, s)
			}
		}
		c := f.gw.Engine.Classify(r)
		if c.Err != nil {
			t.Fatalf("%s offset %d: %v", topic, r.Offset, c.Err)
		}
		switch topic {
		case "docs":
			if c.Format != protect.FormatEnvelope {
				t.Fatalf("%s offset %d: format %s, want envelope", topic, r.Offset, c.Format)
			}
		default:
			if c.Format != protect.FormatFields || !bytes.Contains(r.Value, []byte(`"card":"vault:v1:`)) {
				t.Fatalf("%s offset %d: not field-encrypted: %s", topic, r.Offset, r.Value)
			}
		}
	}
	return recs
}

func TestSaramaProduceEncryptsAndGroupConsumeDecrypts(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	var orders, docs, secrets []string
	for i := range 20 {
		orders = append(orders, orderValue(i))
		secrets = append(secrets, fmt.Sprintf("4111-1111-1111-%04d", i))
		docs = append(docs, fmt.Sprintf("confidential document %d %s", i, strings.Repeat("z", 300)))
	}
	produceSarama(t, saramaConfig(), f.proxy, "orders", orders...)
	produceSarama(t, saramaConfig(), f.proxy, "docs", docs...)
	assertStoredEncrypted(t, f, "orders", 20, secrets...)
	for _, r := range assertStoredEncrypted(t, f, "docs", 20, "confidential") {
		if v, ok := r.Header("app"); !ok || string(v) != "x" {
			t.Fatalf("docs offset %d: client header lost: %v", r.Offset, r.Headers)
		}
	}

	for topic, want := range map[string][]string{"orders": orders, "docs": docs} {
		got := consumeGroup(t, f.proxy, "g-"+topic, topic, len(want))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s through the proxy: got %d records, first %.60q, want first %.60q", topic, len(got), got[0], want[0])
		}
		// The group's commit went through the proxy to the broker.
		offs, err := f.admin(t).CommittedOffsets("g-"+topic, topic, []int32{0})
		if err != nil {
			t.Fatal(err)
		}
		if offs[0].Offset != int64(len(want)) {
			t.Fatalf("%s: committed offset %d, want %d", topic, offs[0].Offset, len(want))
		}
	}
}

// consumeGroup reads n records of topic partition 0 through addr in a
// consumer group, marks and commits them, and returns their values.
func consumeGroup(t *testing.T, addr, group, topic string, n int) []string {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := &groupHandler{n: n, done: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
	}
	if len(h.values) < n {
		t.Fatalf("%s: %d of %d records consumed", topic, len(h.values), n)
	}
	return h.values
}

type groupHandler struct {
	n      int
	values []string
	done   func()
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.values = append(h.values, string(m.Value))
		s.MarkMessage(m, "")
		if len(h.values) >= h.n {
			s.Commit()
			h.done()
			return nil
		}
	}
	return nil
}
