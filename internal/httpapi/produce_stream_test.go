package httpapi

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// frameReader splits a body into top-level values and resumes after a
// malformed one; a value over the limit stops it.
func TestFrameReader(t *testing.T) {
	body := `{"a":1}` + "\r\n" + `{"b":"}{"}{"c":{"d":[1,2]}}  {"bad":} 42 "str"[1,{"x":"]"}]` + "\n" + `{"e":"\"}"}` + "\n" + `{"tail":`
	want := []string{`{"a":1}`, `{"b":"}{"}`, `{"c":{"d":[1,2]}}`, `{"bad":}`, `42`, `"str"`, `[1,{"x":"]"}]`, `{"e":"\"}"}`}
	fr := newFrameReader(strings.NewReader(body), 100)
	for i, w := range want {
		got, err := fr.next()
		if err != nil || string(got) != w {
			t.Fatalf("frame %d: %q %v, want %q", i, got, err, w)
		}
	}
	if got, err := fr.next(); !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != `{"tail":` {
		t.Fatalf("truncated frame: %q %v", got, err)
	}
	if _, err := fr.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
	fr = newFrameReader(strings.NewReader(`{"small":1}{"big":"`+strings.Repeat("x", 200)+`"}{"next":1}`), 100)
	if got, err := fr.next(); err != nil || string(got) != `{"small":1}` {
		t.Fatalf("small: %q %v", got, err)
	}
	if _, err := fr.next(); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("big: %v", err)
	}
}
