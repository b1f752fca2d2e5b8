package demo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/demo/internal/encrypted"
	"github.com/kafkagate/kafkagate/demo/internal/plaintext"
	"github.com/kafkagate/kafkagate/demo/internal/purchase"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// programs are the original demo's programs, as built by TestMain.
var programs = []string{"producer", "consumer", "encryptor", "consumer-from-encrypted", "producer-file-transfer", "consumer-file-transfer"}

// binDir holds the built programs (set by TestMain).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kafkagate-demo-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range programs {
		args = append(args, "./"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build the demo programs: %v\n", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// stack is a real Vault dev server and a kfake broker, provisioned for the
// embedded default configuration's policies.
type stack struct {
	env *testkit.Env
	kc  *kafka.Client
	dir string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	env := testkit.Start(t)
	cfg := testkit.Config(t, string(mustRead(t, "../getting_started.ini.orig")))
	testkit.ProvisionDemo(t, env, cfg)
	kc := testkit.KafkaClient(t, testkit.KafkaSettings(t, env.Brokers, "message.max.bytes", "16777216"))
	return &stack{env: env, kc: kc, dir: t.TempDir()}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeConfig writes getting_started.ini.orig with this stack's broker,
// the given number_of_msg and sleep_ms ("" removes the key, as in the
// original template), and absolute demo 3 directories.
func (s *stack) writeConfig(t *testing.T, n int, sleepMS string) string {
	t.Helper()
	src := string(mustRead(t, "../getting_started.ini.orig"))
	repl := []struct{ old, new string }{
		{"bootstrap.servers=127.0.0.1:9092", "bootstrap.servers=" + strings.Join(s.env.Brokers, ",")},
		{"number_of_msg = 10", fmt.Sprintf("number_of_msg = %d", n)},
		{"sourcedir = source", "sourcedir = " + filepath.Join(s.dir, "source")},
		{"destinationdir=destination", "destinationdir=" + filepath.Join(s.dir, "destination")},
		{"group.id=python_example_group_1", "group.id=" + strings.ReplaceAll(t.Name(), "/", "_")},
	}
	if sleepMS == "" {
		repl = append(repl, struct{ old, new string }{"sleep_ms = 1000", ""})
	} else {
		repl = append(repl, struct{ old, new string }{"sleep_ms = 1000", "sleep_ms = " + sleepMS})
	}
	for _, r := range repl {
		if !strings.Contains(src, r.old) {
			t.Fatalf("getting_started.ini.orig has no line %q", r.old)
		}
		src = strings.Replace(src, r.old, r.new, 1)
	}
	path := filepath.Join(s.dir, "getting_started.ini")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// command prepares a demo program with Vault in its environment, no
// terminal (stdin is /dev/null) and its working directory in the stack's
// directory.
func (s *stack) command(ctx context.Context, program string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, program), args...)
	cmd.Dir = s.dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "VAULT_ADDR="+s.env.Vault.Addr, "VAULT_TOKEN="+s.env.Vault.Token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	return cmd, &stdout, &stderr
}

// run runs a program to its end and fails the test unless it exits 0.
func (s *stack) run(t *testing.T, program string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, stdout, stderr := s.command(ctx, program, args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", program, args, err, stdout, stderr)
	}
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", program, stderr)
	}
	return stdout.String()
}

// records reads every record of topic.
func (s *stack) records(t *testing.T, topic string) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.kc.Sarama().RefreshMetadata(topic); err != nil {
		t.Fatalf("metadata %s: %v", topic, err)
	}
	parts, err := s.kc.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []kafka.Record
	for _, p := range parts {
		lo, hi, err := s.kc.Watermarks(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if hi == lo {
			continue
		}
		recs, err := s.kc.Read(ctx, topic, p, lo, int(hi-lo))
		if err != nil {
			t.Fatalf("read %s/%d: %v", topic, p, err)
		}
		out = append(out, recs...)
	}
	return out
}

// waitRecords waits until topic holds n records.
func (s *stack) waitRecords(t *testing.T, topic string, n int, stderr func() string) []kafka.Record {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var recs []kafka.Record
		if ts, err := s.kc.Sarama().Topics(); err == nil && contains(ts, topic) {
			recs = s.records(t, topic)
		} else {
			_ = s.kc.Sarama().RefreshMetadata()
		}
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d of %d records after 60 s; stderr:\n%s", topic, len(recs), n, stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

var producedLine = regexp.MustCompile(`^produced (\S+)/(\d+)@(\d+) key=(\S+) (\{.*\})$`)

// parseProduced parses the producer's output.
func parseProduced(t *testing.T, out string) map[string]purchase.Purchase {
	t.Helper()
	got := map[string]purchase.Purchase{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := producedLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("producer printed %q", line)
		}
		var p purchase.Purchase
		if err := json.Unmarshal([]byte(m[5]), &p); err != nil {
			t.Fatalf("producer printed %q: %v", line, err)
		}
		if p.Name == "" || p.Address == "" || !purchase.IsCard(p.CreditCard) {
			t.Fatalf("producer wrote %+v: want a name, an address and a Luhn-valid DDDD-DDDD-DDDD-DDDD card", p)
		}
		got[m[4]] = p
	}
	return got
}

// secrets are the plaintext byte strings of a purchase that must not be
// stored in an encrypted topic.
func secrets(p purchase.Purchase) [][]byte {
	return [][]byte{[]byte(p.Name), []byte(p.Address), []byte(p.CreditCard), []byte(strings.ReplaceAll(p.CreditCard, "-", ""))}
}

var cardShape = regexp.MustCompile(`^\d{4}-\d{4}-\d{4}-\d{4}$`)

// TestDemoPrograms runs the six programs as the original demo's README
// does, against a real Vault and kfake: demo 1 (plaintext readable), demo
// 2 (encrypted topic holds no plaintext, consumer gets every purchase
// back), demo 3 (files byte-identical, no plaintext in the topic).
func TestDemoPrograms(t *testing.T) {
	s := startStack(t)
	const n = 6
	cfg := s.writeConfig(t, n, "20")
	produced := s.demo1(t, cfg, n)
	s.demo2(t, cfg, n, produced)
	s.demo3(t, cfg)
}

// demo1 runs the producer and the plaintext consumer; it returns what the
// producer wrote, by key.
func (s *stack) demo1(t *testing.T, cfg string, n int) map[string]purchase.Purchase {
	produced := parseProduced(t, s.run(t, "producer", "--config_file", cfg))
	if len(produced) != n {
		t.Fatalf("producer wrote %d distinct keys, want %d", len(produced), n)
	}
	raw := s.records(t, "purchases")
	if len(raw) != n {
		t.Fatalf("purchases holds %d records, want %d", len(raw), n)
	}
	for _, r := range raw {
		var p purchase.Purchase
		if err := json.Unmarshal(r.Value, &p); err != nil || p != produced[string(r.Key)] {
			t.Fatalf("purchases/%d@%d = %s, want the plaintext the producer wrote (%+v)", r.Partition, r.Offset, r.Value, produced[string(r.Key)])
		}
	}
	lines := s.run(t, "consumer", "--config_file", cfg, "--max", fmt.Sprint(n))
	seen := 0
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		var pl plaintext.Line
		var p purchase.Purchase
		if err := json.Unmarshal([]byte(l), &pl); err != nil || pl.Key == nil || json.Unmarshal(pl.Value, &p) != nil {
			t.Fatalf("consumer printed %q", l)
		}
		if p != produced[*pl.Key] {
			t.Fatalf("consumer printed %+v for key %s, producer wrote %+v", p, *pl.Key, produced[*pl.Key])
		}
		seen++
	}
	if seen != n {
		t.Fatalf("consumer printed %d records, want %d", seen, n)
	}
	t.Logf("demo 1: %d purchases produced and read back in plaintext", n)
	return produced
}

// demo2 runs the encryptor until it is interrupted, checks the encrypted
// topic holds no plaintext, and reads it back with the decrypting
// consumer.
func (s *stack) demo2(t *testing.T, cfg string, n int, produced map[string]purchase.Purchase) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	enc, encOut, encErr := s.command(ctx, "encryptor", "--config_file", cfg)
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	encDone := make(chan error, 1)
	go func() { encDone <- enc.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = enc.Process.Kill()
			<-encDone
		}
	}()
	stored := s.waitRecords(t, "purchases_encrypted", n, encErr.String)
	if err := enc.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-encDone:
		stopped = true
		if err != nil {
			t.Fatalf("encryptor after SIGINT: %v\nstderr:\n%s", err, encErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("encryptor did not stop within 30 s of SIGINT; stderr:\n%s", encErr)
	}
	if !strings.Contains(encOut.String(), "encryptor: purchases -> purchases_encrypted") {
		t.Errorf("encryptor printed %q", encOut)
	}
	if len(stored) != n {
		t.Fatalf("purchases_encrypted holds %d records, want %d (one per purchase)", len(stored), n)
	}
	for _, r := range stored {
		p, ok := produced[string(r.Key)]
		if !ok {
			t.Fatalf("purchases_encrypted/%d@%d has key %q, not one the producer wrote", r.Partition, r.Offset, r.Key)
		}
		all := append([]byte(nil), r.Value...)
		for _, h := range r.Headers {
			all = append(append(all, h.Key...), h.Value...)
		}
		for _, sec := range secrets(p) {
			if bytes.Contains(all, sec) {
				t.Fatalf("purchases_encrypted/%d@%d holds plaintext %q: %s", r.Partition, r.Offset, sec, r.Value)
			}
		}
		var st purchase.Purchase
		if err := json.Unmarshal(r.Value, &st); err != nil {
			t.Fatalf("stored value %s: %v", r.Value, err)
		}
		if !strings.HasPrefix(st.Name, "vault:v1:") || !strings.HasPrefix(st.Address, "vault:v1:") {
			t.Errorf("stored Name %q, Address %q: want transit ciphertexts vault:v1:…", st.Name, st.Address)
		}
		if !cardShape.MatchString(st.CreditCard) || st.CreditCard == p.CreditCard {
			t.Errorf("stored credit_card %q for %q: want a different DDDD-DDDD-DDDD-DDDD (FPE)", st.CreditCard, p.CreditCard)
		}
	}
	out := s.run(t, "consumer-from-encrypted", "--config_file", cfg, "--max", fmt.Sprint(n))
	decrypted := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var el encrypted.Line
		var p purchase.Purchase
		if err := json.Unmarshal([]byte(l), &el); err != nil || el.Key == nil || json.Unmarshal(el.Value, &p) != nil {
			t.Fatalf("consumer-from-encrypted printed %q", l)
		}
		if el.Status != protect.StatusDecrypted || p != produced[*el.Key] {
			t.Fatalf("consumer-from-encrypted printed %s %+v for key %s, producer wrote %+v", el.Status, p, *el.Key, produced[*el.Key])
		}
		decrypted++
	}
	if decrypted != n {
		t.Fatalf("consumer-from-encrypted printed %d records, want %d", decrypted, n)
	}
	t.Logf("demo 2: %d records encrypted (no plaintext byte in the topic), %d decrypted equal to what was produced", len(stored), decrypted)
}

// demo3 sends a folder of files (one larger than message.max.bytes) and
// receives them byte-identical.
func (s *stack) demo3(t *testing.T, cfg string) {
	src := filepath.Join(s.dir, "source")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 9<<20+12345) // larger than message.max.bytes (8 MiB): sent in chunks
	_, _ = rand.Read(big)
	want := map[string][]byte{
		"large.bin":  big,
		"notes.txt":  []byte("The quarterly purchase ledger: PLAINTEXT-MARKER-7b1f.\n"),
		".hidden":    []byte("hidden files were sent by the original too\n"),
		"empty.data": {},
	}
	for name, b := range want {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "subdir"), 0o700); err != nil { // not sent: not a regular file
		t.Fatal(err)
	}
	sent := s.run(t, "producer-file-transfer", "--config_file", cfg)
	if got := countPrefix(sent, "sent "); got != len(want) {
		t.Fatalf("producer-file-transfer sent %d files, want %d:\n%s", got, len(want), sent)
	}
	for _, r := range s.records(t, "purchases_large_encrypted") {
		if bytes.Contains(r.Value, []byte("PLAINTEXT-MARKER-7b1f")) || bytes.Contains(r.Value, big[:64]) || bytes.Contains(r.Value, big[len(big)-64:]) {
			t.Fatalf("purchases_large_encrypted/%d@%d holds file plaintext", r.Partition, r.Offset)
		}
	}
	recv := s.run(t, "consumer-file-transfer", "--config_file", cfg, "--once")
	dst := filepath.Join(s.dir, "destination")
	// The receiver keeps its state in a .kafkagate directory and writes a
	// hidden file's name with a "_" prefix (filetransfer.SafeName).
	ents, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if e.Name() == ".kafkagate" && e.IsDir() {
			continue
		}
		files = append(files, e.Name())
	}
	if len(files) != len(want) {
		t.Fatalf("destination holds %v, want %d files; consumer-file-transfer printed:\n%s", files, len(want), recv)
	}
	for name, b := range want {
		stored := name
		if strings.HasPrefix(name, ".") {
			stored = "_" + name
		}
		got, err := os.ReadFile(filepath.Join(dst, stored))
		if err != nil {
			t.Fatalf("%v; consumer-file-transfer printed:\n%s", err, recv)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s: received %d bytes, not byte-identical to the %d sent", name, len(got), len(b))
		}
	}
	t.Logf("demo 3: %d files (largest %d bytes, above message.max.bytes) received byte-identical", len(want), len(big))
}

// TestProducerWithoutSleepMs runs the producer on the original template's
// [plaintext-msg-demo], which has no sleep_ms (the original crashed).
func TestProducerWithoutSleepMs(t *testing.T) {
	s := startStack(t)
	cfg := s.writeConfig(t, 2, "")
	if strings.Contains(string(mustRead(t, cfg)), "sleep_ms") {
		t.Fatal("the config still has sleep_ms")
	}
	produced := parseProduced(t, s.run(t, "producer", "--config_file", cfg))
	if len(produced) != 2 {
		t.Fatalf("producer wrote %d records, want 2", len(produced))
	}
	if got := len(s.records(t, "purchases")); got != 2 {
		t.Fatalf("purchases holds %d records, want 2", got)
	}
}

// TestProgramErrors: bad usage and a bad configuration give one line on
// stderr and a non-zero exit, never a panic.
func TestProgramErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ini")
	if err := os.WriteFile(bad, []byte("[plaintext-msg-demo]\nnumber_of_msg = ten\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noVault := filepath.Join(dir, "ok.ini")
	if err := os.WriteFile(noVault, []byte("[default]\nbootstrap.servers=127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		program string
		args    []string
		code    int
		want    string
	}{
		{"producer", []string{"--config_file", filepath.Join(dir, "missing.ini")}, 1, "missing.ini"},
		{"producer", []string{"--config_file", bad}, 1, "number_of_msg"},
		{"consumer", []string{"--max", "-1"}, 2, "--max -1"},
		{"producer", []string{"--reset"}, 2, "flag provided but not defined: -reset"},
		{"encryptor", []string{"--config_file", noVault}, 1, "VAULT_ADDR"},
		{"consumer-file-transfer", []string{"extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		cmd := exec.Command(filepath.Join(binDir, c.program), c.args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != c.code {
			t.Errorf("%s %v: %v, want exit %d; stderr %q", c.program, c.args, err, c.code, stderr.String())
			continue
		}
		msg := strings.TrimSpace(stderr.String())
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
			t.Errorf("%s %v: stderr %q, want a line naming %q", c.program, c.args, msg, c.want)
		}
		if c.code == 1 && strings.Count(msg, "\n") != 0 {
			t.Errorf("%s %v: stderr has %d lines, want one: %q", c.program, c.args, strings.Count(msg, "\n")+1, msg)
		}
	}
}

// countPrefix counts the lines of out that start with prefix.
func countPrefix(out, prefix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
