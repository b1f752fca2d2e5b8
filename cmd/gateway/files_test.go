package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// fileCLI is a Vault dev server, a kfake broker, the keys the file commands
// need, a configuration file with an envelope policy for topic "files",
// and the VAULT_* environment the commands read.
type fileCLI struct {
	env  *testkit.Env
	conf string
	kc   *kafka.Client
}

func newFileCLI(t *testing.T) *fileCLI {
	env := testkit.Start(t)
	ctx := context.Background()
	testkit.EnsureEnvelopeKEK(t, env)
	if err := env.Transit.EnsureKey(ctx, envelope.DefaultLegacyKEK, transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	testkit.UseVault(t, env)
	conf := filepath.Join(t.TempDir(), "getting_started.ini")
	ini := fmt.Sprintf("[default]\nbootstrap.servers=%s\nmessage.max.bytes=8388608\n\n[policy:files]\nmode = envelope\ndek = per-message\nlegacy = accept\n\n[policy:purchases]\nfields = Name transit\n", env.Brokers[0])
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := testkit.KafkaClient(t, testkit.KafkaSettings(t, env.Brokers))
	return &fileCLI{env: env, conf: conf, kc: kc}
}

// gw runs the gateway command line and returns its output.
func (f *fileCLI) gw(ctx context.Context, args ...string) (string, error) {
	var out testkit.SyncBuffer
	err := run(ctx, &out, append([]string{"--config", f.conf, "--log-level", "warn"}, args...)...)
	return out.String(), err
}

func (f *fileCLI) records(t *testing.T, topic string) int64 {
	t.Helper()
	return testkit.Records(t, f.kc, topic)
}

func writeRandom(t *testing.T, path string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var sentLine = regexp.MustCompile(`(?m)^sent (\S+) file_id=([0-9a-f]{32}|-) size=(\d+) sha256=([0-9a-f]{64}) chunks=(\d+) format=(\S+) topic=files partition=\d+ offsets=\d+-\d+$`)

// TestSendAndReceiveCLI: send-file (chunked and --legacy-format) and
// receive-dir --once round trip, with the printed SHA-256 equal on both
// sides; policy, chunk size and file checks are one-line errors.
func TestSendAndReceiveCLI(t *testing.T) {
	f := newFileCLI(t)
	ctx := context.Background()
	src := t.TempDir()
	big, small := filepath.Join(src, "report.bin"), filepath.Join(src, "large-set-of-info.json")
	bigSum := writeRandom(t, big, 1<<20+5)
	smallSum := writeRandom(t, small, 100_000)

	out, err := f.gw(ctx, "send-file", "--topic", "files", big)
	if err != nil {
		t.Fatalf("send-file: %v\n%s", err, out)
	}
	m := sentLine.FindStringSubmatch(out)
	if m == nil || m[3] != "1048581" || m[4] != bigSum || m[5] != "3" || m[6] != "chunk/1" {
		t.Fatalf("send-file printed:\n%s", out)
	}
	out, err = f.gw(ctx, "send-file", "--topic", "files", "--legacy-format", small)
	if m := sentLine.FindStringSubmatch(out); err != nil || m == nil || m[2] != "-" || m[4] != smallSum || m[6] != "legacy" {
		t.Fatalf("send-file --legacy-format: %v\n%s", err, out)
	}

	dst := filepath.Join(t.TempDir(), "dst")
	q := filepath.Join(t.TempDir(), "q")
	out, err = f.gw(ctx, "receive-dir", dst, "--topic", "files", "--once", "--quarantine", q, "--incomplete-timeout", "2s")
	if err != nil {
		t.Fatalf("receive-dir: %v\n%s", err, out)
	}
	if !strings.Contains(out, "received "+filepath.Join(dst, "report.bin")+" file_id="+m[2]) || !strings.Contains(out, "sha256="+bigSum) ||
		!strings.Contains(out, "received "+filepath.Join(dst, "received-large-set-of-info.json")+" file_id=- size=100000 sha256="+smallSum) {
		t.Fatalf("receive-dir printed:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send-file", "--topic", "nopolicy", big}, "has no [policy:nopolicy]"},
		{[]string{"send-file", "--topic", "purchases", big}, "files need mode = envelope"},
		{[]string{"send-file", "--topic", "files", "--chunk-size", "8388608", big}, "use a chunk size of at most"},
		{[]string{"send-file", "--topic", "files", "--legacy-format", big + "x"}, "no such file"},
		{[]string{"send-file", "--topic", "files", src}, "not a regular file"},
		{[]string{"send-file", big}, "--topic is required"},
	} {
		_, err := f.gw(ctx, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v (want %q)", tc.args, err, tc.want)
		}
	}
	// A legacy file too large for one message.
	huge := filepath.Join(src, "huge.bin")
	writeRandom(t, huge, 4<<20)
	if _, err := f.gw(ctx, "send-file", "--topic", "files", "--legacy-format", huge); err == nil || !strings.Contains(err.Error(), "too large for the legacy one-message format") {
		t.Errorf("legacy too large: %v", err)
	}
}

// TestSendFileVaultDown: with Vault stopped, send-file fails with one clear
// line and the topic gains nothing.
func TestSendFileVaultDown(t *testing.T) {
	f := newFileCLI(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "a.bin")
	writeRandom(t, file, 700_000)
	if out, err := f.gw(ctx, "send-file", "--topic", "files", file); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	before := f.records(t, "files")
	if before != 2 {
		t.Fatalf("%d records", before)
	}
	if err := f.env.Vault.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := f.gw(ctx, "send-file", "--topic", "files", file)
	if err == nil {
		t.Fatal("send-file succeeded without Vault")
	}
	msg := oneLine(err.Error())
	t.Logf("gateway: %s", msg)
	if !strings.Contains(msg, "no data key from Vault, nothing produced") || !strings.Contains(msg, "vault unavailable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unclear error: %s", msg)
	}
	if after := f.records(t, "files"); after != before {
		t.Fatalf("topic grew from %d to %d records", before, after)
	}
}

// TestWatchDirAndRedriveCLI: watch-dir sends a file once across a restart;
// receive-dir quarantines a record that is not a file; redrive produces it
// again and marks it.
func TestWatchDirAndRedriveCLI(t *testing.T) {
	f := newFileCLI(t)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "w.bin"), 1000)
	watch := func() string {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out testkit.SyncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, &out, "--config", f.conf, "--log-level", "warn", "watch-dir", src, "--topic", "files", "--settle", "200ms")
		}()
		time.Sleep(2 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("watch-dir: %v\n%s", err, out.String())
		}
		return out.String()
	}
	if out := watch(); strings.Count(out, "sent ") != 1 || !strings.Contains(out, filepath.Join(src, "w.bin")) {
		t.Fatalf("first watch:\n%s", out)
	}
	if out := watch(); strings.Contains(out, "sent ") {
		t.Fatalf("sent again after a restart:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(src, ".kafkagate-watch-files.json")); err != nil {
		t.Fatal(err)
	}

	// A record that is not a file, quarantined, then redriven.
	dels, err := f.kc.Produce(context.Background(), []kafka.Message{{Topic: "files", Partition: -1, Key: []byte("k"), Value: []byte("plain"), Headers: []kafka.Header{{Key: "app", Value: []byte("x")}}}})
	if err != nil || dels[0].Err != nil {
		t.Fatal(err, dels)
	}
	dst, q := filepath.Join(t.TempDir(), "dst"), filepath.Join(t.TempDir(), "q")
	ctx := context.Background()
	if out, err := f.gw(ctx, "receive-dir", dst, "--topic", "files", "--once", "--quarantine", q); err != nil || !strings.Contains(out, "record quarantined") {
		t.Fatalf("receive-dir: %v\n%s", err, out)
	}
	if _, err := os.ReadFile(filepath.Join(dst, "w.bin")); err != nil {
		t.Fatal(err)
	}
	out, err := f.gw(ctx, "redrive", q, "--topic", "files")
	if err != nil || !strings.Contains(out, "redriven 1 records to files") {
		t.Fatalf("redrive: %v\n%s", err, out)
	}
	if out, err := f.gw(ctx, "redrive", q, "--topic", "files"); err != nil || !strings.Contains(out, "redriven 0 records to files (skipped: 1 already redriven") {
		t.Fatalf("second redrive: %v\n%s", err, out)
	}
	recs, err := f.kc.Read(ctx, "files", dels[0].Partition, dels[0].Offset+1, 1)
	if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Value, []byte("plain")) || string(recs[0].Key) != "k" {
		t.Fatalf("redriven record: %v %+v", err, recs)
	}
}

// TestServeFileUpload: `gateway serve` wires the streaming file upload, so
// a file POSTed to .../topics/files/files is produced encrypted, and
// `receive-dir` writes it with the SHA-256 the upload answered.
func TestServeFileUpload(t *testing.T) {
	f := newFileCLI(t)
	ini, err := os.ReadFile(f.conf)
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	conf := testkit.WriteFile(t, t.TempDir(), "serve.ini", string(ini)+"\n[kafkagate]\nlisten = "+listen+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, out, "--config", conf, "--log-level", "warn", "serve") }()
	client := &http.Client{Timeout: 60 * time.Second}
	waitHealthy(t, client, "http://"+listen+"/healthz", done, out, 30*time.Second)
	cid, err := f.kc.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20+11)
	rand.Read(data)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	resp, err := client.Post("http://"+listen+"/v3/clusters/"+cid+"/topics/files/files?name=up.bin", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		FileID string `json:"file_id"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || ans.SHA256 != want || ans.Size != int64(len(data)) || len(ans.FileID) != 32 {
		t.Fatalf("upload: %d %+v %v\n%s", resp.StatusCode, ans, err, out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	dst := filepath.Join(t.TempDir(), "dst")
	got, err := f.gw(context.Background(), "receive-dir", dst, "--topic", "files", "--once", "--quarantine", filepath.Join(t.TempDir(), "q"))
	if err != nil || !strings.Contains(got, "received "+filepath.Join(dst, "up.bin")+" file_id="+ans.FileID+" size=1048587 sha256="+want) {
		t.Fatalf("receive-dir: %v\n%s", err, got)
	}
	if disk, err := os.ReadFile(filepath.Join(dst, "up.bin")); err != nil || !bytes.Equal(disk, data) {
		t.Fatalf("received file differs: %v", err)
	}
}

// demoConsumer decrypts the original demo's legacy message the way
// consumer_file_transfer.py does, in Python (cryptography's AES-GCM, as the
// legacy golden vector was made): value JSON, 32-byte nonce, ciphertext and
// tag in hex, no associated data, base64 of the file inside. The DEK comes
// as Vault's transit/decrypt returns it (base64).
const demoConsumer = `
import base64, json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = base64.b64decode(sys.argv[1])
v = json.loads(sys.stdin.buffer.read())
b64 = AESGCM(key).decrypt(base64.b64decode(v["nonce"]), bytes.fromhex(v["ciphertext"]) + bytes.fromhex(v["tag"]), None)
sys.stdout.buffer.write(base64.b64decode(b64))
`

// TestSendFileLegacyReadByDemoRules: the message `send-file
// --legacy-format` produces has the demo's shape (no key, exactly the
// headers X-encryptionkey and X-filename) and an implementation of the
// demo consumer's rules in Python recovers the file byte for byte.
func TestSendFileLegacyReadByDemoRules(t *testing.T) {
	if err := exec.Command("python3", "-c", "import cryptography.hazmat.primitives.ciphers.aead").Run(); err != nil {
		t.Skip("python3 with the cryptography package is not available:", err)
	}
	f := newFileCLI(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "large-set-of-info.json")
	writeRandom(t, path, 123_457)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.gw(ctx, "send-file", "--topic", "files", "--legacy-format", path)
	m := regexp.MustCompile(`partition=(\d+) offsets=(\d+)-`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("send-file --legacy-format: %v\n%s", err, out)
	}
	part, _ := strconv.Atoi(m[1])
	off, _ := strconv.ParseInt(m[2], 10, 64)
	recs, err := f.kc.Read(ctx, "files", int32(part), off, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read: %v (%d records)", err, len(recs))
	}
	rec := recs[0]
	hs := map[string]string{}
	for _, h := range rec.Headers {
		hs[h.Key] = string(h.Value)
	}
	if rec.Key != nil || len(rec.Headers) != 2 || hs["X-filename"] != "large-set-of-info.json" || !strings.HasPrefix(hs["X-encryptionkey"], "vault:v1:") {
		t.Fatalf("not the demo's message shape: key %q, headers %v", rec.Key, hs)
	}
	// The demo's consumer unwraps with transit/decrypt/transit, no context.
	opened, err := f.env.Transit.Decrypt(ctx, envelope.DefaultLegacyKEK, []transit.Ciphertext{{Ciphertext: hs["X-encryptionkey"]}})
	if err != nil || opened[0].Err != nil {
		t.Fatalf("unwrap: %v", err)
	}
	py := exec.Command("python3", "-c", demoConsumer, base64.StdEncoding.EncodeToString(opened[0].Plaintext))
	py.Stdin = bytes.NewReader(rec.Value)
	var stderr bytes.Buffer
	py.Stderr = &stderr
	got, err := py.Output()
	if err != nil {
		t.Fatalf("the demo's rules failed: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the demo's rules recovered %d bytes that differ from the %d sent", len(got), len(want))
	}
}
