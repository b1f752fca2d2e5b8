package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// proofFor computes a SCRAM client proof the way RFC 5802 §3 does, for
// client-final messages that xdg-go's client never sends.
func proofFor(t *testing.T, mech, password string, salt []byte, iters int, authMsg string) string {
	t.Helper()
	h := hashes[mech]
	salted, err := pbkdf2.Key(h, password, salt, iters, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := h()
	sum.Write(clientKey)
	sig := mac(sum.Sum(nil), authMsg)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return base64.StdEncoding.EncodeToString(clientKey)
}

// TestSCRAMClientFinalNonce: librdkafka sends client-nonce +
// combined-nonce in its client-final message (and Kafka accepts it); that
// login succeeds, while any other nonce is refused even with a proof
// computed over it.
func TestSCRAMClientFinalNonce(t *testing.T) {
	s := server(t, map[string]string{"alice": "pw-alice-1"})
	s.nonceGen = func() string { return "SERVERNONCE" }
	u, _ := s.access.SASLUser("alice")
	cred := u.SCRAM[SCRAMSHA256]
	for _, c := range []struct {
		nonce string
		ok    bool
	}{
		{"cnonce-1SERVERNONCE", true},
		{"cnonce-1cnonce-1SERVERNONCE", true}, // librdkafka
		{"XXcnonce-1SERVERNONCE", false},
		{"cnonce-1SERVERNONC", false},
		{"cnonce-1SERVERNONCEcnonce-1", false},
	} {
		sess, _ := s.Start(SCRAMSHA256)
		s1, _, _, err := sess.Step([]byte("n,,n=alice,r=cnonce-1"))
		if err != nil || string(s1) != "r=cnonce-1SERVERNONCE,s="+base64.StdEncoding.EncodeToString(cred.Salt)+",i=4096" {
			t.Fatalf("server-first %q %v", s1, err)
		}
		wop := "c=biws,r=" + c.nonce
		proof := proofFor(t, SCRAMSHA256, "pw-alice-1", cred.Salt, 4096, "n=alice,r=cnonce-1,"+string(s1)+","+wop)
		out, done, p, err := sess.Step([]byte(wop + ",p=" + proof))
		if c.ok != (err == nil && done && p == "p-alice" && strings.HasPrefix(string(out), "v=")) {
			t.Fatalf("nonce %q: done %v principal %q err %v", c.nonce, done, p, err)
		}
		if !c.ok && !errors.Is(err, ErrAuthentication) {
			t.Fatalf("nonce %q: %v", c.nonce, err)
		}
	}
}

// TestSCRAMRefusals: channel binding, a foreign authorization identity,
// mandatory extensions, delegation tokens and a wrong channel-binding
// echo are refused.
func TestSCRAMRefusals(t *testing.T) {
	s := server(t, map[string]string{"alice": "pw-alice-1"})
	for _, first := range []string{
		"p=tls-server-end-point,,n=alice,r=abc", "n,a=bob,n=alice,r=abc", "n,,n=alice,r=abc,m=x",
		"n,,n=alice,r=abc,tokenauth=true", "n,,n=al=2Xice,r=abc", "n,,n=alice,r=", "n,,r=abc,n=alice", "n,,n=alice,r=a\x01b",
	} {
		sess, _ := s.Start(SCRAMSHA512)
		if _, _, _, err := sess.Step([]byte(first)); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("%q: %v", first, err)
		}
	}
	// The authorization identity may name the user itself.
	sess, _ := s.Start(SCRAMSHA512)
	if _, _, _, err := sess.Step([]byte("n,a=alice,n=alice,r=abc")); err != nil {
		t.Fatal(err)
	}
	// The channel-binding echo must be the client's own gs2 header.
	u, _ := s.access.SASLUser("alice")
	cred := u.SCRAM[SCRAMSHA256]
	sess, _ = s.Start(SCRAMSHA256)
	s1, _, _, _ := sess.Step([]byte("y,,n=alice,r=abc"))
	r := strings.SplitN(strings.TrimPrefix(string(s1), "r="), ",", 2)[0]
	wop := "c=biws,r=" + r // "n,," while the client said "y,,"
	proof := proofFor(t, SCRAMSHA256, "pw-alice-1", cred.Salt, 4096, "n=alice,r=abc,"+string(s1)+","+wop)
	if _, done, _, err := sess.Step([]byte(wop + ",p=" + proof)); done || !errors.Is(err, ErrAuthentication) {
		t.Fatalf("a wrong channel-binding echo: %v", err)
	}
}
