package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/protect"
)

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8080": true, "127.0.0.1": true, "127.0.0.1:8080": true, "127.9.8.7:1": true,
		"[::1]": true, "[::1]:8080": true, "::1": true,
		"": false, "evil.example": false, "evil.example:8080": false, "localhost.evil.example": false, "10.0.0.1:8080": false,
		"0.0.0.0:8080": false, "[::]:8080": false, "localhost.": false, "127.0.0.1.nip.io": false,
	} {
		if got := httpapi.LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %t, want %t", host, got, want)
		}
	}
}

// firstRead signals when the server first asks for the request body
// (sent after the server's 100 Continue), then blocks until released.
type firstRead struct {
	once    sync.Once
	started chan struct{}
	release chan struct{}
	done    bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	f.once.Do(func() { close(f.started) })
	if f.done {
		return 0, io.EOF
	}
	<-f.release
	f.done = true
	return copy(p, "file content"), nil
}

// upload posts body to the file endpoint with Expect: 100-continue, so
// the body is sent only once the handler reads it.
func upload(t *testing.T, client *http.Client, target, ctype string, body io.Reader) (int, int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		ErrorCode int `json:"error_code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.ErrorCode, resp.Header
}

// TestFileUploadGuards: the file upload takes application/octet-stream
// only (a missing, text/plain or form type is 415, nothing
// produced), and one principal has at most max_uploads_per_principal
// uploads at once: the next is 429 42903 with Retry-After until one ends.
// Real Vault and kfake.
func TestFileUploadGuards(t *testing.T) {
	u := newUploadEnv(t)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Engine: protect.New(u.env.Transit, protect.Options{}), Policies: u.cfg.Policies,
		Kafka: u.kc, Vault: u.env.VC, Logger: u.quiet, Files: u.sender, MaxUploadsPerPrincipal: 1}))
	t.Cleanup(srv.Close)
	target := srv.URL + "/v3/clusters/" + u.cid + "/topics/files/files?name=" + url.QueryEscape("a.txt")
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 30 * time.Second}}

	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json"} {
		if status, code, _ := upload(t, client, target, ct, strings.NewReader("file content")); status != 415 || code != httpapi.CodeContentType {
			t.Errorf("upload with Content-Type %q: %d %d, want 415 %d", ct, status, code, httpapi.CodeContentType)
		}
	}
	if n := u.records(t, "files"); n != 0 {
		t.Fatalf("refused uploads produced %d records", n)
	}

	slow := &firstRead{started: make(chan struct{}), release: make(chan struct{})}
	type result struct{ status, code int }
	first := make(chan result, 1)
	go func() { // ends when slow is released below
		s, c, _ := upload(t, client, target, "application/octet-stream", slow)
		first <- result{s, c}
	}()
	select {
	case <-slow.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the first upload never reached its handler")
	}
	status, code, hdr := upload(t, client, target, "application/octet-stream", strings.NewReader("second"))
	if status != 429 || code != httpapi.CodePrincipalBusy || hdr.Get("Retry-After") == "" {
		t.Errorf("second concurrent upload: %d %d (Retry-After %q), want 429 %d", status, code, hdr.Get("Retry-After"), httpapi.CodePrincipalBusy)
	}
	close(slow.release)
	if r := <-first; r.status != 200 {
		t.Fatalf("first upload: %d %d", r.status, r.code)
	}
	if status, code, _ := upload(t, client, target, "application/octet-stream", strings.NewReader("third")); status != 200 {
		t.Errorf("upload after the first ended: %d %d", status, code)
	}
}
