package testkit

// Outside Kafka clients: kcat (librdkafka's CLI), Debian's
// python3-confluent-kafka (librdkafka's Python binding) and KafkaJS (a
// pure JavaScript client from the npm registry), driven as producers and
// group consumers against a bootstrap address, with optional SASL. The
// Python and JavaScript drivers are testdata/clients/confluent.py and
// kafkajs.js; KafkaJS is installed with `npm ci` from
// testdata/clients/package-lock.json into a cache directory outside the
// clone. A missing client skips the test, or fails it when
// KAFKAGATE_REQUIRE_CLIENTS (kcat: KAFKAGATE_REQUIRE_KCAT) is set, as
// `make test` does after `make deps` installed them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClientSASL is an outside client's SASL login.
type ClientSASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string
	Password  string
}

// ClientConn is where and how an outside client connects.
type ClientConn struct {
	Bootstrap string      // host:port
	SASL      *ClientSASL // nil: no SASL (plaintext)
	Timeout   time.Duration
}

func (c ClientConn) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 60 * time.Second
	}
	return c.Timeout
}

// ClientMessage is a record an outside client produces or read. Partition
// and Offset are set on read.
type ClientMessage struct {
	Key, Value []byte
	Partition  int32
	Offset     int64
}

// OutsideClient is an independent Kafka client implementation.
type OutsideClient interface {
	Name() string
	// Produce sends msgs to topic (acks=all, idempotent) and returns once
	// every one is acknowledged, or the first error.
	Produce(ctx context.Context, c ClientConn, topic string, msgs []ClientMessage) error
	// Consume joins group, reads n records of topic from the earliest
	// offset (the group's committed offset when it has one), commits them
	// and returns them.
	Consume(ctx context.Context, c ClientConn, topic, group string, n int) ([]ClientMessage, error)
}

// ClientMaker makes one kind of outside client for t, skipping t (or
// failing it when its packages are required) when it is not installed.
type ClientMaker struct {
	Name string
	New  func(t testing.TB) OutsideClient
}

// OutsideClients are the outside clients the tests drive.
func OutsideClients() []ClientMaker {
	return []ClientMaker{{"kcat", KcatClient}, {"python-confluent-kafka", PythonClient}, {"kafkajs", KafkaJSClient}}
}

// clientsDir is testdata/clients beside this file.
func clientsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "clients")
}

// missingClient skips t, or fails it when KAFKAGATE_REQUIRE_CLIENTS is set.
func missingClient(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("KAFKAGATE_REQUIRE_CLIENTS") != "" {
		t.Fatalf("%s (make deps installs it)", what)
	}
	t.Skip(what)
}

// job is what the Python and JavaScript drivers read on stdin.
type job struct {
	Mode      string       `json:"mode"`
	Bootstrap string       `json:"bootstrap"`
	Topic     string       `json:"topic"`
	Group     string       `json:"group,omitempty"`
	Count     int          `json:"count,omitempty"`
	TimeoutMS int64        `json:"timeout_ms"`
	SASL      *jobSASL     `json:"sasl"`
	Messages  []jobMessage `json:"messages,omitempty"`
}

type jobSASL struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

type jobMessage struct {
	Key       []byte `json:"key"` // base64 in JSON; null for nil
	Value     []byte `json:"value"`
	Partition int32  `json:"partition,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
}

func newJob(mode string, c ClientConn, topic string) job {
	j := job{Mode: mode, Bootstrap: c.Bootstrap, Topic: topic, TimeoutMS: c.timeout().Milliseconds()}
	if c.SASL != nil {
		j.SASL = &jobSASL{c.SASL.Mechanism, c.SASL.Username, c.SASL.Password}
	}
	return j
}

// scriptClient runs a driver script that reads a job on stdin.
type scriptClient struct {
	name string
	argv []string
	env  []string
}

func (s *scriptClient) Name() string { return s.name }

func (s *scriptClient) run(ctx context.Context, c ClientConn, j job) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout()+30*time.Second)
	defer cancel()
	in, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", s.name, j.Mode, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func (s *scriptClient) Produce(ctx context.Context, c ClientConn, topic string, msgs []ClientMessage) error {
	j := newJob("produce", c, topic)
	for _, m := range msgs {
		j.Messages = append(j.Messages, jobMessage{Key: m.Key, Value: m.Value})
	}
	_, err := s.run(ctx, c, j)
	return err
}

func (s *scriptClient) Consume(ctx context.Context, c ClientConn, topic, group string, n int) ([]ClientMessage, error) {
	j := newJob("consume", c, topic)
	j.Group, j.Count = group, n
	out, err := s.run(ctx, c, j)
	if err != nil {
		return nil, err
	}
	var res struct {
		Records []jobMessage `json:"records"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("%s consume: output: %w", s.name, err)
	}
	recs := make([]ClientMessage, len(res.Records))
	for i, r := range res.Records {
		recs[i] = ClientMessage{Key: r.Key, Value: r.Value, Partition: r.Partition, Offset: r.Offset}
	}
	return recs, nil
}

// systemPython is Debian's interpreter: python3-confluent-kafka installs
// for it, whatever python3 comes first on PATH.
const systemPython = "/usr/bin/python3"

// PythonClient drives Debian's python3-confluent-kafka.
func PythonClient(t testing.TB) OutsideClient {
	t.Helper()
	if out, err := exec.Command(systemPython, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		missingClient(t, fmt.Sprintf("python3-confluent-kafka is not installed for %s: %v %s", systemPython, err, bytes.TrimSpace(out)))
	}
	return &scriptClient{name: "python-confluent-kafka", argv: []string{systemPython, filepath.Join(clientsDir(), "confluent.py")}}
}

// KafkaJSClient drives KafkaJS with node, installing the pinned modules
// first when they are not in the cache (KafkaJSModules).
func KafkaJSClient(t testing.TB) OutsideClient {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missingClient(t, "node is not installed")
	}
	modules, err := KafkaJSModules(context.Background())
	if err != nil {
		missingClient(t, err.Error())
	}
	return &scriptClient{name: "kafkajs", argv: []string{node, filepath.Join(clientsDir(), "kafkajs.js")},
		env: []string{"NODE_PATH=" + modules}}
}

// KafkaJSModules returns the node_modules directory holding KafkaJS as
// testdata/clients/package-lock.json pins it, running `npm ci` into
// $KAFKAGATE_NODE_CACHE (default <user cache dir>/kafkagate/node), in a
// directory named after the lock file's hash, when it is not there yet.
// The install goes to a temporary directory renamed into place, so
// concurrent test binaries do not see half an install.
func KafkaJSModules(ctx context.Context) (string, error) {
	src := clientsDir()
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("kafkajs: %w", err)
	}
	base := os.Getenv("KAFKAGATE_NODE_CACHE")
	if base == "" {
		ucd, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("kafkajs: no cache directory: %w", err)
		}
		base = filepath.Join(ucd, "kafkagate", "node")
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(base, "kafkajs-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "kafkajs", "package.json")); err == nil {
		return modules, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("kafkajs is not installed and npm is not on PATH")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("kafkajs: %w", err)
	}
	tmp, err := os.MkdirTemp(base, "install-")
	if err != nil {
		return "", fmt.Errorf("kafkajs: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", fmt.Errorf("kafkajs: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return "", fmt.Errorf("kafkajs: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("kafkajs: npm ci: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test binary finished first: use its install.
		if _, serr := os.Stat(filepath.Join(modules, "kafkajs", "package.json")); serr != nil {
			return "", fmt.Errorf("kafkajs: %w", err)
		}
	}
	return modules, nil
}

// kcatClient drives kcat with a librdkafka configuration file (-F), so
// passwords stay off the command line.
type kcatClient struct{ path string }

// KcatClient drives kcat (see Kcat for when it is required).
func KcatClient(t testing.TB) OutsideClient {
	t.Helper()
	return &kcatClient{path: Kcat(t)}
}

func (k *kcatClient) Name() string { return "kcat" }

// config writes c's librdkafka properties to a temporary file.
func (k *kcatClient) config(c ClientConn, extra ...string) (string, func(), error) {
	props := append([]string{"client.id=kafkagate-testkit-kcat"}, extra...)
	if c.SASL != nil {
		props = append(props, "security.protocol=SASL_PLAINTEXT", "sasl.mechanisms="+c.SASL.Mechanism,
			"sasl.username="+c.SASL.Username, "sasl.password="+c.SASL.Password)
	}
	dir, err := os.MkdirTemp("", "kcat-")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "kcat.conf")
	if err := os.WriteFile(path, []byte(strings.Join(props, "\n")+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

func (k *kcatClient) run(ctx context.Context, c ClientConn, stdin io.Reader, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout()+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.path, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kcat: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	// kcat -P exits 0 after delivery failures it only prints.
	if e := stderr.String(); strings.Contains(e, "ERROR") && slices.Contains(args, "-P") {
		return nil, fmt.Errorf("kcat: %s", strings.TrimSpace(e))
	}
	return stdout.Bytes(), nil
}

// Produce sends each message as one file (kcat -P <file>), so values may
// hold any byte; keys are passed with -k and must hold no NUL. kcat skips
// empty files: an empty value goes through standard input instead
// ("<key>\t\n" with -K '\t'), so its key must hold no tab or newline.
func (k *kcatClient) Produce(ctx context.Context, c ClientConn, topic string, msgs []ClientMessage) error {
	ms := strconv.FormatInt(c.timeout().Milliseconds(), 10)
	conf, done, err := k.config(c, "acks=all", "enable.idempotence=true", "message.timeout.ms="+ms)
	if err != nil {
		return err
	}
	defer done()
	dir := filepath.Dir(conf)
	for i, m := range msgs {
		args := []string{"-q", "-F", conf, "-b", c.Bootstrap, "-t", topic, "-P"}
		if len(m.Value) == 0 {
			if len(m.Key) == 0 || bytes.ContainsAny(m.Key, "\t\n\x00") {
				return errors.New("kcat: an empty value needs a key without tab, newline or NUL")
			}
			if _, err := k.run(ctx, c, bytes.NewReader(append(append([]byte{}, m.Key...), '\t', '\n')), append(args, "-K", "\t")...); err != nil {
				return err
			}
			continue
		}
		if bytes.IndexByte(m.Key, 0) >= 0 {
			return errors.New("kcat: a key holding NUL cannot be produced")
		}
		f := filepath.Join(dir, "msg"+strconv.Itoa(i))
		if err := os.WriteFile(f, m.Value, 0o600); err != nil {
			return err
		}
		if m.Key != nil {
			args = append(args, "-k", string(m.Key))
		}
		if _, err := k.run(ctx, c, nil, append(args, f)...); err != nil {
			return err
		}
	}
	return nil
}

// Consume runs kcat as a balanced group consumer (-G): it commits what it
// read when it closes.
func (k *kcatClient) Consume(ctx context.Context, c ClientConn, topic, group string, n int) ([]ClientMessage, error) {
	conf, done, err := k.config(c, "auto.offset.reset=earliest", "session.timeout.ms=10000")
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := k.run(ctx, c, nil, "-q", "-F", conf, "-b", c.Bootstrap, "-G", group, "-c", strconv.Itoa(n),
		"-f", "%p %o %K %S\n%k%s", topic)
	if err != nil {
		return nil, err
	}
	recs, err := parseKcat(out)
	if err == nil && len(recs) != n {
		err = fmt.Errorf("kcat: read %d of %d records", len(recs), n)
	}
	return recs, err
}

// parseKcat reads "%p %o %K %S\n%k%s" records: lengths of -1 are NULL.
func parseKcat(out []byte) ([]ClientMessage, error) {
	r := bufio.NewReader(bytes.NewReader(out))
	var recs []ClientMessage
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return recs, nil
		}
		var m ClientMessage
		var klen, vlen int
		if _, serr := fmt.Sscanf(line, "%d %d %d %d\n", &m.Partition, &m.Offset, &klen, &vlen); serr != nil {
			return nil, fmt.Errorf("kcat output %q: %w", line, serr)
		}
		for _, f := range []struct {
			n   int
			dst *[]byte
		}{{klen, &m.Key}, {vlen, &m.Value}} {
			if f.n < 0 {
				continue
			}
			*f.dst = make([]byte, f.n)
			if _, err := io.ReadFull(r, *f.dst); err != nil {
				return nil, fmt.Errorf("kcat output: %w", err)
			}
		}
		recs = append(recs, m)
	}
}
