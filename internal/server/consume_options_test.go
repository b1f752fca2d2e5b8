package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// produceSamples writes n encrypted purchases through the REST API and one
// copy of the first with its Name ciphertext damaged (undecryptable); it
// returns the damaged record's stored value.
func produceSamples(t *testing.T, f *fixture, n int) []byte {
	t.Helper()
	for range n {
		if resp, body := f.post(t, f.url("purchases"), "application/json", produceBody(purchase)); resp.StatusCode != http.StatusOK {
			t.Fatalf("produce: %d %s", resp.StatusCode, body)
		}
	}
	stored := f.raw(t, "purchases")
	if len(stored) != n {
		t.Fatalf("%d records stored, want %d", len(stored), n)
	}
	var v map[string]any
	if err := json.Unmarshal(stored[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	if damage(v) != len(secrets) {
		t.Fatalf("damaged fields of %s", stored[0].Value)
	}
	bad, _ := json.Marshal(v)
	ds, err := f.gw.Kafka.Produce(context.Background(), []kafka.Message{{Topic: "purchases", Partition: -1, Key: []byte("bad"), Value: bad, Headers: stored[0].Headers}})
	if err != nil || ds[0].Err != nil {
		t.Fatalf("produce the damaged record: %v %v", err, ds)
	}
	return bad
}

// damage makes every vault:v ciphertext in v inauthentic (still of the
// right shape) and returns how many it changed.
func damage(v map[string]any) int {
	n := 0
	for k, x := range v {
		switch x := x.(type) {
		case string:
			if strings.HasPrefix(x, "vault:v") {
				v[k] = x[:len(x)-8] + "AAAAAAA="
				n++
			}
		case map[string]any:
			n += damage(x)
		}
	}
	return n
}

func consumeAll(t *testing.T, f *fixture, o consume.Options) ([]consume.Line, error) {
	t.Helper()
	o.Topic, o.Partition, o.Offset = "purchases", -1, -2
	var got []consume.Line
	_, err := consume.Run(context.Background(), f.gw.Kafka, f.gw.Engine, o, func(r consume.Line) error {
		got = append(got, r)
		return nil
	})
	return got, err
}

// TestConsumeTreatUndecryptableAsPlaintext: an undecryptable record is
// reported failed by default, and with the option as status raw with its
// stored bytes verbatim; the good records decrypt either way.
func TestConsumeTreatUndecryptableAsPlaintext(t *testing.T) {
	f := setup(t)
	bad := produceSamples(t, f, 3)
	for _, treat := range []bool{false, true} {
		got, err := consumeAll(t, f, consume.Options{TreatUndecryptableAsPlaintext: treat})
		if err != nil || len(got) != 4 {
			t.Fatalf("treat=%v: %d records, %v", treat, len(got), err)
		}
		statuses := map[string]int{}
		for _, r := range got {
			statuses[r.Decryption.Status]++
			if string(r.Key.Data) != `"bad"` {
				if r.Decryption.Status != "decrypted" {
					t.Fatalf("treat=%v: good record %d: %+v", treat, r.Offset, r.Decryption)
				}
				assertJSONEqual(t, purchase, string(r.Value.Data))
				continue
			}
			for _, fs := range r.Decryption.Fields {
				if fs.Status != "decrypt_failed" {
					t.Fatalf("treat=%v: field %+v of the damaged record", treat, fs)
				}
			}
			if !treat {
				if r.Decryption.Status != "failed" {
					t.Fatalf("default: undecryptable record has status %q, want failed", r.Decryption.Status)
				}
				continue
			}
			var b64 string
			if r.Decryption.Status != consume.StatusRaw || r.Value.Type != "BINARY" || json.Unmarshal(r.Value.Data, &b64) != nil {
				t.Fatalf("treat: status %q, value %s %s", r.Decryption.Status, r.Value.Type, r.Value.Data)
			}
			if raw, _ := base64.StdEncoding.DecodeString(b64); !bytes.Equal(raw, bad) {
				t.Fatalf("treat: value %q is not the stored bytes %q", raw, bad)
			}
		}
		t.Logf("treat-undecryptable-as-plaintext=%v: statuses %v", treat, statuses)
	}
}

// TestConsumeMaxWaitPerDecrypt freezes Vault (SIGSTOP): with
// MaxWaitPerDecrypt every record is still reported, with status timeout
// and its stored value, within about one deadline per record; after
// SIGCONT the same records decrypt. Without the option, a frozen Vault is
// an error (fail closed), never a record passed off as decrypted.
func TestConsumeMaxWaitPerDecrypt(t *testing.T) {
	f := setup(t)
	produceSamples(t, f, 3)
	stored := f.raw(t, "purchases")
	const wait = 300 * time.Millisecond
	resume := testkit.PauseVault(t, f.env.Vault)
	start := time.Now()
	got, err := consumeAll(t, f, consume.Options{MaxWaitPerDecrypt: wait})
	took := time.Since(start)
	if err != nil || len(got) != len(stored) {
		t.Fatalf("Vault frozen: %d of %d records reported, %v", len(got), len(stored), err)
	}
	for i, r := range got {
		if r.Decryption.Status != consume.StatusTimeout || r.Decryption.Error == "" {
			t.Fatalf("record %d: %+v, want status timeout", r.Offset, r.Decryption)
		}
		if !bytes.Equal(compact(t, r.Value.Data), compact(t, stored[i].Value)) {
			t.Fatalf("record %d: value %s is not as stored", r.Offset, r.Value.Data)
		}
		if bytes.Contains(r.Value.Data, []byte("Ann Example")) {
			t.Fatal("a timed-out record carries plaintext")
		}
	}
	// Without a deadline the consumer refuses (the vault client's own
	// timeout is 3 s in this fixture).
	if got, err := consumeAll(t, f, consume.Options{}); err == nil {
		t.Fatalf("Vault frozen, no max wait: %d records and no error", len(got))
	}
	resume()
	got, err = consumeAll(t, f, consume.Options{MaxWaitPerDecrypt: 5 * time.Second})
	if err != nil || len(got) != len(stored) {
		t.Fatalf("after SIGCONT: %d records, %v", len(got), err)
	}
	decrypted := 0
	for _, r := range got {
		if r.Decryption.Status == "decrypted" {
			decrypted++
		}
	}
	if decrypted != len(stored)-1 { // the damaged one fails
		t.Fatalf("after SIGCONT: %d decrypted, want %d", decrypted, len(stored)-1)
	}
	t.Logf("Vault frozen: %d records reported with status timeout in %v (max wait %v per record, batch first); after SIGCONT %d decrypted",
		len(stored), took.Round(time.Millisecond), wait, decrypted)
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
