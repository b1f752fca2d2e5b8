package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const consumeCLIConfig = `
[policy:purchases]
fields = Name transit, Address transit

[policy:mixed]
fields = Name transit, Address transit

[policy:typed]
mode = passthrough
`

const consumePurchase = `{"Name":"Ann Example","Address":"1 Main St, Springfield","tier":"gold"}`

// consumeCLI is the built binary, Vault, kfake and a gateway in-process
// that writes the records the binary then reads.
type consumeCLI struct {
	bin, cfgPath string
	env          *testkit.Env
	gw           *server.Gateway
}

func startConsumeCLI(t *testing.T) *consumeCLI {
	t.Helper()
	c := &consumeCLI{bin: buildGateway(t), env: testkit.Start(t)}
	c.cfgPath = filepath.Join(t.TempDir(), "kafkagate.ini")
	if err := os.WriteFile(c.cfgPath, []byte(consumeCLIConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c.gw = testkit.Gateway(t, c.env, server.Options{Config: testkit.Config(t, consumeCLIConfig), Vault: testkit.RootVault(c.env, 3*time.Second)})
	return c
}

// produce writes values to topic, encrypted by its policy unless plain;
// damaged makes every ciphertext of the encrypted value inauthentic.
func (c *consumeCLI) produce(t *testing.T, topic, value string, plain, damaged bool) {
	t.Helper()
	m := kafka.Message{Topic: topic, Partition: 0, Value: []byte(value)}
	if !plain {
		m = testkit.Seal(t, c.gw, topic, []byte(value))[0]
		if damaged {
			var v map[string]any
			if err := json.Unmarshal(m.Value, &v); err != nil {
				t.Fatal(err)
			}
			for k, x := range v {
				if s, ok := x.(string); ok && strings.HasPrefix(s, "vault:v") {
					v[k] = s[:len(s)-8] + "AAAAAAA="
				}
			}
			m.Value, _ = json.Marshal(v)
		}
	}
	testkit.Produce(t, c.gw.Kafka, m)
}

// stored reads topic as stored (the tests write partition 0 only).
func (c *consumeCLI) stored(t *testing.T, topic string) []kafka.Record {
	t.Helper()
	return testkit.Stored(t, c.gw.Kafka, topic)
}

// consume runs `gateway consume --topic topic args...` and returns stdout,
// stderr and the exit status.
func (c *consumeCLI) consume(t *testing.T, topic string, args ...string) ([]consume.Line, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--config", c.cfgPath, "--brokers=" + c.env.Brokers[0], "consume", "--log-level", "error", "--topic", topic}, args...)
	cmd := exec.CommandContext(ctx, c.bin, all...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+c.env.Vault.Addr, "VAULT_TOKEN="+c.env.Vault.Token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("gateway consume: %v", err)
		}
		code = ee.ExitCode()
	}
	var recs []consume.Line
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r consume.Line
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("stdout is not JSON lines: %v", err)
		}
		recs = append(recs, r)
	}
	return recs, stderr.String(), code
}

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return buf.String()
}

// TestCLIConsume runs the built `gateway consume` against real Vault and
// kfake (which auto-creates topics, like Apache Kafka by default).
func TestCLIConsume(t *testing.T) {
	c := startConsumeCLI(t)
	c.produce(t, "purchases", consumePurchase, false, false)
	c.produce(t, "purchases", consumePurchase, false, true) // undecryptable
	c.produce(t, "purchases", consumePurchase, false, false)
	stored := c.stored(t, "purchases")
	if len(stored) != 3 {
		t.Fatalf("purchases holds %d records", len(stored))
	}

	t.Run("unknown topic: one line, exit 1, not created", func(t *testing.T) {
		recs, stderr, code := c.consume(t, "nope")
		line := strings.TrimSuffix(stderr, "\n")
		if code != 1 || len(recs) != 0 || strings.Contains(line, "\n") ||
			!strings.HasPrefix(line, "gateway: ") || !strings.Contains(line, `"nope"`) || !strings.Contains(line, kafka.ErrUnknownTopic.Error()) {
			t.Fatalf("exit %d, %d records, stderr %q", code, len(recs), stderr)
		}
		if testkit.TopicExists(t, c.gw.Kafka, "nope") {
			t.Fatal("gateway consume created topic nope")
		}
	})

	t.Run("treat-undecryptable-as-plaintext", func(t *testing.T) {
		for _, treat := range []bool{false, true} {
			var args []string
			if treat {
				args = []string{"--treat-undecryptable-as-plaintext"}
			}
			recs, stderr, code := c.consume(t, "purchases", args...)
			if code != 0 || len(recs) != 3 {
				t.Fatalf("treat=%v: exit %d, %d records, stderr %q", treat, code, len(recs), stderr)
			}
			for i, r := range recs {
				if r.Offset != stored[i].Offset {
					t.Fatalf("record %d has offset %d", i, r.Offset)
				}
				if i != 1 {
					if r.Decryption.Status != "decrypted" || compactJSON(t, r.Value.Data) != consumePurchase {
						t.Fatalf("treat=%v: good record %d: %s %+v", treat, i, r.Value.Data, r.Decryption)
					}
					continue
				}
				if !treat {
					if r.Decryption.Status != "failed" || compactJSON(t, r.Value.Data) != compactJSON(t, stored[1].Value) {
						t.Fatalf("default: damaged record: %s %+v", r.Value.Data, r.Decryption)
					}
					continue
				}
				var b64 string
				if r.Decryption.Status != consume.StatusRaw || r.Value.Type != "BINARY" || json.Unmarshal(r.Value.Data, &b64) != nil {
					t.Fatalf("treat: damaged record: status %q, value %s %s", r.Decryption.Status, r.Value.Type, r.Value.Data)
				}
				if raw, _ := base64.StdEncoding.DecodeString(b64); !bytes.Equal(raw, stored[1].Value) {
					t.Fatalf("treat: value %q is not the stored bytes %q", raw, stored[1].Value)
				}
				if strings.Contains(string(r.Value.Data), "Ann Example") {
					t.Fatal("raw record carries plaintext")
				}
			}
		}
	})

	t.Run("require-encrypted", func(t *testing.T) {
		const plain = `{"Name":"Bob Plain","Address":"2 Side St","tier":"basic"}`
		c.produce(t, "mixed", consumePurchase, false, false)
		c.produce(t, "mixed", plain, true, false)
		c.produce(t, "mixed", consumePurchase, false, false)
		// Without the flag the plain record is printed as unencrypted.
		recs, stderr, code := c.consume(t, "mixed")
		if code != 0 || len(recs) != 3 || recs[1].Decryption.Status != "unencrypted" {
			t.Fatalf("without --require-encrypted: exit %d, %d records, stderr %q", code, len(recs), stderr)
		}
		recs, stderr, code = c.consume(t, "mixed", "--require-encrypted")
		if code != 1 || len(recs) != 2 {
			t.Fatalf("--require-encrypted: exit %d, %d records, stderr %q", code, len(recs), stderr)
		}
		for _, r := range recs {
			if r.Decryption.Status != "decrypted" || r.Offset == 1 {
				t.Fatalf("--require-encrypted printed %d %+v", r.Offset, r.Decryption)
			}
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(lines) != 2 || lines[0] != "refused: record mixed/0@1 is not encrypted under the topic's policy (status unencrypted)" ||
			lines[1] != "gateway: 1 record(s) not encrypted under the topic's policy refused (--require-encrypted)" {
			t.Fatalf("stderr %q", stderr)
		}
		if strings.Contains(stderr, "Bob Plain") {
			t.Fatal("the refused record's content is on stderr")
		}
	})

	t.Run("max-wait-per-decrypt with Vault frozen", func(t *testing.T) {
		resume := testkit.PauseVault(t, c.env.Vault)
		start := time.Now()
		recs, stderr, code := c.consume(t, "purchases", "--max-wait-per-decrypt", "300ms")
		took := time.Since(start)
		if code != 0 || len(recs) != len(stored) {
			t.Fatalf("Vault frozen: exit %d, %d of %d records, stderr %q", code, len(recs), len(stored), stderr)
		}
		for i, r := range recs {
			if r.Offset != stored[i].Offset || r.Decryption.Status != consume.StatusTimeout || r.Decryption.Error == "" {
				t.Fatalf("record %d: offset %d %+v, want status timeout", i, r.Offset, r.Decryption)
			}
			if compactJSON(t, r.Value.Data) != compactJSON(t, stored[i].Value) {
				t.Fatalf("record %d: value %s is not as stored", i, r.Value.Data)
			}
			if strings.Contains(string(r.Value.Data), "Ann Example") {
				t.Fatal("a timed-out record carries plaintext")
			}
		}
		resume()
		recs, stderr, code = c.consume(t, "purchases", "--max-wait-per-decrypt", "10s")
		if code != 0 || len(recs) != 3 || recs[0].Decryption.Status != "decrypted" || recs[2].Decryption.Status != "decrypted" {
			t.Fatalf("after SIGCONT: exit %d, %d records, stderr %q", code, len(recs), stderr)
		}
		t.Logf("Vault frozen: %d records printed with status timeout, exit 0; the command ran %v (max wait 300ms per record); after SIGCONT they decrypt",
			len(stored), took.Round(time.Millisecond))
	})
}

// TestCLIConsumeKeepsTypes: records produced through the API as STRING,
// BINARY and JSON print with those types; the kafkagate.* headers only
// with --internal-headers.
func TestCLIConsumeKeepsTypes(t *testing.T) {
	c := startConsumeCLI(t)
	srv := testkit.ServeAPI(t, c.gw)
	url := srv.URL + "/v3/clusters/" + testkit.ClusterID(t, c.gw) + "/topics/typed/records"
	for _, v := range []string{`{"type":"STRING","data":"123"}`, `{"type":"BINARY","data":"aGVsbG8="}`, `{"type":"JSON","data":{"a":1}}`} {
		if resp, b := testkit.Do(t, nil, "POST", url, "", `{"partition_id":0,"value":`+v+`}`); resp.StatusCode != 200 {
			t.Fatalf("produce: %d %s", resp.StatusCode, b)
		}
	}
	recs, stderr, code := c.consume(t, "typed")
	if code != 0 || len(recs) != 3 {
		t.Fatalf("consume: exit %d, %d records: %s", code, len(recs), stderr)
	}
	want := []struct{ typ, data string }{{"STRING", `"123"`}, {"BINARY", `"aGVsbG8="`}, {"JSON", `{"a":1}`}}
	for i, r := range recs {
		if r.Value.Type != want[i].typ || string(r.Value.Data) != want[i].data || len(r.Headers) != 0 {
			t.Fatalf("record %d: %s %s headers %+v; want %s %s and no headers", i, r.Value.Type, r.Value.Data, r.Headers, want[i].typ, want[i].data)
		}
	}
	recs, stderr, code = c.consume(t, "typed", "--internal-headers")
	if code != 0 || len(recs) != 3 || len(recs[0].Headers) != 1 || recs[0].Headers[0].Name != "kafkagate.type" {
		t.Fatalf("consume --internal-headers: exit %d %+v: %s", code, recs, stderr)
	}
}
