package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// uploadEnv is a real Vault dev server and a kfake broker, a file sender
// over them, and policies: "files" in envelope mode, "purchases" in
// transit field mode.
type uploadEnv struct {
	env    *testkit.Env
	kc     *kafka.Client
	ks     *kafka.Settings
	cfg    *config.File
	keys   *envelope.TransitKeys
	sender *filetransfer.Sender
	cid    string
	quiet  *slog.Logger
}

func newUploadEnv(t *testing.T) *uploadEnv {
	t.Helper()
	env := testkit.Start(t)
	testkit.EnsureEnvelopeKEK(t, env)
	quiet := testkit.Quiet()
	ks := testkit.KafkaSettings(t, env.Brokers, "message.max.bytes", "8388608")
	kc := testkit.KafkaClient(t, ks)
	cfg := testkit.Config(t, "[policy:files]\nmode = envelope\ndek = per-message\n\n[policy:purchases]\nfields = Name transit\n")
	keys := envelope.NewTransitKeys(env.Transit)
	sender, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: keys, Producer: kc, MaxMessageBytes: ks.Sarama.Producer.MaxMessageBytes, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cid, err := kc.ClusterID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &uploadEnv{env: env, kc: kc, ks: ks, cfg: cfg, keys: keys, sender: sender, cid: cid, quiet: quiet}
}

// api serves the API with files as its file sender.
func (u *uploadEnv) api(t *testing.T, files httpapi.FileSender, requestTimeout time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Engine: protect.New(u.env.Transit, protect.Options{}), Policies: u.cfg.Policies,
		Kafka: u.kc, Vault: u.env.VC, Logger: u.quiet, Files: files, RequestTimeout: requestTimeout}))
	t.Cleanup(srv.Close)
	return srv
}

// post uploads body as name to topic and decodes the JSON answer.
func (u *uploadEnv) post(t *testing.T, srv *httptest.Server, topic, name string, body io.Reader) (int, map[string]any) {
	t.Helper()
	target := srv.URL + "/v3/clusters/" + u.cid + "/topics/" + topic + "/files?name=" + url.QueryEscape(name)
	resp, err := http.Post(target, "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, m
}

// receive runs a receiver over topic until caught up and returns the
// files it wrote.
func (u *uploadEnv) receive(t *testing.T, topic string) []filetransfer.Received {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "in")
	op, err := envelope.NewOpener(u.keys, envelope.OpenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	var got []filetransfer.Received
	r, err := filetransfer.NewReceiver(filetransfer.ReceiverOptions{Dir: dir, Topic: topic, Group: "upload-" + topic, Settings: u.ks, Kafka: u.kc, Opener: op,
		Quarantine: &filetransfer.DirQuarantine{Dir: t.TempDir()}, Once: true, Logger: u.quiet, IncompleteTimeout: time.Second,
		OnFile: func(rc filetransfer.Received) { got = append(got, rc) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if sum := fileSum(t, f.Path); sum != f.SHA256 {
			t.Fatalf("%s on disk has sha256 %s, receiver said %s", f.Path, sum, f.SHA256)
		}
	}
	return got
}

// records counts the records of topic.
func (u *uploadEnv) records(t *testing.T, topic string) int64 {
	t.Helper()
	return testkit.Records(t, u.kc, topic)
}

// TestFileUpload streams a file of 3 MiB + 7 bytes in a chunked request body
// to POST .../topics/{topic}/files and receives it back from Kafka with the
// SHA-256 the answer gave; topics without an envelope policy, bad names and
// a gateway without a file sender are refused with their codes.
func TestFileUpload(t *testing.T) {
	u := newUploadEnv(t)
	srv := u.api(t, u.sender, 0)

	// A chunked body (unknown length), written in 64 KiB pieces.
	const size = 3<<20 + 7
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
		_, err := io.CopyBuffer(io.MultiWriter(pw, h), src, make([]byte, 64<<10))
		pw.CloseWithError(err)
	}()
	status, m := u.post(t, srv, "files", "upload.bin", pr)
	want := hex.EncodeToString(h.Sum(nil))
	if status != 200 || m["sha256"] != want || m["size"] != float64(size) || m["chunks"] != float64(7) || m["topic"] != "files" ||
		m["name"] != "upload.bin" || len(fmt.Sprint(m["file_id"])) != 32 {
		t.Fatalf("upload: %d %v (want sha %s)", status, m, want)
	}
	got := u.receive(t, "files")
	if len(got) != 1 || got[0].SHA256 != want || got[0].Size != size || got[0].FileID != m["file_id"] || filepath.Base(got[0].Path) != "upload.bin" {
		t.Fatalf("received %+v", got)
	}

	for _, tc := range []struct {
		srv         *httptest.Server
		topic, name string
		status      int
		code        float64
	}{
		{srv, "purchases", "a.bin", 422, httpapi.CodeFileNotEnvelope},
		{srv, "nopolicy", "a.bin", 403, httpapi.CodeNoPolicy},
		{srv, "files", "../etc/passwd", 400, httpapi.CodeFileName},
		{srv, "files", "/etc/passwd", 400, httpapi.CodeFileName},
		{srv, "files", "", 400, httpapi.CodeFileName},
		{u.api(t, nil, 0), "files", "a.bin", 501, httpapi.CodeFilesDisabled},
	} {
		status, m := u.post(t, tc.srv, tc.topic, tc.name, http.NoBody)
		if status != tc.status || m["error_code"] != tc.code {
			t.Errorf("%s %q: %d %v, want %d %v", tc.topic, tc.name, status, m, tc.status, tc.code)
		}
	}
}

// trickleBody is an upload body written by the test: a first part at
// once, then small pieces until released, then the rest. It hashes what
// it writes.
type trickleBody struct {
	pw      *io.PipeWriter
	sum     hash.Hash
	src     io.Reader
	release chan struct{}
}

func (b *trickleBody) run(first, total int64) {
	w := io.MultiWriter(b.pw, b.sum)
	if _, err := io.CopyN(w, b.src, first); err != nil {
		b.pw.CloseWithError(err)
		return
	}
	sent := first
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-b.release:
			waiting = false
		case <-tick.C:
			if sent+1024 < total { // a trickle keeps the idle timeout away
				if _, err := io.CopyN(w, b.src, 1024); err != nil {
					b.pw.CloseWithError(err)
					return
				}
				sent += 1024
			}
		}
	}
	_, err := io.CopyN(w, b.src, total-sent)
	b.pw.CloseWithError(err)
}

// TestFileUploadStreams shows the upload endpoint never holds the body
// whole: while the client has sent 5 MiB of an 8 MiB + 3 upload and is
// still sending, chunk records of the file are already in Kafka (the
// sender flushes every 4 MiB of chunks). The upload also outlasts the
// server's 1 s request timeout (only an idle timeout between body reads
// applies) and answers the file id, size and SHA-256 of what was sent,
// which the receiver confirms.
func TestFileUploadStreams(t *testing.T) {
	u := newUploadEnv(t)
	const requestTimeout = time.Second
	srv := u.api(t, u.sender, requestTimeout)
	const first, total = 5 << 20, 8<<20 + 3
	pr, pw := io.Pipe()
	body := &trickleBody{pw: pw, sum: sha256.New(), src: io.LimitReader(rand.NewChaCha8([32]byte{9}), total), release: make(chan struct{})}
	go body.run(first, total)

	type answer struct {
		status int
		m      map[string]any
	}
	answered := make(chan answer, 1)
	start := time.Now()
	go func() {
		// post's t.Fatal must not run off the test goroutine: do the
		// request here and decode on the test goroutine's terms.
		target := srv.URL + "/v3/clusters/" + u.cid + "/topics/files/files?name=stream.bin"
		resp, err := http.Post(target, "application/octet-stream", pr)
		if err != nil {
			answered <- answer{status: -1, m: map[string]any{"error": err.Error()}}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		answered <- answer{status: resp.StatusCode, m: m}
	}()

	// The body is unfinished; chunk records must appear anyway.
	deadline := time.Now().Add(30 * time.Second)
	var seen int64
	for seen = u.records(t, "files"); seen < 8; seen = u.records(t, "files") {
		select {
		case a := <-answered:
			t.Fatalf("answered before the body ended: %d %v", a.status, a.m)
		default:
		}
		if time.Now().After(deadline) {
			close(body.release)
			t.Fatalf("no chunk record in Kafka after 5 MiB of an unfinished upload (%d records): the body is buffered", seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d chunk records in Kafka while the upload was still open", seen)
	// Keep the upload open past the request timeout, then finish it.
	for time.Since(start) < 2*requestTimeout {
		time.Sleep(50 * time.Millisecond)
	}
	close(body.release)
	a := <-answered
	want := hex.EncodeToString(body.sum.Sum(nil))
	if a.status != 200 || a.m["sha256"] != want || a.m["size"] != float64(total) || a.m["chunks"] != float64(17) || len(fmt.Sprint(a.m["file_id"])) != 32 {
		t.Fatalf("upload: %d %v (want sha256 %s, %d bytes)", a.status, a.m, want, total)
	}
	got := u.receive(t, "files")
	if len(got) != 1 || got[0].SHA256 != want || got[0].FileID != a.m["file_id"] || got[0].Size != total {
		t.Fatalf("received %+v", got)
	}
}

// fileSum is the SHA-256 of the file at path.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
