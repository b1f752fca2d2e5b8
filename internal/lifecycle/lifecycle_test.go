package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

const lifecycleConfig = `
[kafkagate]
fpe_refresh = 200ms

[policy:orders]
fields =
    Name        transit
    credit_card fpe format=full domain=payments.card_number

[policy:orders_v2]
transit_key = kafka-orders
fields =
    Name        transit
    credit_card fpe format=full domain=payments.card_number

[policy:events]
aad = off
fields = Name transit

[policy:events_v2]
aad = off
transit_key = kafka-events
fields = Name transit

[policy:events_v3]
aad = off
fields = Name transit

[policy:docs]
mode = envelope
dek = per-message

[policy:docs_v2]
mode = envelope
dek = per-message
rewrapped_from = docs

[policy:mixed_v2]
fields = Name transit

[policy:mixed]
mode = envelope
legacy = accept

[policy:files]
mode = envelope
legacy = accept

[policy:files_v2]
mode = envelope
legacy = accept
`

type lcFixture struct {
	env *testkit.Env
	gw  *server.Gateway
}

func setupLifecycle(t *testing.T) *lcFixture {
	t.Helper()
	env := testkit.StartWith(t, devenv.KafkaOptions{FastGroups: true, SeedTopics: []string{"orders", "orders_v2", "events", "events_v2", "events_v3", "docs", "docs_v2", "files", "files_v2", "orders.dlq", "orders_v2.dlq", "mixed", "mixed_v2", "mixed_v2.dlq"}})
	cfg := testkit.Config(t, lifecycleConfig)
	ctx := context.Background()
	for _, k := range []string{"kafka-orders", "kafka-events", "kafka-events_v3"} {
		if err := env.Transit.EnsureKey(ctx, k, transit.KeySpec{}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.EnsureEnvelopeKEK(t, env)
	testkit.EnsureFPEDomains(t, env, cfg, "payments.card_number")
	gw := testkit.Gateway(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 5*time.Second)})
	return &lcFixture{env: env, gw: gw}
}

// retireVersion1 raises min_decryption_version to 2 on each transit key.
func (f *lcFixture) retireVersion1(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := f.env.Transit.Configure(context.Background(), k, map[string]any{"min_decryption_version": 2}); err != nil {
			t.Fatal(err)
		}
	}
}

var cards = []string{"2516-2848-6785-9087", "5425 2334 3010 9903", "4111111111111111"}

// produce encrypts values for topic by its policy and writes them.
func (f *lcFixture) produce(t *testing.T, topic string, values [][]byte) {
	t.Helper()
	ctx := context.Background()
	p, _ := f.gw.Config.Policies.For(topic)
	recs := make([]protect.Record, len(values))
	for i, v := range values {
		recs[i] = protect.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: v}
	}
	sealed, err := f.gw.Engine.EncryptRecords(ctx, p, recs)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]kafka.Message, len(sealed))
	for i, s := range sealed {
		if s.Err != nil {
			t.Fatalf("%s record %d: %v", topic, i, s.Err)
		}
		msgs[i] = kafka.Message{Topic: topic, Partition: int32(i % 3), Key: recs[i].Key, Value: s.Value, Headers: s.Headers}
	}
	if err := produceMsgs(ctx, f.gw.Kafka, msgs); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every record of topic (all partitions).
func (f *lcFixture) readAll(t *testing.T, topic string) []kafka.Record {
	t.Helper()
	var out []kafka.Record
	for p := int32(0); p < 3; p++ {
		recs, err := f.gw.Kafka.Read(context.Background(), topic, p, -2, 10000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

func inventory(t *testing.T, f *lcFixture, topic string) *lifecycle.Inventory {
	t.Helper()
	inv, err := lifecycle.TakeInventory(context.Background(), f.gw.Kafka, f.gw.Engine, topic, lifecycle.InventoryOptions{Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func wantVersions(t *testing.T, inv *lifecycle.Inventory, kind, key string, want ...int) {
	t.Helper()
	got := inv.Versions(kind, key)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var b bytes.Buffer
		_ = inv.WriteTable(&b)
		t.Fatalf("%s: %s %s versions %v, want %v\n%s", inv.Topic, kind, key, got, want, b.String())
	}
}

// TestRotateInventoryRewrapRetire walks the key lifecycle: rotate ->
// inventory shows two versions -> rewrap -> inventory of the copy shows
// one -> min_decryption_version raised -> every rewrapped record still
// decrypts, and the un-rewrapped originals fail with a typed error.
func TestRotateInventoryRewrapRetire(t *testing.T) {
	f := setupLifecycle(t)
	ctx := context.Background()
	const half = 12
	plain := map[string][][]byte{}
	gen := func(topic string, from int) [][]byte {
		var vs [][]byte
		for i := from; i < from+half; i++ {
			switch topic {
			case "orders":
				vs = append(vs, []byte(fmt.Sprintf(`{"Name":"name-%d","credit_card":"%s","n":%d}`, i, cards[i%len(cards)], i)))
			case "events":
				vs = append(vs, []byte(fmt.Sprintf(`{"Name":"event-%d","n":%d}`, i, i)))
			case "docs":
				vs = append(vs, []byte(fmt.Sprintf("document %d %s", i, strings.Repeat("x", i*10))))
			}
		}
		plain[topic] = append(plain[topic], vs...)
		return vs
	}
	topics := []string{"orders", "events", "docs"}
	for _, tp := range topics {
		f.produce(t, tp, gen(tp, 0))
	}
	for _, tp := range topics {
		rot, err := f.gw.RotateTopicKeys(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rot {
			if r.Version != 2 {
				t.Fatalf("rotate %s: %+v, want version 2", tp, r)
			}
		}
	}
	for _, tp := range topics {
		f.produce(t, tp, gen(tp, half))
	}

	kek := "transit/" + envelope.DefaultKEK
	inv := inventory(t, f, "orders")
	wantVersions(t, inv, protect.UseTransit, "kafka-orders", 1, 2)
	wantVersions(t, inv, protect.UseFPE, "payments.card_number", 1, 2)
	for _, u := range inv.Uses {
		if u.Records != half {
			t.Fatalf("orders: %+v: %d records, want %d", u.KeyUse, u.Records, half)
		}
	}
	if inv.Records != 2*half || inv.Unencrypted != 0 || len(inv.Damaged) != 0 {
		t.Fatalf("orders inventory: %+v", inv)
	}
	wantVersions(t, inventory(t, f, "events"), protect.UseTransit, "kafka-events", 1, 2)
	invDocs := inventory(t, f, "docs")
	wantVersions(t, invDocs, protect.UseEnvelope, kek, 1, 2)
	var table bytes.Buffer
	if err := inv.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("inventory before rewrap:\n%s", table.String())

	for _, tp := range topics {
		target, _ := f.gw.Config.Policies.For(tp + "_v2")
		var checkpoints int
		rep, err := lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{
			From: tp, To: tp + "_v2", Target: target, Batch: 5,
			Checkpoint: func(lifecycle.State) error { checkpoints++; return nil },
		})
		if err != nil {
			t.Fatalf("rewrap %s: %v (%+v)", tp, err, rep)
		}
		if !rep.Verified || rep.Read != 2*half || rep.Written != 2*half || rep.Failed != 0 || rep.TargetGrowth != 2*half || checkpoints == 0 {
			t.Fatalf("rewrap %s: %+v, %d checkpoints", tp, rep, checkpoints)
		}
		t.Logf("rewrap %s -> %s_v2: read %d written %d failed %d target grew %d, versions %v, %d checkpoints", tp, tp, rep.Read, rep.Written, rep.Failed, rep.TargetGrowth, rep.Versions, checkpoints)
	}

	inv2 := inventory(t, f, "orders_v2")
	wantVersions(t, inv2, protect.UseTransit, "kafka-orders", 2)
	wantVersions(t, inv2, protect.UseFPE, "payments.card_number", 2)
	wantVersions(t, inventory(t, f, "events_v2"), protect.UseTransit, "kafka-events", 2)
	wantVersions(t, inventory(t, f, "docs_v2"), protect.UseEnvelope, kek, 2)

	// Envelope payloads are untouched: only the wrapped DEK changed.
	orig, copied := f.readAll(t, "docs"), f.readAll(t, "docs_v2")
	byKeyVal := map[string]bool{}
	for _, r := range orig {
		byKeyVal[string(r.Key)+"|"+string(r.Value)] = true
	}
	for _, r := range copied {
		if !byKeyVal[string(r.Key)+"|"+string(r.Value)] {
			t.Fatalf("docs_v2 record %d@%d: envelope payload changed by rewrap", r.Partition, r.Offset)
		}
	}

	// Retire version 1 of every transit key involved.
	f.retireVersion1(t, "kafka-orders", "kafka-events", envelope.DefaultKEK)

	for _, tp := range topics {
		recs := f.readAll(t, tp+"_v2")
		wantAllOpen(t, f.gw.Engine, tp+"_v2", recs, plain[tp])

		// The un-rewrapped originals: version 1 no longer decrypts.
		recs = f.readAll(t, tp)
		retired, ok := countRetired(t, f.gw.Engine, recs, func(i int, o protect.Opened) error {
			var cause error = o.Err
			if tp != "docs" {
				for _, fs := range o.Fields {
					if fs.Mode == "transit" {
						if fs.Status != protect.CodeVersionRetired {
							t.Fatalf("%s record %d: field %s status %s, want %s", tp, i, fs.Path, fs.Status, protect.CodeVersionRetired)
						}
						cause = fs.Err
					}
				}
			}
			return cause
		})
		if retired != half || ok != half {
			t.Fatalf("%s originals: %d retired, %d decrypted; want %d and %d", tp, retired, ok, half, half)
		}
		t.Logf("after min_decryption_version=2: %s_v2 %d/%d decrypt; %s originals %d retired (transit.ErrVersionRetired), %d decrypt", tp, 2*half, 2*half, tp, retired, ok)
	}
}

// TestRewrapResumes: a run interrupted after its second batch resumes from
// the saved state, writes only the rest, and the counts add up.
func TestRewrapResumes(t *testing.T) {
	f := setupLifecycle(t)
	ctx := context.Background()
	var vals [][]byte
	for i := 0; i < 17; i++ {
		vals = append(vals, []byte(fmt.Sprintf(`{"Name":"event-%d"}`, i)))
	}
	f.produce(t, "events", vals)
	if _, err := f.gw.Transit.Rotate(ctx, "kafka-events"); err != nil {
		t.Fatal(err)
	}
	target, _ := f.gw.Config.Policies.For("events_v2")
	var saved *lifecycle.State
	stop := errors.New("interrupted")
	rep, err := lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{From: "events", To: "events_v2", Target: target, Batch: 3,
		Checkpoint: func(s lifecycle.State) error {
			if s.Read >= 6 {
				saved = &s
				return stop
			}
			return nil
		}})
	if !errors.Is(err, stop) || saved == nil || saved.Written != 6 {
		t.Fatalf("interrupted run: %v %+v %+v", err, rep, saved)
	}
	rep, err = lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{From: "events", To: "events_v2", Target: target, Batch: 3, Resume: saved})
	if err != nil || !rep.Verified || rep.Read != 17 || rep.Written != 17 || rep.TargetGrowth != 11 {
		t.Fatalf("resumed run: %v %+v", err, rep)
	}
	inv := inventory(t, f, "events_v2")
	if inv.Records != 17 || fmt.Sprint(inv.Versions(protect.UseTransit, "kafka-events")) != "[2]" {
		t.Fatalf("events_v2 after resume: %+v", inv)
	}
	t.Logf("interrupted after %d of 17; resumed run wrote %d more; target has %d records, all at v2", saved.Written, rep.TargetGrowth, inv.Records)

	// A target whose policy names another transit key gets its records
	// under that key (the header follows), so its consumers need only it.
	target, _ = f.gw.Config.Policies.For("events_v3")
	if rep, err = lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{From: "events", To: "events_v3", Target: target}); err != nil || rep.Written != 17 {
		t.Fatalf("rewrap to events_v3: %v %+v", err, rep)
	}
	inv = inventory(t, f, "events_v3")
	if fmt.Sprint(inv.Versions(protect.UseTransit, "kafka-events_v3")) != "[1]" || len(inv.Uses) != 1 {
		t.Fatalf("events_v3: %+v", inv.Uses)
	}
	// Retire every version of the source key: the copy does not need it.
	f.retireVersion1(t, "kafka-events")
	if _, err := f.gw.Transit.Rotate(ctx, "kafka-events"); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Transit.Configure(ctx, "kafka-events", map[string]any{"min_decryption_version": 3}); err != nil {
		t.Fatal(err)
	}
	opened, err := f.gw.Engine.Decrypt(ctx, f.readAll(t, "events_v3"))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		if o.Status != protect.StatusDecrypted || !strings.HasPrefix(string(o.Value), `{"Name":"event-`) {
			t.Fatalf("events_v3 record %d: %s %s", i, o.Status, o.Value)
		}
	}
}

// countRetired decrypts recs with eng and counts the records that open
// and those whose failure, as cause picks it from the outcome, is
// transit.ErrVersionRetired; any other failure fails t.
func countRetired(t *testing.T, eng *protect.Engine, recs []kafka.Record, cause func(i int, o protect.Opened) error) (retired, ok int) {
	t.Helper()
	opened, err := eng.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		if o.Status == protect.StatusDecrypted {
			ok++
			continue
		}
		if c := cause(i, o); !errors.Is(c, transit.ErrVersionRetired) {
			t.Fatalf("%s record %d: %s %v is not transit.ErrVersionRetired", recs[i].Topic, i, o.Status, c)
		}
		retired++
	}
	return retired, ok
}

// wantAllOpen: every record of recs decrypts, to the plaintexts plain
// (each once).
func wantAllOpen(t *testing.T, eng *protect.Engine, topic string, recs []kafka.Record, plain [][]byte) {
	t.Helper()
	opened, err := eng.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, v := range plain {
		want[string(v)] = true
	}
	for i, o := range opened {
		if o.Status != protect.StatusDecrypted {
			t.Fatalf("%s record %d: status %s (%v %+v)", topic, i, o.Status, o.Err, o.Fields)
		}
		if !want[string(o.Value)] {
			t.Fatalf("%s record %d decrypted to %.40q, not one of the originals", topic, i, o.Value)
		}
		delete(want, string(o.Value))
	}
	if len(want) != 0 || len(opened) != len(plain) {
		t.Fatalf("%s: %d records decrypted, %d originals not found", topic, len(opened), len(want))
	}
}
