package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/goleak"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// dialAt configures a client for the broker at addr and dials it.
func dialAt(t *testing.T, addr string) *Client {
	t.Helper()
	s, err := Configure(map[string]string{"bootstrap.servers": addr}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialKfake starts a kfake broker that allows auto-creation (as Apache
// Kafka does by default) and dials it.
func dialKfake(t *testing.T) *Client {
	t.Helper()
	kf, err := devenv.StartKafka(devenv.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)
	c := dialAt(t, kf.ListenAddrs()[0])
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func topicExists(t *testing.T, c *Client, topic string) bool {
	t.Helper()
	ok, err := c.TopicExists(topic)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestReadsNeverCreateTopics: against a broker that auto-creates topics,
// Partitions, Watermarks and Read of a topic that does not exist answer
// ErrUnknownTopic and leave it absent; producing to a new topic still
// creates it, and PartitionsForProduce creates a write target.
func TestReadsNeverCreateTopics(t *testing.T) {
	c := dialKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := c.Partitions("nope"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Partitions(nope): %v, want ErrUnknownTopic", err)
	}
	if _, _, err := c.Watermarks("nope", 0); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Watermarks(nope, 0): %v, want ErrUnknownTopic", err)
	}
	if _, err := c.Read(ctx, "nope", 0, sarama.OffsetOldest, 10); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Read(nope): %v, want ErrUnknownTopic", err)
	}
	if topicExists(t, c, "nope") {
		t.Fatal("a read created topic nope")
	}

	// Producing keeps auto-creation.
	ds, err := c.Produce(ctx, []Message{{Topic: "fresh", Partition: -1, Key: []byte("k"), Value: []byte("v1")}})
	if err != nil || ds[0].Err != nil {
		t.Fatalf("produce to a new topic: %v %+v", err, ds)
	}
	if !topicExists(t, c, "fresh") {
		t.Fatal("producing did not create topic fresh")
	}
	// The reader sees the topic the producer created, and its record.
	ps, err := c.Partitions("fresh")
	if err != nil || len(ps) != 3 {
		t.Fatalf("Partitions(fresh): %v %v", ps, err)
	}
	recs, err := c.Read(ctx, "fresh", ds[0].Partition, sarama.OffsetOldest, 10)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "v1" || recs[0].Offset != ds[0].Offset {
		t.Fatalf("read back: %+v %v", recs, err)
	}
	// A partition the topic does not have is unknown too.
	if _, _, err := c.Watermarks("fresh", 7); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Watermarks(fresh, 7): %v, want ErrUnknownTopic", err)
	}

	// A write target is created by asking as the producer.
	if topicExists(t, c, "target") {
		t.Fatal("target exists before")
	}
	tp, err := c.PartitionsForProduce("target")
	if err != nil || len(tp) != 3 {
		t.Fatalf("PartitionsForProduce(target): %v %v", tp, err)
	}
	if !topicExists(t, c, "target") {
		t.Fatal("PartitionsForProduce did not create the target on an auto-creating broker")
	}
	if _, hi, err := c.Watermarks("target", tp[0]); err != nil || hi != 0 {
		t.Fatalf("Watermarks(target): %d %v", hi, err)
	}
}

// TestCloseReleasesEveryClient: after Close no goroutine of the client's
// sarama clients is left (the explicit-partition producer's own client
// included).
func TestCloseReleasesEveryClient(t *testing.T) {
	kf, err := devenv.StartKafka(devenv.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	before := goleak.IgnoreCurrent()
	c := dialAt(t, kf.ListenAddrs()[0])
	if _, err := c.Partitions("t"); err != nil && !errors.Is(err, ErrUnknownTopic) {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
