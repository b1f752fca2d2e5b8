package fpe

import (
	"errors"
	"testing"
)

func TestServiceSetDomains(t *testing.T) {
	s := NewService()
	if err := s.AddKey("keep", 1, testKey(1), true); err != nil {
		t.Fatal(err)
	}
	c1 := mustCipher(t, testKey(2), "d", 1)
	c2 := mustCipher(t, testKey(3), "d", 2)
	if err := s.SetDomains(map[string]DomainKeys{"d": {Current: 2, Ciphers: map[int]*Cipher{1: c1, 2: c2}}}); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current("d"); err != nil || cur != 2 {
		t.Fatalf("current = %d, %v", cur, err)
	}
	tok, v, err := s.Encrypt("d", Format{}, "4111111111111111")
	want, _ := c2.Encrypt(Format{}, "4111111111111111")
	if err != nil || v != 2 || tok != want {
		t.Fatalf("encrypt: %q v%d %v", tok, v, err)
	}
	if got := s.Domains(); len(got) != 2 {
		t.Fatalf("domains = %v, want keep and d", got)
	}
	// Refused without any change: a current version without a key, a
	// cipher of another version, and one of another domain.
	for name, ds := range map[string]map[string]DomainKeys{
		"no current":     {"d": {Current: 3, Ciphers: map[int]*Cipher{1: c1}}},
		"wrong version":  {"d": {Current: 1, Ciphers: map[int]*Cipher{1: c1, 3: c2}}},
		"wrong domain":   {"e": {Current: 1, Ciphers: map[int]*Cipher{1: c1}}},
		"one bad of two": {"f": {Current: 1, Ciphers: map[int]*Cipher{1: mustCipher(t, testKey(4), "f", 1)}}, "d": {Current: 9}},
	} {
		err := s.SetDomains(ds)
		var fe *Error
		if err == nil || !errors.As(err, &fe) {
			t.Errorf("%s: %v, want an *Error", name, err)
		}
		if cur, _ := s.Current("d"); cur != 2 || len(s.Domains()) != 2 {
			t.Errorf("%s: a refused SetDomains changed the Service", name)
		}
	}
}
