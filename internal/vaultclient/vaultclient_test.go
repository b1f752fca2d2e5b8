package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

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
