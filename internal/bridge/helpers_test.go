package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/goleak"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

// marker starts every plaintext value of an encrypted field; base64 has no
// "-", so it cannot occur inside a Vault ciphertext.
const marker = "pt-"

type fixture struct {
	t     *testing.T
	env   *testkit.Env
	ks    *kafka.Settings
	eng   *protect.Engine
	pol   *policy.Policy
	cl    sarama.Client
	admin sarama.ClusterAdmin
	logs  *testkit.SyncBuffer
}

// setup starts Vault and kfake; vaultTimeout bounds each Vault call of the
// bridge's engine.
func setup(t *testing.T, vaultTimeout time.Duration, polKV map[string]string) *fixture {
	t.Helper()
	return setupOn(t, testkit.Start(t), vaultTimeout, polKV)
}

// setupOn is setup on a Vault and broker already started.
func setupOn(t *testing.T, env *testkit.Env, vaultTimeout time.Duration, polKV map[string]string) *fixture {
	t.Helper()
	ks := testkit.KafkaSettings(t, env.Brokers)
	if polKV == nil {
		polKV = map[string]string{"fields": "Name transit, Address transit"}
	}
	pol, err := policy.Parse("enc", polKV)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Transit.EnsureKey(context.Background(), pol.TransitKey, transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	if pol.Mode == policy.Envelope {
		if err := env.Transit.EnsureKey(context.Background(), pol.Envelope.Key, transit.KeySpec{Derived: true}); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policy.NewSet(pol)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cl, err := sarama.NewClient(env.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() }) // closes cl too
	eng, _ := testkit.Engine(t, env, set, vaultTimeout)
	f := &fixture{t: t, env: env, ks: ks, eng: eng, pol: pol, cl: cl, admin: admin, logs: &testkit.SyncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			s := f.logs.String()
			if len(s) > 20000 {
				s = "…" + s[len(s)-20000:]
			}
			t.Logf("bridge log:\n%s", s)
		}
	})
	return f
}

func (f *fixture) createTopic(name string, parts int32) {
	f.t.Helper()
	if err := f.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: parts, ReplicationFactor: 1}, false); err != nil {
		f.t.Fatalf("create topic %s: %v", name, err)
	}
}

// goodValue is record i's plaintext value.
func goodValue(i int) []byte {
	return fmt.Appendf(nil, `{"id":%d,"Name":"%sname-%d","Address":"%saddr-%d, Springfield","loyalty":"gold"}`, i, marker, i, marker, i)
}

// produce writes records from..from+n-1 to topic: key k-<i>, header
// trace=t-<i>, timestamp base+i ms, and on every 10th record a forged
// kafkagate.fields header. value(i) gives the value (default goodValue).
func (f *fixture) produce(topic string, from, n int, value func(int) []byte) {
	f.t.Helper()
	p, err := sarama.NewSyncProducerFromClient(f.cl)
	if err != nil {
		f.t.Fatal(err)
	}
	defer p.Close()
	if value == nil {
		value = goodValue
	}
	var msgs []*sarama.ProducerMessage
	flush := func() {
		if err := p.SendMessages(msgs); err != nil {
			f.t.Fatalf("produce: %v", err)
		}
		msgs = msgs[:0]
	}
	for i := from; i < from+n; i++ {
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k-%d", i)),
			Value: sarama.ByteEncoder(value(i)), Timestamp: baseTime.Add(time.Duration(i) * time.Millisecond),
			Headers: []sarama.RecordHeader{{Key: []byte("trace"), Value: fmt.Appendf(nil, "t-%d", i)}}}
		if i%10 == 0 {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte("kafkagate.fields"), Value: []byte(`{"v":1,"f":[]}`)})
		}
		msgs = append(msgs, m)
		if len(msgs) == 1000 {
			flush()
		}
	}
	if len(msgs) > 0 {
		flush()
	}
}

// bridgeAll creates topics plain and enc with parts partitions each (and
// enc.dlq with one when dlq), produces records 0..n-1 to plain (value as
// for produce), runs one bridge from plain to enc until its group has
// committed the end of plain (within limit), and stops it. took is the
// time from the bridge's start to that commit.
func (f *fixture) bridgeAll(parts int32, n int, value func(int) []byte, dlq bool, limit time.Duration) (r *running, took time.Duration) {
	f.t.Helper()
	f.createTopic("plain", parts)
	f.createTopic("enc", parts)
	if dlq {
		f.createTopic("enc.dlq", 1)
	}
	f.produce("plain", 0, n, value)
	start := time.Now()
	r = f.start(f.config("plain", "enc"))
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", limit)
	took = time.Since(start)
	r.stop(f.t)
	return r, took
}

var baseTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// running is a bridge started by start.
type running struct {
	b      *bridge.Bridge
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

// stop cancels the bridge and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run returned %v", r.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("bridge did not stop within 60 s")
	}
}

func (f *fixture) config(source, target string) bridge.Config {
	return bridge.Config{
		Source: source, Target: target, Policy: f.pol, Engine: f.eng, Kafka: f.ks,
		SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		StatsInterval: -1,
		Logger:        slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

func (f *fixture) start(cfg bridge.Config) *running {
	f.t.Helper()
	b, err := bridge.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{b: b, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = b.Run(ctx)
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
		}
	})
	return r
}

// ends returns the high watermark of each partition of topic.
func (f *fixture) ends(topic string) map[int32]int64 {
	f.t.Helper()
	if err := f.cl.RefreshMetadata(topic); err != nil {
		f.t.Fatal(err)
	}
	parts, err := f.cl.Partitions(topic)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		hi, err := f.cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			f.t.Fatal(err)
		}
		out[p] = hi
	}
	return out
}

// committed returns the group's committed offsets of topic.
func (f *fixture) committed(group, topic string, parts map[int32]int64) map[int32]int64 {
	f.t.Helper()
	req := map[string][]int32{topic: nil}
	for p := range parts {
		req[topic] = append(req[topic], p)
	}
	resp, err := f.admin.ListConsumerGroupOffsets(group, req)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return map[int32]int64{} // kfake: the group has not joined yet
	}
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int32]int64{}
	for p := range parts {
		if blk := resp.GetBlock(topic, p); blk != nil {
			out[p] = blk.Offset
		}
	}
	return out
}

// waitCommitted waits until the group has committed the end of every
// partition of topic.
func (f *fixture) waitCommitted(group, topic string, timeout time.Duration) {
	f.t.Helper()
	ends := f.ends(topic)
	deadline := time.Now().Add(timeout)
	for {
		got := f.committed(group, topic, ends)
		ok := true
		for p, e := range ends {
			if got[p] != e {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("group %s: committed %v, want the ends %v", group, got, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAll reads every record of topic as a read_committed consumer sees it.
func (f *fixture) readAll(topic string) []*sarama.ConsumerMessage {
	f.t.Helper()
	return testkit.ReadAll(f.t, f.env.Brokers, topic)
}

// header returns the value of the first header named name, or nil.
func header(m *sarama.ConsumerMessage, name string) []byte {
	for _, h := range m.Headers {
		if string(h.Key) == name {
			return h.Value
		}
	}
	return nil
}

func headerCount(m *sarama.ConsumerMessage, name string) int {
	n := 0
	for _, h := range m.Headers {
		if string(h.Key) == name {
			n++
		}
	}
	return n
}

// targetIDs checks every target record (encrypted, no plaintext, forged
// headers gone) and counts the ids; it returns id -> copies.
func targetIDs(t *testing.T, msgs []*sarama.ConsumerMessage) map[int]int {
	t.Helper()
	ids := map[int]int{}
	for _, m := range msgs {
		if bytes.Contains(m.Value, []byte(marker)) {
			t.Fatalf("plaintext in target %s/%d@%d: %.200s", m.Topic, m.Partition, m.Offset, m.Value)
		}
		for _, h := range m.Headers {
			if bytes.Contains(h.Value, []byte(marker)) {
				t.Fatalf("plaintext in a header of %s/%d@%d", m.Topic, m.Partition, m.Offset)
			}
		}
		var v struct {
			ID      int    `json:"id"`
			Name    string `json:"Name"`
			Address string `json:"Address"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("target record %d@%d is not JSON: %v", m.Partition, m.Offset, err)
		}
		if !strings.HasPrefix(v.Name, "vault:v") || !strings.HasPrefix(v.Address, "vault:v") {
			t.Fatalf("target record %d@%d not encrypted: %.200s", m.Partition, m.Offset, m.Value)
		}
		if headerCount(m, protect.HeaderFields) != 1 || bytes.Equal(header(m, protect.HeaderFields), []byte(`{"v":1,"f":[]}`)) {
			t.Fatalf("target record %d@%d: kafkagate.fields header missing, repeated or forged", m.Partition, m.Offset)
		}
		ids[v.ID]++
	}
	return ids
}

// lossAndDups compares ids with 0..n-1 (minus skip): missing ids are
// fatal; it returns the number of extra copies.
func lossAndDups(t *testing.T, ids map[int]int, n int, skip func(int) bool) (dups int) {
	t.Helper()
	var missing []int
	for i := 0; i < n; i++ {
		if skip != nil && skip(i) {
			if ids[i] != 0 {
				t.Fatalf("record %d should not be in the target", i)
			}
			continue
		}
		switch c := ids[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dups += c - 1
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d records lost, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if len(ids) > n {
		t.Fatalf("target has %d distinct ids, want at most %d", len(ids), n)
	}
	return dups
}
