package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/config"
	"github.com/kafkagate/kafkagate/devenv"
	"github.com/kafkagate/kafkagate/envelope"
	"github.com/kafkagate/kafkagate/filetransfer"
	"github.com/kafkagate/kafkagate/httpapi"
	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/protect"
	"github.com/kafkagate/kafkagate/transit"
)

// TestFileUpload streams a file of 3 MiB + 7 bytes in a chunked request body
// to POST .../topics/{topic}/files and receives it back from Kafka with the
// SHA-256 the answer gave; topics without an envelope policy, bad names and
// a gateway without a file sender are refused with their codes.
func TestFileUpload(t *testing.T) {
	env := devenv.Start(t)
	ctx := context.Background()
	if err := env.Transit.EnsureKey(ctx, envelope.DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ks, err := kafka.Configure(map[string]string{"bootstrap.servers": env.Brokers[0], "message.max.bytes": "8388608"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kafka.Dial(ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	cfg, err := config.Parse([]byte("[policy:files]\nmode = envelope\ndek = per-message\n\n[policy:purchases]\nfields = Name transit\n"))
	if err != nil {
		t.Fatal(err)
	}
	keys := envelope.NewTransitKeys(env.Transit)
	sender, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: keys, Producer: kc, MaxMessageBytes: ks.Sarama.Producer.MaxMessageBytes, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	api := func(files httpapi.FileSender) *httptest.Server {
		srv := httptest.NewServer(httpapi.New(httpapi.Config{Engine: protect.New(env.Transit, protect.Options{}), Policies: cfg.Policies,
			Kafka: kc, Vault: env.VC, Logger: quiet, Files: files}))
		t.Cleanup(srv.Close)
		return srv
	}
	srv := api(sender)
	cid, err := kc.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	post := func(srv *httptest.Server, topic, name string, body io.Reader) (int, map[string]any) {
		t.Helper()
		u := srv.URL + "/v3/clusters/" + cid + "/topics/" + topic + "/files?name=" + url.QueryEscape(name)
		resp, err := http.Post(u, "application/octet-stream", body)
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

	// A chunked body (unknown length), written in 64 KiB pieces.
	const size = 3<<20 + 7
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
		_, err := io.CopyBuffer(io.MultiWriter(pw, h), src, make([]byte, 64<<10))
		pw.CloseWithError(err)
	}()
	status, m := post(srv, "files", "upload.bin", pr)
	want := hex.EncodeToString(h.Sum(nil))
	if status != 200 || m["sha256"] != want || m["size"] != float64(size) || m["chunks"] != float64(7) || m["topic"] != "files" ||
		m["name"] != "upload.bin" || len(m["file_id"].(string)) != 32 {
		t.Fatalf("upload: %d %v (want sha %s)", status, m, want)
	}

	dir := filepath.Join(t.TempDir(), "in")
	op, _ := envelope.NewOpener(keys, envelope.OpenerOptions{})
	var got []filetransfer.Received
	r, err := filetransfer.NewReceiver(filetransfer.ReceiverOptions{Dir: dir, Topic: "files", Group: "upload", Settings: ks, Kafka: kc, Opener: op,
		Quarantine: &filetransfer.DirQuarantine{Dir: t.TempDir()}, Once: true, Logger: quiet, IncompleteTimeout: time.Second,
		OnFile: func(rc filetransfer.Received) { got = append(got, rc) }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := r.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SHA256 != want || got[0].FileID != m["file_id"] || filepath.Base(got[0].Path) != "upload.bin" {
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
		{srv, "files", "", 400, httpapi.CodeFileName},
		{api(nil), "files", "a.bin", 501, httpapi.CodeFilesDisabled},
	} {
		status, m := post(tc.srv, tc.topic, tc.name, http.NoBody)
		if status != tc.status || m["error_code"] != tc.code {
			t.Errorf("%s %q: %d %v, want %d %v", tc.topic, tc.name, status, m, tc.status, tc.code)
		}
	}
}
