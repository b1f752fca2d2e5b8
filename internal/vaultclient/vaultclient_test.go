package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/kms"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{&api.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}}, ErrDenied},
		{&api.ResponseError{StatusCode: 404}, ErrNotFound},
		{&api.ResponseError{StatusCode: 400, Errors: []string{"bad"}}, ErrInvalid},
		{&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, ErrUnavailable},
		{&api.ResponseError{StatusCode: 500}, ErrUnavailable},
		{&url.Error{Op: "Put", URL: "http://127.0.0.1:1/v1/x?token=secret", Err: errors.New("connection refused")}, ErrUnavailable},
		{fmt.Errorf("wrapped: %w", &url.Error{Op: "Put", URL: "u", Err: context.Canceled}), context.Canceled},
		{context.DeadlineExceeded, ErrUnavailable},
	}
	for _, c := range cases {
		got := Classify("op", c.err)
		if !errors.Is(got, c.want) {
			t.Errorf("%v: got %v, want kind %v", c.err, got, c.want)
		}
	}
	if s := Classify("op", &url.Error{Op: "Put", URL: "http://h/v1/x?token=secret", Err: errors.New("refused")}).Error(); strings.Contains(s, "secret") {
		t.Errorf("query string leaked: %s", s)
	}
}

func TestNewRequiresAddress(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty address accepted")
	}
}

// TestErrorsAreKMSNeutral checks that Vault's errors match the neutral
// kms errors (they are the same values) and keep Vault's wording.
func TestErrorsAreKMSNeutral(t *testing.T) {
	cases := []struct {
		status  int
		neutral error
		words   string
	}{
		{403, kms.ErrDenied, "vault permission denied"},
		{404, kms.ErrNotFound, "vault path not found"},
		{400, kms.ErrInvalid, "vault rejected the request"},
		{503, kms.ErrUnavailable, "vault unavailable"},
	}
	for _, c := range cases {
		err := fmt.Errorf("outer: %w", Classify("op", &api.ResponseError{StatusCode: c.status}))
		if !errors.Is(err, c.neutral) || !kms.IsCallError(err) {
			t.Errorf("HTTP %d: %v does not match %v", c.status, err, c.neutral)
		}
		var ve *Error
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.words) {
			t.Errorf("HTTP %d: %q lacks %q or is no *Error", c.status, err, c.words)
		}
		w := fmt.Errorf("read p: %w", vaultWords{c.neutral})
		if !errors.Is(w, c.neutral) || w.Error() != "read p: "+c.words {
			t.Errorf("vaultWords{%v}: %q", c.neutral, w)
		}
	}
	if err := Classify("op", context.Canceled); kms.IsCallError(err) {
		t.Errorf("a cancelled call is a KMS call error: %v", err)
	}
}

// TestProxyAnswerIsUnavailable sends calls to a load balancer that has no
// Vault node to route to (it answers 503 and 502 with an HTML page, as
// HAProxy does): each is ErrUnavailable, and the error names the status
// but carries none of the page.
func TestProxyAnswerIsUnavailable(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusBadGateway} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "<html><body><h1>No server is available to handle this request.</h1></body></html>\n")
		}))
		c, err := New(Config{Addr: srv.URL, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		_, werr := c.Write(context.Background(), "transit/encrypt/k", map[string]any{"plaintext": "eA=="})
		_, rerr := c.Read(context.Background(), "transit/keys/k")
		herr := c.Health(context.Background())
		for _, err := range []error{werr, rerr, herr} {
			var ve *Error
			if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ve) || ve.Status != status {
				t.Errorf("HTTP %d from a proxy: %v (want ErrUnavailable with the status)", status, err)
				continue
			}
			if s := err.Error(); strings.Contains(s, "<html") || strings.Contains(s, "No server") || !strings.Contains(s, notVaultBody) {
				t.Errorf("HTTP %d from a proxy: message %q", status, s)
			}
		}
		c.Close()
		srv.Close()
	}
}

// TestClientTimeoutFromEnv: without Config.Timeout, VAULT_CLIENT_TIMEOUT
// bounds every call (a malformed value is refused); with neither, 30 s.
func TestClientTimeoutFromEnv(t *testing.T) {
	cases := []struct {
		env  string
		cfg  time.Duration
		want time.Duration
	}{
		{"", 0, 30 * time.Second},
		{"250ms", 0, 250 * time.Millisecond},
		{"7", 0, 7 * time.Second},
		{"250ms", 5 * time.Second, 5 * time.Second},
	}
	for _, c := range cases {
		t.Setenv("VAULT_CLIENT_TIMEOUT", c.env)
		vc, err := New(Config{Addr: "http://127.0.0.1:1", Token: "t", Timeout: c.cfg})
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		if got := vc.API().CloneConfig().Timeout; got != c.want {
			t.Errorf("VAULT_CLIENT_TIMEOUT=%q, Timeout %s: client timeout %s, want %s", c.env, c.cfg, got, c.want)
		}
		vc.Close()
	}
	t.Setenv("VAULT_CLIENT_TIMEOUT", "soon")
	if _, err := New(Config{Addr: "http://127.0.0.1:1", Token: "t"}); err == nil {
		t.Error("VAULT_CLIENT_TIMEOUT=soon accepted")
	}

	// A server that never answers: the call ends at the timeout as
	// ErrUnavailable.
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hold)
	t.Setenv("VAULT_CLIENT_TIMEOUT", "300ms")
	vc, err := New(Config{Addr: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := vc.Write(context.Background(), "transit/encrypt/k", map[string]any{"plaintext": "eA=="})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("a silent server: %v, want ErrUnavailable", err)
		}
	case <-time.After(20 * time.Second): // far beyond 300 ms, far below 30 s
		t.Fatal("a call to a silent server outlived VAULT_CLIENT_TIMEOUT")
	}
}
