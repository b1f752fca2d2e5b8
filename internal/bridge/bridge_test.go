package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestTenThousandRecords bridges 10,000 records: each arrives once,
// encrypted, with key, headers and timestamp carried over, partitioned by
// key, and the group's offsets are committed at the end.
func TestTenThousandRecords(t *testing.T) {
	const n = 10000
	f := setup(t, 10*time.Second, nil)
	r, took := f.bridgeAll(3, n, nil, false, 120*time.Second)
	msgs := f.readAll("enc")
	ids := targetIDs(t, msgs)
	dups := lossAndDups(t, ids, n, nil)
	if dups != 0 {
		t.Fatalf("%d duplicates without any failure", dups)
	}
	hp := sarama.NewHashPartitioner("enc")
	for _, m := range msgs {
		var v struct{ ID int }
		_ = json.Unmarshal(m.Value, &v)
		if string(m.Key) != fmt.Sprintf("k-%d", v.ID) || string(header(m, "trace")) != fmt.Sprintf("t-%d", v.ID) ||
			!m.Timestamp.Equal(baseTime.Add(time.Duration(v.ID)*time.Millisecond)) {
			t.Fatalf("record %d: key %q, trace %q, timestamp %v not carried over", v.ID, m.Key, header(m, "trace"), m.Timestamp)
		}
		if want, _ := hp.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(m.Key)}, 3); want != m.Partition {
			t.Fatalf("record %d on partition %d, its key hashes to %d", v.ID, m.Partition, want)
		}
		if got := string(header(m, bridge.HeaderSource)); !strings.HasPrefix(got, "plain/") {
			t.Fatalf("record %d: %s = %q", v.ID, bridge.HeaderSource, got)
		}
	}
	// A consumer decrypts them back (sample).
	recs := make([]protect.Record, 0, 100)
	for _, m := range msgs[:100] {
		recs = append(recs, toProtect(m))
	}
	opened, err := f.eng.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		var v struct{ ID int }
		_ = json.Unmarshal(o.Value, &v)
		if o.Status != protect.StatusDecrypted || !bytes.Equal(o.Value, goodValue(v.ID)) {
			t.Fatalf("sample %d: status %s, value %.100s", i, o.Status, o.Value)
		}
	}
	st := r.b.Stats().Snapshot()
	if st.Produced != n || st.Consumed != n || st.DeadLettered != 0 || st.DuplicatesSuspected != 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("10,000 records bridged in %v (%.0f rec/s): %d batches, lost 0, duplicates 0; committed offsets at the ends",
		took.Round(time.Millisecond), n/took.Seconds(), st.Batches)
}

func toProtect(m *sarama.ConsumerMessage) protect.Record {
	r := protect.Record{Topic: m.Topic, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, protect.Header{Key: string(h.Key), Value: h.Value})
	}
	return r
}

// TestStopAndRestart cancels the bridge mid-stream and starts it again:
// nothing is lost, and a graceful stop commits what it wrote.
func TestStopAndRestart(t *testing.T) {
	const n = 6000
	f := setup(t, 10*time.Second, nil)
	f.createTopic("plain", 3)
	f.createTopic("enc", 3)
	f.produce("plain", 0, n, nil)
	cfg := f.config("plain", "enc")
	cfg.BatchSize = 100
	r1 := f.start(cfg)
	waitFor(t, 60*time.Second, func() bool { return r1.b.Stats().Produced.Load() >= 1500 })
	r1.stop(t)
	s1 := r1.b.Stats().Snapshot()
	if s1.Produced >= n {
		t.Fatalf("first run finished everything (%d): nothing to test", s1.Produced)
	}
	r2 := f.start(cfg)
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 120*time.Second)
	r2.stop(t)
	s2 := r2.b.Stats().Snapshot()
	dups := lossAndDups(t, targetIDs(t, f.readAll("enc")), n, nil)
	t.Logf("run 1 produced %d, run 2 produced %d: lost 0, duplicates %d, duplicates suspected %d", s1.Produced, s2.Produced, dups, s2.DuplicatesSuspected)
	if dups != 0 || s2.DuplicatesSuspected != 0 {
		t.Fatalf("a graceful stop left %d duplicates (%d suspected)", dups, s2.DuplicatesSuspected)
	}
	if s1.Produced+s2.Produced != n {
		t.Fatalf("produced %d + %d, want %d", s1.Produced, s2.Produced, n)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// badValue makes every 7th record bad in one of several ways; each bad
// value holds plaintext that must not reach the DLQ in clear.
func badValue(i int) []byte {
	if i%7 != 3 {
		return goodValue(i)
	}
	switch (i / 7) % len(badCodes) {
	case 0: // invalid JSON
		return fmt.Appendf(nil, `{"id":%d,"Name":"%sname-%d","Address":`, i, marker, i)
	case 1: // number in a transit field
		return fmt.Appendf(nil, `{"id":%d,"Name":4111111111111111,"Address":"%saddr-%d"}`, i, marker, i)
	case 2: // duplicate key
		return fmt.Appendf(nil, `{"id":%d,"Name":"x","Name":"%sname-%d"}`, i, marker, i)
	case 3: // not an object
		return fmt.Appendf(nil, `["%sname-%d"]`, marker, i)
	default: // nested deeper than any parser should recurse
		return append(fmt.Appendf(nil, `{"id":%d,"Note":"%sname-%d","Name":`, i, marker, i), bytes.Repeat([]byte{'['}, 20_000)...)
	}
}

var badCodes = []string{protect.CodeInvalidJSON, protect.CodeFieldType, protect.CodeDuplicateKey, protect.CodeNotObject, protect.CodeTooDeep}

func isBad(i int) bool { return i%7 == 3 }

// TestDeadLetters sends records that cannot be encrypted to the DLQ,
// sealed, with reason headers, while the good records around them arrive.
func TestDeadLetters(t *testing.T) {
	const n = 700
	f := setup(t, 10*time.Second, nil)
	r, _ := f.bridgeAll(3, n, badValue, true, 60*time.Second)
	if d := lossAndDups(t, targetIDs(t, f.readAll("enc")), n, isBad); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	dlq := f.readAll("enc.dlq")
	if len(dlq) != n/7 {
		t.Fatalf("DLQ has %d records, want %d", len(dlq), n/7)
	}
	recs := make([]protect.Record, len(dlq))
	for i, m := range dlq {
		if bytes.Contains(m.Value, []byte(marker)) || bytes.Contains(m.Value, []byte("4111111111111111")) {
			t.Fatalf("DLQ record %d holds plaintext: %.100s", m.Offset, m.Value)
		}
		for _, h := range m.Headers {
			if bytes.Contains(h.Value, []byte(marker)) || bytes.Contains(h.Value, []byte("4111111111111111")) {
				t.Fatalf("DLQ header %s holds plaintext: %s", h.Key, h.Value)
			}
		}
		if header(m, protect.HeaderSealed) == nil || string(header(m, protect.HeaderFields)) == `{"v":1,"f":[]}` {
			t.Fatalf("DLQ record %d: sealed header missing or forged header kept", m.Offset)
		}
		recs[i] = toProtect(m)
	}
	opened, err := f.eng.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range dlq {
		src := string(header(m, bridge.HeaderDLQSource))
		var p int32
		var off int64
		if _, err := fmt.Sscanf(src, "plain/%d/%d", &p, &off); err != nil {
			t.Fatalf("source header %q", src)
		}
		id := -1
		if _, err := fmt.Sscanf(string(m.Key), "k-%d", &id); err != nil || !isBad(id) {
			t.Fatalf("DLQ record with key %q", m.Key)
		}
		wantCode := badCodes[(id/7)%len(badCodes)]
		code, reason, field := string(header(m, bridge.HeaderDLQCode)), string(header(m, bridge.HeaderDLQReason)), string(header(m, bridge.HeaderDLQField))
		if code != wantCode || reason == "" {
			t.Fatalf("record %d: code %q reason %q, want code %s", id, code, reason, wantCode)
		}
		if wantCode == protect.CodeFieldType && field != "Name" {
			t.Fatalf("record %d: field %q", id, field)
		}
		if opened[i].Status != protect.StatusDecrypted || !bytes.Equal(opened[i].Value, badValue(id)) {
			t.Fatalf("record %d: DLQ value does not open to the original (%s)", id, opened[i].Status)
		}
		if string(header(m, "trace")) != fmt.Sprintf("t-%d", id) {
			t.Fatalf("record %d: trace header not carried", id)
		}
	}
	st := r.b.Stats().Snapshot()
	if st.DeadLettered != n/7 || st.Produced != n-n/7 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%d good records in the target, %d sealed dead letters (codes %v), 0 lost", st.Produced, st.DeadLettered, badCodes)
}

// TestTwoInstancesShareAndHandOver runs two bridges in one group: they
// share the partitions; stopping one hands its partitions to the other
// without loss.
func TestTwoInstancesShareAndHandOver(t *testing.T) {
	const n = 3000
	f := setup(t, 10*time.Second, nil)
	f.createTopic("plain", 6)
	f.createTopic("enc", 3)
	cfg := f.config("plain", "enc")
	cfg.BatchSize = 50
	a, b := f.start(cfg), f.start(cfg)
	group := bridge.DefaultGroup("enc")
	waitFor(t, 30*time.Second, func() bool { return assignedMembers(t, f, group) == 2 })
	f.produce("plain", 0, n, nil)
	f.waitCommitted(group, "plain", 60*time.Second)
	ca, cb := a.b.Stats().Consumed.Load(), b.b.Stats().Consumed.Load()
	if ca == 0 || cb == 0 || ca+cb != n {
		t.Fatalf("instances consumed %d and %d of %d: not shared", ca, cb, n)
	}
	f.produce("plain", n, n, nil)
	waitFor(t, 30*time.Second, func() bool { return a.b.Stats().Consumed.Load()+b.b.Stats().Consumed.Load() >= n+n/4 })
	a.stop(t)
	cbBefore := b.b.Stats().Consumed.Load()
	f.waitCommitted(group, "plain", 60*time.Second)
	b.stop(t)
	sa, sb := a.b.Stats().Snapshot(), b.b.Stats().Snapshot()
	dups := lossAndDups(t, targetIDs(t, f.readAll("enc")), 2*n, nil)
	t.Logf("phase 1: A %d / B %d; after A stopped B went from %d to %d consumed; lost 0, duplicates %d (suspected %d)",
		ca, cb, cbBefore, sb.Consumed, dups, sa.DuplicatesSuspected+sb.DuplicatesSuspected)
	if sb.Consumed <= cbBefore && sa.Consumed < 2*n {
		t.Fatal("B took nothing over")
	}
	if dups != 0 {
		t.Fatalf("graceful hand-over left %d duplicates", dups)
	}
}

// assignedMembers counts the group's members holding partitions.
func assignedMembers(t *testing.T, f *fixture, group string) int {
	gs, err := f.admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(gs) != 1 || gs[0].State != "Stable" {
		return 0
	}
	n := 0
	for _, m := range gs[0].Members {
		a, err := m.GetMemberAssignment()
		if err == nil && len(a.Topics["plain"]) > 0 {
			n++
		}
	}
	return n
}

// TestVaultPausedFailsClosed stops Vault (SIGSTOP) mid-run: nothing is
// written or committed meanwhile, nothing in clear; after SIGCONT the
// bridge catches up without loss.
func TestVaultPausedFailsClosed(t *testing.T) {
	const n = 1000
	f := setup(t, time.Second, nil)
	f.createTopic("plain", 3)
	f.createTopic("enc", 3)
	f.produce("plain", 0, n, nil)
	r := f.start(f.config("plain", "enc"))
	group := bridge.DefaultGroup("enc")
	f.waitCommitted(group, "plain", 60*time.Second)
	resume := testkit.PauseVault(t, f.env.Vault)
	retries0 := r.b.Stats().Retries.Load()
	f.produce("plain", n, n, nil)
	time.Sleep(3 * time.Second)
	ends := f.ends("plain")
	got := f.committed(group, "plain", ends)
	var committed int64
	for _, o := range got {
		committed += o
	}
	during := len(f.readAll("enc"))
	retries := r.b.Stats().Retries.Load() - retries0
	if committed != n || during != n || retries == 0 {
		t.Fatalf("with Vault stopped: committed %d, target %d (want %d each), retries %d (want > 0)", committed, during, n, retries)
	}
	resume()
	paused := time.Now()
	f.waitCommitted(group, "plain", 60*time.Second)
	caughtUp := time.Since(paused)
	r.stop(t)
	dups := lossAndDups(t, targetIDs(t, f.readAll("enc")), 2*n, nil)
	t.Logf("Vault stopped 3 s: %d retries, target stayed at %d, offsets stayed at %d; caught up %v after SIGCONT; lost 0, duplicates %d",
		retries, during, committed, caughtUp.Round(time.Millisecond), dups)
}

// TestExactlyOnce stops and restarts an exactly-once bridge mid-stream;
// a read_committed reader sees every good record once and every bad one
// once in the DLQ.
func TestExactlyOnce(t *testing.T) {
	const n = 3000
	f := setup(t, 10*time.Second, nil)
	f.createTopic("plain", 3)
	f.createTopic("enc", 3)
	f.createTopic("enc.dlq", 1)
	f.produce("plain", 0, n, badValue)
	cfg := f.config("plain", "enc")
	cfg.ExactlyOnce = true
	cfg.BatchSize = 100
	r1 := f.start(cfg)
	waitFor(t, 60*time.Second, func() bool { return r1.b.Stats().Consumed.Load() >= 800 })
	r1.stop(t)
	s1 := r1.b.Stats().Snapshot()
	r2 := f.start(cfg)
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 120*time.Second)
	r2.stop(t)
	s2 := r2.b.Stats().Snapshot()
	dups := lossAndDups(t, targetIDs(t, f.readAll("enc")), n, isBad)
	dlq := f.readAll("enc.dlq")
	seen := map[string]int{}
	for _, m := range dlq {
		seen[string(m.Key)]++
	}
	if dups != 0 || len(dlq) != n/7+1 || len(seen) != len(dlq) {
		t.Fatalf("read_committed: %d target duplicates, %d DLQ records (%d distinct), want 0 and %d", dups, len(dlq), len(seen), n/7+1)
	}
	t.Logf("exactly-once: run 1 %d + run 2 %d consumed; target %d records, DLQ %d; lost 0, duplicates 0 (read_committed)",
		s1.Consumed, s2.Consumed, n-len(dlq), len(dlq))
}

// TestKcatSeesCiphertextOnly reads the target with kcat (librdkafka), an
// independent client: policy fields are ciphertext only.
func TestKcatSeesCiphertextOnly(t *testing.T) {
	kcat := testkit.Kcat(t)
	const n = 200
	f := setup(t, 10*time.Second, nil)
	f.bridgeAll(3, n, nil, false, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-b", f.env.Brokers[0], "-t", "enc", "-C", "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%k|%h|%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v: %s", err, out)
	}
	s := string(out)
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) != n || strings.Count(s, `"Name":"vault:v1:`) != n || strings.Count(s, `"Address":"vault:v1:`) != n ||
		strings.Count(s, "kafkagate.fields=") != n {
		t.Fatalf("kcat saw %d lines, want %d encrypted records:\n%.500s", len(lines), n, s)
	}
	if strings.Contains(s, marker) {
		t.Fatal("kcat sees plaintext")
	}
	t.Logf("kcat read %d records: every Name and Address is vault:v1:…, no plaintext", n)
}

// TestPassthrough copies records unchanged under an explicit passthrough
// policy, still dropping kafkagate.* headers.
func TestPassthrough(t *testing.T) {
	const n = 100
	f := setup(t, 10*time.Second, map[string]string{"mode": "passthrough"})
	f.bridgeAll(1, n, nil, false, 60*time.Second)
	msgs := f.readAll("enc")
	if len(msgs) != n {
		t.Fatalf("%d records", len(msgs))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Value, goodValue(i)) || header(m, protect.HeaderFields) != nil || string(header(m, "trace")) != fmt.Sprintf("t-%d", i) {
			t.Fatalf("record %d changed: %.100s", i, m.Value)
		}
	}
}

// TestNewRefuses checks the fail-closed configuration checks.
func TestNewRefuses(t *testing.T) {
	pol, err := policy.Parse("enc", map[string]string{"fields": "Name transit"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := policy.Parse("other", map[string]string{"fields": "Name transit"})
	base := bridge.Config{Source: "plain", Target: "enc", Policy: pol, Engine: &protect.Engine{}, Kafka: nil}
	for name, mod := range map[string]func(*bridge.Config){
		"no policy":       func(c *bridge.Config) { c.Policy = nil },
		"wrong policy":    func(c *bridge.Config) { c.Policy = other },
		"same topics":     func(c *bridge.Config) { c.Source = "enc" },
		"dlq is source":   func(c *bridge.Config) { c.DLQ = "plain" },
		"no kafka":        func(c *bridge.Config) {},
		"no source topic": func(c *bridge.Config) { c.Source = "" },
	} {
		c := base
		mod(&c)
		if _, err := bridge.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if g := bridge.DefaultGroup("enc"); g != "kafkagate-bridge-enc" {
		t.Fatal(g)
	}
}

// TestEnvelopePolicy bridges into a topic whose policy seals whole values
// under Vault data keys; a consumer opens them, including with the
// bridge's annotation header present.
func TestEnvelopePolicy(t *testing.T) {
	const n = 300
	f := setup(t, 10*time.Second, map[string]string{"mode": "envelope", "dek": "cached"})
	r, _ := f.bridgeAll(3, n, nil, false, 60*time.Second)
	msgs := f.readAll("enc")
	if len(msgs) != n {
		t.Fatalf("%d records, want %d", len(msgs), n)
	}
	recs := make([]protect.Record, len(msgs))
	for i, m := range msgs {
		if bytes.Contains(m.Value, []byte(marker)) {
			t.Fatalf("plaintext in envelope record %d", m.Offset)
		}
		recs[i] = toProtect(m)
	}
	opened, err := f.eng.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, o := range opened {
		id := -1
		_, _ = fmt.Sscanf(string(msgs[i].Key), "k-%d", &id)
		if o.Status != protect.StatusDecrypted || !bytes.Equal(o.Value, goodValue(id)) {
			t.Fatalf("record %q: status %s (%v)", msgs[i].Key, o.Status, o.Err)
		}
		seen[string(msgs[i].Key)] = true
	}
	if len(seen) != n || r.b.Stats().DeadLettered.Load() != 0 {
		t.Fatalf("%d distinct records, %d dead letters", len(seen), r.b.Stats().DeadLettered.Load())
	}
}
