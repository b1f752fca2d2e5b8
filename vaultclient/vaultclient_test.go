package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
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
