package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// writeRaw writes records as they are (already encrypted) to topic.
func (f *lcFixture) writeRaw(t *testing.T, topic string, hs [][]protect.Header, values [][]byte) {
	t.Helper()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: topic, Partition: int32(i % 3), Key: []byte(fmt.Sprintf("k%d", i)), Value: v, Headers: hs[i]}
	}
	if err := produceMsgs(context.Background(), f.gw.Kafka, msgs); err != nil {
		t.Fatal(err)
	}
}

// writeLegacy writes n messages in the original demo's file format (KEK
// "transit", DEK wrapped without context, header X-encryptionkey).
func (f *lcFixture) writeLegacy(t *testing.T, topic string, from, n int) [][]byte {
	t.Helper()
	ks := envelope.NewKMSKeys(f.env.Transit)
	var hs [][]protect.Header
	var vals, plain [][]byte
	for i := from; i < from+n; i++ {
		data := []byte(fmt.Sprintf("legacy file %d: %s", i, string(make([]byte, i))))
		h, v, err := envelope.EncodeLegacy(context.Background(), ks, "", fmt.Sprintf("f%d.bin", i), data)
		if err != nil {
			t.Fatal(err)
		}
		hs, vals, plain = append(hs, h), append(vals, v), append(plain, data)
	}
	f.writeRaw(t, topic, hs, vals)
	return plain
}

// writeSealed writes n dead-letter values sealed whole with key for topic.
func (f *lcFixture) writeSealed(t *testing.T, topic, key string, from, n int) [][]byte {
	t.Helper()
	var plain [][]byte
	for i := from; i < from+n; i++ {
		plain = append(plain, []byte(fmt.Sprintf(`{"Name":"refused-%d","bad":true}`, i)))
	}
	sealed, err := f.gw.Engine.SealValues(context.Background(), key, topic, plain)
	if err != nil {
		t.Fatal(err)
	}
	hs := make([][]protect.Header, n)
	vals := make([][]byte, n)
	for i, s := range sealed {
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		hs[i], vals[i] = s.Headers, s.Value
	}
	f.writeRaw(t, topic, hs, vals)
	return plain
}

// freshEngine is a second gateway on the same Vault and Kafka, with empty
// DEK caches: what it opens, it unwraps now.
func (f *lcFixture) freshEngine(t *testing.T) *server.Gateway {
	t.Helper()
	return testkit.Gateway(t, f.env, server.Options{Config: f.gw.Config, Vault: testkit.RootVault(f.env, 5*time.Second)})
}

// TestRewrapLegacyAndSealed: records in the original demo's format and
// sealed dead-letter values, under two key versions, are rewrapped to the
// latest version; with version 1 retired the copies still open and the
// originals under version 1 fail with transit.ErrVersionRetired.
func TestRewrapLegacyAndSealed(t *testing.T) {
	f := setupLifecycle(t)
	ctx := context.Background()
	if err := f.env.Transit.EnsureKey(ctx, envelope.DefaultLegacyKEK, transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	const half = 9
	plain := map[string][][]byte{}
	plain["files"] = f.writeLegacy(t, "files", 0, half)
	plain["orders.dlq"] = f.writeSealed(t, "orders.dlq", "kafka-orders", 0, half)
	for _, k := range []string{envelope.DefaultLegacyKEK, "kafka-orders"} {
		if _, err := f.gw.Transit.Rotate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	plain["files"] = append(plain["files"], f.writeLegacy(t, "files", half, half)...)
	plain["orders.dlq"] = append(plain["orders.dlq"], f.writeSealed(t, "orders.dlq", "kafka-orders", half, half)...)

	legacyKEK := "transit/" + envelope.DefaultLegacyKEK
	wantVersions(t, inventory(t, f, "files"), protect.UseLegacy, legacyKEK, 1, 2)
	wantVersions(t, inventory(t, f, "orders.dlq"), protect.UseSealed, "kafka-orders", 1, 2)

	for from, to := range map[string]string{"files": "files_v2", "orders.dlq": "orders_v2.dlq"} {
		rep, err := lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{From: from, To: to, Batch: 4})
		if err != nil {
			t.Fatalf("rewrap %s: %v (%+v)", from, err, rep)
		}
		if !rep.Verified || rep.Read != 2*half || rep.Written != 2*half || rep.Failed != 0 || rep.TargetGrowth != 2*half {
			t.Fatalf("rewrap %s: %+v", from, rep)
		}
		t.Logf("rewrap %s -> %s: read %d written %d failed %d, versions %v", from, to, rep.Read, rep.Written, rep.Failed, rep.Versions)
	}
	invFiles := inventory(t, f, "files_v2")
	wantVersions(t, invFiles, protect.UseLegacy, legacyKEK, 2)
	invDLQ := inventory(t, f, "orders_v2.dlq")
	wantVersions(t, invDLQ, protect.UseSealed, "kafka-orders", 2)
	if invFiles.Records != 2*half || len(invFiles.Uses) != 1 || invDLQ.Records != 2*half || len(invDLQ.Uses) != 1 {
		t.Fatalf("copies: files_v2 %+v, orders_v2.dlq %+v", invFiles, invDLQ)
	}

	// Legacy payloads are copied byte for byte (only X-encryptionkey changes).
	orig := map[string]string{}
	for _, r := range f.readAll(t, "files") {
		w, _ := kafkaHeader(r, envelope.LegacyKeyHeader)
		orig[string(r.Value)] = w
	}
	for _, r := range f.readAll(t, "files_v2") {
		_, ok := orig[string(r.Value)]
		w, _ := kafkaHeader(r, envelope.LegacyKeyHeader)
		if !ok || transitVersion(t, w) != 2 {
			t.Fatalf("files_v2 %d@%d: payload changed or DEK not rewrapped (%q)", r.Partition, r.Offset, w)
		}
		if n, _ := kafkaHeader(r, envelope.LegacyNameHeader); n == "" {
			t.Fatalf("files_v2 %d@%d lost %s", r.Partition, r.Offset, envelope.LegacyNameHeader)
		}
	}

	f.retireVersion1(t, envelope.DefaultLegacyKEK, "kafka-orders")
	gw := f.freshEngine(t)
	for src, dst := range map[string]string{"files": "files_v2", "orders.dlq": "orders_v2.dlq"} {
		wantAllOpen(t, gw.Engine, dst, f.readAll(t, dst), plain[src])

		retired, ok := countRetired(t, gw.Engine, f.readAll(t, src), func(_ int, o protect.Opened) error {
			if len(o.Fields) == 1 && o.Fields[0].Err != nil {
				return o.Fields[0].Err
			}
			return o.Err
		})
		if retired != half || ok != half {
			t.Fatalf("%s originals: %d retired, %d open; want %d and %d", src, retired, ok, half, half)
		}
		t.Logf("after min_decryption_version=2: %s %d/%d open; %s originals %d retired, %d open", dst, 2*half, 2*half, src, retired, ok)
	}
}

func kafkaHeader(r kafka.Record, name string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value), true
		}
	}
	return "", false
}

func transitVersion(t *testing.T, ct string) int {
	t.Helper()
	v, err := transit.Version(ct)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRewrapFailuresReportedAndDeadLettered: records that cannot be
// rewrapped (a retired version, an envelope record whose origin the
// target does not accept, a damaged header, a record without encryption)
// are counted, listed with their codes and written to the DLQ topic with
// the reason; the run is not verified and says so with ErrNotRewrapped.
func TestRewrapFailuresReportedAndDeadLettered(t *testing.T) {
	f := setupLifecycle(t)
	ctx := context.Background()
	if err := f.env.Transit.EnsureKey(ctx, envelope.DefaultLegacyKEK, transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Transit.EnsureKey(ctx, "kafka-mixed_v2", transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	ks := envelope.NewKMSKeys(f.env.Transit)
	legacy := func(data string) ([]protect.Header, []byte) {
		h, v, err := envelope.EncodeLegacy(ctx, ks, "", "a.bin", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return h, v
	}
	oldH, oldV := legacy("old legacy file")
	if _, err := f.gw.Transit.Rotate(ctx, envelope.DefaultLegacyKEK); err != nil {
		t.Fatal(err)
	}
	f.retireVersion1(t, envelope.DefaultLegacyKEK)
	newH, newV := legacy("new legacy file")
	docsPolicy, _ := f.gw.Config.Policies.For("docs")
	env, err := f.gw.Engine.EncryptRecords(ctx, docsPolicy, []protect.Record{{Topic: "docs", Value: []byte("a docs record")}})
	if err != nil || env[0].Err != nil {
		t.Fatal(err, env[0].Err)
	}
	envH := append(env[0].Headers, protect.Header{Key: envelope.HeaderOrigin, Value: []byte("docs")})
	plainValue := []byte(`{"Name":"in clear"}`)
	badH := []protect.Header{{Key: protect.HeaderFields, Value: []byte("not json")}}
	// One partition keeps the order: retired, ok, origin, clear, damaged, ok.
	values := [][]byte{oldV, newV, env[0].Value, plainValue, []byte(`{"Name":"x"}`), newV}
	headers := [][]protect.Header{oldH, newH, envH, nil, badH, newH}
	msgs := make([]kafka.Message, len(values))
	for i := range values {
		msgs[i] = kafka.Message{Topic: "mixed", Partition: 0, Key: []byte(fmt.Sprintf("k%d", i)), Value: values[i], Headers: headers[i]}
	}
	if err := produceMsgs(ctx, f.gw.Kafka, msgs); err != nil {
		t.Fatal(err)
	}

	target, _ := f.gw.Config.Policies.For("mixed_v2")
	rep, err := lifecycle.Rewrap(ctx, f.gw.Kafka, f.gw.Engine, lifecycle.RewrapOptions{From: "mixed", To: "mixed_v2", Target: target, DLQ: "mixed_v2.dlq", Batch: 4})
	if !errors.Is(err, lifecycle.ErrNotRewrapped) || errors.Is(err, lifecycle.ErrCountMismatch) {
		t.Fatalf("rewrap: err %v, want ErrNotRewrapped", err)
	}
	if rep.Verified || !rep.CountsMatch || rep.Read != 6 || rep.Written != 2 || rep.Failed != 4 || rep.DeadLettered != 4 || rep.TargetGrowth != 2 {
		t.Fatalf("report: %+v", rep)
	}
	wantCodes := map[int64]string{0: protect.CodeVersionRetired, 2: protect.CodeOriginNotAccepted, 3: protect.CodeUnencrypted, 4: protect.CodeBadHeader}
	if len(rep.Failures) != len(wantCodes) {
		t.Fatalf("failures: %+v", rep.Failures)
	}
	for _, fl := range rep.Failures {
		if wantCodes[fl.Offset] != fl.Code || !fl.DeadLettered || fl.Partition != 0 {
			t.Fatalf("failure %+v, want code %q, dead-lettered", fl, wantCodes[fl.Offset])
		}
	}
	t.Logf("rewrap mixed -> mixed_v2: read %d written %d failed %d dead-lettered %d verified %t; failures %+v", rep.Read, rep.Written, rep.Failed, rep.DeadLettered, rep.Verified, rep.Failures)

	var dead []kafka.Record
	for p := int32(0); p < 3; p++ {
		recs, err := f.gw.Kafka.Read(ctx, "mixed_v2.dlq", p, -2, 100)
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, recs...)
	}
	if len(dead) != 4 {
		t.Fatalf("mixed_v2.dlq has %d records, want 4", len(dead))
	}
	for _, d := range dead {
		src, _ := kafkaHeader(d, "kafkagate.dlq.source")
		code, _ := kafkaHeader(d, "kafkagate.dlq.code")
		reason, _ := kafkaHeader(d, "kafkagate.dlq.reason")
		var off int64
		if _, err := fmt.Sscanf(src, "mixed/0/%d", &off); err != nil || wantCodes[off] != code || reason == "" {
			t.Fatalf("dead letter %q: source %q code %q reason %q", d.Key, src, code, reason)
		}
		if bytes.Contains(d.Value, []byte("in clear")) {
			t.Fatalf("dead letter of offset %d carries the plaintext", off)
		}
		if off == 3 {
			// The unencrypted record is sealed for the DLQ topic.
			opened, err := f.gw.Engine.Decrypt(ctx, []kafka.Record{d})
			if err != nil || opened[0].Status != protect.StatusDecrypted || !bytes.Equal(opened[0].Value, plainValue) {
				t.Fatalf("sealed dead letter: %v %+v", err, opened)
			}
		} else if !bytes.Equal(d.Value, values[off]) {
			t.Fatalf("dead letter of offset %d: value changed", off)
		}
	}
}

func produceMsgs(ctx context.Context, kc *kafka.Client, msgs []kafka.Message) error {
	ds, err := kc.Produce(ctx, msgs)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.Err != nil {
			return d.Err
		}
	}
	return nil
}
