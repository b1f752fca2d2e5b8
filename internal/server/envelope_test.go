package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const envelopeConfig = `
[policy:docs]
mode = envelope
dek = cached

[policy:docs_per_message]
mode = envelope
dek = per-message

[policy:elsewhere]
mode = envelope
`

func setupEnvelope(t *testing.T) *fixture {
	t.Helper()
	env := testkit.Start(t)
	cfg := testkit.Config(t, envelopeConfig)
	testkit.EnsureEnvelopeKEK(t, env)
	return serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second)})
}

func TestEnvelopeRecordsOverHTTP(t *testing.T) {
	f := setupEnvelope(t)
	secret := "top secret payload " + strings.Repeat("z", 2000)
	bin := base64.StdEncoding.EncodeToString([]byte(secret))
	for _, topic := range []string{"docs", "docs_per_message"} {
		for i := 0; i < 3; i++ {
			body := `{"partition_id":0,"key":{"type":"STRING","data":"doc-1"},"headers":[{"name":"app","value":"eA=="}],"value":{"type":"BINARY","data":"` + bin + `"}}`
			resp, b := f.post(t, f.url(topic), "application/json", body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"mode":"envelope"`) {
				t.Fatalf("%s: %d %s", topic, resp.StatusCode, b)
			}
		}
		recs := f.raw(t, topic)
		if len(recs) != 3 {
			t.Fatalf("%s: %d records", topic, len(recs))
		}
		edeks := map[string]bool{}
		for _, r := range recs {
			if bytes.Contains(r.Value, []byte("top secret")) {
				t.Fatalf("%s: plaintext in kafka", topic)
			}
			edeks[headerValue(r.Headers, envelope.HeaderEDEK)] = true
			if headerValue(r.Headers, "app") != "x" || !strings.HasPrefix(headerValue(r.Headers, envelope.HeaderEDEK), "vault:v1:") {
				t.Fatalf("%s: headers %v", topic, r.Headers)
			}
		}
		want := 1 // cached: one DEK for all three
		if topic == "docs_per_message" {
			want = 3
		}
		if len(edeks) != want {
			t.Fatalf("%s: %d distinct DEKs, want %d", topic, len(edeks), want)
		}
		rr := f.read(t, topic, 0, 0)
		for _, r := range rr.Records {
			// Produced as BINARY, read back as BINARY (base64).
			var s string
			_ = json.Unmarshal(r.Value.Data, &s)
			if r.Decryption.Status != "decrypted" || r.Value.Type != "BINARY" || s != bin {
				t.Fatalf("%s: %s %.40q", topic, r.Decryption.Status, r.Value.Data)
			}
		}
	}

	// A record copied to another topic, or with its key swapped, fails
	// with a typed error; the value stays ciphertext.
	orig := f.raw(t, "docs")[0]
	if _, err := f.gw.Kafka.Produce(context.Background(), []kafka.Message{
		{Topic: "elsewhere", Partition: 0, Key: orig.Key, Value: orig.Value, Headers: orig.Headers},
		{Topic: "docs", Partition: 0, Key: []byte("doc-2"), Value: orig.Value, Headers: orig.Headers},
	}); err != nil {
		t.Fatal(err)
	}
	moved := f.raw(t, "elsewhere")[0]
	swapped := f.raw(t, "docs")[3]
	opened, err := f.gw.Engine.Decrypt(context.Background(), []protect.Record{
		{Topic: "elsewhere", Key: moved.Key, Value: moved.Value, Headers: moved.Headers},
		{Topic: "docs", Key: swapped.Key, Value: swapped.Value, Headers: swapped.Headers},
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened[0].Status != protect.StatusFailed || !errors.Is(opened[0].Err, envelope.ErrKeyUnwrap) {
		t.Fatalf("moved topic: %s %v", opened[0].Status, opened[0].Err)
	}
	if opened[1].Status != protect.StatusFailed || !errors.Is(opened[1].Err, envelope.ErrTampered) {
		t.Fatalf("swapped key: %s %v", opened[1].Status, opened[1].Err)
	}

	// The kafkagate.type header is in the associated data: rewriting the
	// type fails the record, which then reads by its content (BINARY
	// ciphertext), never as the type claimed.
	if headerValue(orig.Headers, record.HeaderType) != `{"k":"STRING","v":"BINARY"}` {
		t.Fatalf("stored type header: %v", orig.Headers)
	}
	retyped := make([]kafka.Header, 0, len(orig.Headers))
	for _, h := range orig.Headers {
		if h.Key == record.HeaderType {
			h.Value = []byte(`{"k":"STRING","v":"STRING"}`)
		}
		retyped = append(retyped, h)
	}
	opened, err = f.gw.Engine.Decrypt(context.Background(), []protect.Record{{Topic: "docs", Key: orig.Key, Value: orig.Value, Headers: retyped}})
	if err != nil {
		t.Fatal(err)
	}
	if opened[0].Status != protect.StatusFailed || !errors.Is(opened[0].Err, envelope.ErrTampered) {
		t.Fatalf("retyped: %s %v", opened[0].Status, opened[0].Err)
	}
	if rr := httpapi.ToReadRecord(kafka.Record{Topic: "docs", Key: orig.Key, Value: orig.Value, Headers: retyped}, opened[0]); rr.Value.Type != "BINARY" {
		t.Fatalf("a failed record rendered as %s", rr.Value.Type)
	}

	// Vault stopped: 503, nothing produced.
	before := len(f.raw(t, "docs_per_message"))
	_ = f.env.Vault.Stop()
	resp, b := f.post(t, f.url("docs_per_message"), "application/json", `{"value":{"type":"BINARY","data":"`+bin+`"}}`)
	var e errBody
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode != 503 || e.ErrorCode != httpapi.CodeVaultDown {
		t.Fatalf("vault stopped: %d %s", resp.StatusCode, b)
	}
	if n := len(f.raw(t, "docs_per_message")); n != before {
		t.Fatalf("produced with vault stopped: %d -> %d", before, n)
	}
}
