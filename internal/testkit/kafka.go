package testkit

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/server"
)

// HighWatermarks sums the high watermarks of a topic's partitions: the
// number of records ever produced to it (0 for a topic that does not
// exist).
func HighWatermarks(t testing.TB, kc *kafka.Client, topic string) int64 {
	t.Helper()
	return sumWatermarks(t, kc, topic, false)
}

// Records counts the records a topic holds: the sum of its partitions'
// extents, high minus low watermark (0 for a topic that does not exist).
func Records(t testing.TB, kc *kafka.Client, topic string) int64 {
	t.Helper()
	return sumWatermarks(t, kc, topic, true)
}

func sumWatermarks(t testing.TB, kc *kafka.Client, topic string, extent bool) int64 {
	t.Helper()
	parts, err := kc.Partitions(topic)
	if errors.Is(err, kafka.ErrUnknownTopic) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		lo, hi, err := kc.Watermarks(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if !extent {
			lo = 0
		}
		n += hi - lo
	}
	return n
}

// Stored reads every record of a topic as stored (no decryption),
// partition by partition; nil for a topic that does not exist.
func Stored(t testing.TB, kc *kafka.Client, topic string) []kafka.Record {
	t.Helper()
	parts, err := kc.Partitions(topic)
	if errors.Is(err, kafka.ErrUnknownTopic) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var all []kafka.Record
	for _, p := range parts {
		recs, err := kc.Read(context.Background(), topic, p, -2, 10000)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	return all
}

// Seal encrypts values by topic's policy in gw and returns them as
// messages for partition 0 of topic.
func Seal(t testing.TB, gw *server.Gateway, topic string, values ...[]byte) []kafka.Message {
	t.Helper()
	p, _ := gw.Config.Policies.For(topic)
	sealed, err := gw.Engine.Encrypt(context.Background(), p, values)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]kafka.Message, len(sealed))
	for i, s := range sealed {
		msgs[i] = kafka.Message{Topic: topic, Partition: 0, Value: s.Value, Headers: s.Headers}
	}
	return msgs
}

// Produce writes msgs and fails t unless every one was delivered.
func Produce(t testing.TB, kc *kafka.Client, msgs ...kafka.Message) []kafka.Delivery {
	t.Helper()
	ds, err := kc.Produce(context.Background(), msgs)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	for _, d := range ds {
		if d.Err != nil {
			t.Fatalf("produce: %+v", ds)
		}
	}
	return ds
}

// KafkaClient dials ks and closes the client when t ends.
func KafkaClient(t testing.TB, ks *kafka.Settings) *kafka.Client {
	t.Helper()
	kc, err := kafka.Dial(ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	return kc
}

// TopicExists asks kc for the full topic list (creating no topic).
func TopicExists(t testing.TB, kc *kafka.Client, topic string) bool {
	t.Helper()
	ok, err := kc.TopicExists(topic)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// KafkaSettings configures a Kafka client for brokers, with more client
// properties given as key, value pairs, logging nowhere.
func KafkaSettings(t testing.TB, brokers []string, props ...string) *kafka.Settings {
	t.Helper()
	m := map[string]string{"bootstrap.servers": strings.Join(brokers, ",")}
	for i := 0; i+1 < len(props); i += 2 {
		m[props[i]] = props[i+1]
	}
	ks, err := kafka.Configure(m, Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}
