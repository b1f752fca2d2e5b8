package policy

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	p, err := Parse("orders", map[string]string{
		"fields": "\n Name transit\n customer.card fpe format=keep-bin-last4 domain=pay.cards\n a\\.b:transit, note plain",
		"aad":    "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.TransitKey != "kafka-orders" || p.AAD || p.Mode != Fields || len(p.Fields) != 4 {
		t.Fatalf("%+v", p)
	}
	if !reflect.DeepEqual(p.Fields[1].Path, []string{"customer", "card"}) || p.Fields[1].Options["format"] != "keep-bin-last4" || p.Fields[1].Options["domain"] != "pay.cards" {
		t.Fatalf("%+v", p.Fields[1])
	}
	if !reflect.DeepEqual(p.Fields[2].Path, []string{"a.b"}) || p.Fields[2].PathString() != `a\.b` {
		t.Fatalf("%+v", p.Fields[2])
	}
	fp, err := Parse("t", map[string]string{"fields": "cc fpe"})
	if err != nil || fp.Fields[0].Options["format"] != "full" || fp.Fields[0].Options["domain"] != DefaultFPEDomain {
		t.Fatalf("fpe defaults: %v %+v", err, fp)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"unknown key":        {"fields": "a transit", "feilds": "b transit"},
		"unknown mode":       {"fields": "a rot13"},
		"no fields":          {"mode": "fields"},
		"bad record mode":    {"mode": "encrypt-all"},
		"overlap":            {"fields": "a transit, a.b transit"},
		"duplicate":          {"fields": "a transit, a plain"},
		"empty component":    {"fields": "a..b transit"},
		"bad fpe format":     {"fields": "cc fpe format=all"},
		"option on transit":  {"fields": "a transit key=x"},
		"bad aad":            {"fields": "a transit", "aad": "maybe"},
		"fields passthrough": {"mode": "passthrough", "fields": "a transit"},
		"bad key name":       {"fields": "a transit", "transit_key": "a/b"},
		"bad dek":            {"mode": "envelope", "dek": "sometimes"},
	} {
		if _, err := Parse("t", kv); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestSet(t *testing.T) {
	a, _ := Parse("a", map[string]string{"fields": "x transit"})
	b, _ := Parse("b", map[string]string{"mode": "passthrough"})
	s, err := NewSet(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.For("c"); ok {
		t.Fatal("policy for unknown topic")
	}
	if !reflect.DeepEqual(s.TransitKeys(), []string{"kafka-a"}) || !reflect.DeepEqual(s.Topics(), []string{"a", "b"}) {
		t.Fatalf("%v %v", s.TransitKeys(), s.Topics())
	}
	if _, err := NewSet(a, a); err == nil {
		t.Fatal("duplicate topic accepted")
	}
}

func TestJoinPathEscapesAndRoundTrips(t *testing.T) {
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"credit_card"}, "credit_card"},
		{[]string{"customer", "email"}, "customer.email"},
		{[]string{"a.b", "c"}, `a\.b.c`},
		{[]string{`back\slash`}, `back\\slash`},
		{[]string{`x\.`, "y"}, `x\\\..y`},
	} {
		got := JoinPath(c.path)
		if got != c.want {
			t.Errorf("JoinPath(%q) = %q, want %q", c.path, got, c.want)
		}
		back, err := SplitPath(got)
		if err != nil || !slices.Equal(back, c.path) {
			t.Errorf("SplitPath(%q) = %q, %v; want %q", got, back, err, c.path)
		}
	}
}
