package protect

import (
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	paths := [][]string{{"Name"}, {"customer", "email"}, {"a.b"}}
	doc := []byte(`{"Name":"Ann","customer":{"email":"e@x","x":[1,2]},"a.b":"dot","Addr\u0065ss":"z"}`)
	sp, err := locate(doc, paths, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"Ann"`, `"e@x"`, `"dot"`}
	for i, w := range want {
		if got := string(doc[sp[i].start:sp[i].end]); got != w {
			t.Errorf("path %v: %s, want %s", paths[i], got, w)
		}
	}
	out := splice(doc, sp, [][]byte{[]byte(`"A"`), []byte(`"E"`), nil})
	if string(out) != `{"Name":"A","customer":{"email":"E","x":[1,2]},"a.b":"dot","Addr\u0065ss":"z"}` {
		t.Fatalf("splice: %s", out)
	}
}

func TestLocateEscapedKeyIsFound(t *testing.T) {
	// A key written with an escape must still match its policy path, or
	// its value would slip through in plaintext.
	doc := []byte(`{"Addr\u0065ss":"1 Secret Rd"}`)
	sp, err := locate(doc, [][]string{{"Address"}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if sp[0].start < 0 || sp[0].res.Str != "1 Secret Rd" {
		t.Fatalf("escaped key not found: %+v", sp[0])
	}
}

func TestLocateRefuses(t *testing.T) {
	cases := []struct {
		doc  string
		code string
	}{
		{`{"a":1,"a":2}`, CodeDuplicateKey},
		{`{"x":{"y":1,"y":2}}`, CodeDuplicateKey},
		{`{"x":[{"y":1,"y":2}]}`, CodeDuplicateKey},
		{`[1]`, CodeNotObject},
		{`"s"`, CodeNotObject},
		{`{"a":`, CodeInvalidJSON},
		{"{\"a\":\"\xff\"}", CodeInvalidJSON},
		{`{"customer":"flat"}`, CodeFieldType},
		{`{"customer":[{"email":"e"}]}`, CodeFieldType},
		{`{"d":` + strings.Repeat(`[`, 20) + strings.Repeat(`]`, 20) + `}`, CodeTooDeep},
	}
	for _, c := range cases {
		_, err := locate([]byte(c.doc), [][]string{{"customer", "email"}}, 10)
		if err == nil || err.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.doc, err, c.code)
		}
	}
	// null and missing along a path are absent, not errors.
	for _, d := range []string{`{"customer":null}`, `{}`, `{"customer":{}}`} {
		sp, err := locate([]byte(d), [][]string{{"customer", "email"}}, 10)
		if err != nil || sp[0].start >= 0 {
			t.Errorf("%s: %v %+v", d, err, sp)
		}
	}
}

func TestFieldsHeaderRoundTrip(t *testing.T) {
	in := []FieldInfo{{Path: "a\\.b.c", Mode: "transit", Key: "k"}, {Path: "cc", Mode: "fpe", Domain: "d", KeyVersion: 3, Format: "full"}}
	b, err := encodeFieldsHeader(in, true)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeFieldsHeader(b)
	if err != nil || len(h.F) != 2 || h.F[0].A != 1 || h.F[1].N != 3 {
		t.Fatalf("%v %+v", err, h)
	}
	for _, bad := range []string{`{"v":2,"f":[]}`, `{"v":1,"f":[{"p":"a","m":"rot13"}]}`, `{"v":1,"f":[{"p":"a","m":"transit"}]}`, `{"v":1,"f":[{"p":"","m":"transit","k":"k"}]}`, `{"v":1,"x":1}`, `nope`} {
		if _, err := decodeFieldsHeader([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
