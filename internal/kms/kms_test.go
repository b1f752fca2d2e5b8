package kms

import (
	"errors"
	"fmt"
	"testing"
)

func TestVersion(t *testing.T) {
	for s, want := range map[string]int{"vault:v1:abc": 1, "vault:v12:x": 12} {
		if v, err := Version(s); err != nil || v != want || !IsCiphertext(s) {
			t.Errorf("%s: %d %v", s, v, err)
		}
	}
	for _, s := range []string{"", "vault:", "vault:v:x", "vault:v0:x", "vault:v1:", "vault:vx:y", "plain"} {
		if _, err := Version(s); !errors.Is(err, ErrMalformed) || IsCiphertext(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestErrorLayers(t *testing.T) {
	item := fmt.Errorf("outer: %w", &ItemError{Index: 3, Msg: "m", Kind: ErrDecrypt})
	if !errors.Is(item, ErrDecrypt) || errors.Is(item, ErrMalformed) || IsCallError(item) {
		t.Errorf("item error: %v", item)
	}
	for _, e := range []error{ErrUnavailable, ErrDenied, ErrNotFound, ErrInvalid} {
		if !IsCallError(fmt.Errorf("x: %w", e)) {
			t.Errorf("%v is not a call error", e)
		}
	}
	if IsCallError(errors.New("other")) {
		t.Error("an unrelated error is a call error")
	}
}

func TestCheckKeyName(t *testing.T) {
	for _, ok := range []string{"k", "kafkagate-fpe-kek", "a.b_c"} {
		if err := CheckKeyName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../sys", "a/b", "a?b", "a#b", "a%2f", "a b"} {
		if CheckKeyName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
