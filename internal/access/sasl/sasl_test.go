package sasl

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/access"
)

// server parses an access file of sasl lines made from user/password
// pairs; onlySHA256 users get no SCRAM-SHA-512 credential.
func server(t testing.TB, users map[string]string, onlySHA256 ...string) *Server {
	t.Helper()
	var text strings.Builder
	for user, pw := range users {
		creds, err := NewCredentials(pw, 4096)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range onlySHA256 {
			if u == user {
				delete(creds, SCRAMSHA512)
			}
		}
		text.WriteString(access.SASLLine(user, creds, "p-"+user, []access.Grant{{Right: access.RightConsume, Topic: "t"}}) + "\n")
	}
	a, err := access.Parse(strings.NewReader(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRFC7677Vector runs the SCRAM-SHA-256 exchange of RFC 7677 §3 (user
// "user", password "pencil") against a sasl line holding the RFC's salt.
func TestRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	sc, err := derive(SCRAMSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cred := access.SCRAMCredential{Iterations: 4096, Salt: salt, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}
	line := access.SASLLine("user", map[string]access.SCRAMCredential{SCRAMSHA256: cred}, "rfc", []access.Grant{{Right: access.RightAdmin}})
	if !strings.HasPrefix(line, "sasl user scram-sha-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:") || strings.Contains(line, "pencil") {
		t.Fatalf("line %q", line)
	}
	a, err := access.Parse(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	s.nonceGen = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	sess, err := s.Start(SCRAMSHA256)
	if err != nil {
		t.Fatal(err)
	}
	out, done, _, err := sess.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || done {
		t.Fatalf("first: done %v err %v", done, err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(out) != want {
		t.Fatalf("server-first %q, want %q", out, want)
	}
	out, done, principal, err := sess.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !done || principal != "rfc" {
		t.Fatalf("final: done %v principal %q err %v", done, principal, err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(out) != want {
		t.Fatalf("server-final %q, want %q", out, want)
	}
	if p := sess.Principal(); p == nil || !p.Can(access.RightAdmin, "") || p.Can(access.RightProduce, "x") {
		t.Fatalf("principal %+v", p)
	}
	if _, _, _, err := sess.Step([]byte("again")); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("a step after the end: %v", err)
	}
}

// scramLogin runs a whole SCRAM exchange with xdg-go's client.
func scramLogin(t *testing.T, s *Server, mech, user, password string) (string, error) {
	t.Helper()
	cl, err := hashes[mech].NewClientUnprepped(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	sess, err := s.Start(mech)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		out, done, principal, err := sess.Step([]byte(msg))
		if err != nil {
			return "", err
		}
		if done {
			// The client checks the server's signature too.
			if _, err := conv.Step(string(out)); err != nil || !conv.Valid() {
				t.Fatalf("client rejects the server-final message: %v", err)
			}
			return principal, nil
		}
		if msg, err = conv.Step(string(out)); err != nil {
			t.Fatalf("client step: %v", err)
		}
	}
	t.Fatal("no end after 4 steps")
	return "", nil
}

func TestSCRAM(t *testing.T) {
	s := server(t, map[string]string{"alice": "correct horse", "bob": "battery staple"}, "bob")
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		if p, err := scramLogin(t, s, mech, "alice", "correct horse"); err != nil || p != "p-alice" {
			t.Fatalf("%s alice: %q %v", mech, p, err)
		}
		for _, c := range []struct{ user, pw string }{{"alice", "correct horsE"}, {"alice", ""}, {"carol", "correct horse"}} {
			p, err := scramLogin(t, s, mech, c.user, c.pw)
			if !errors.Is(err, ErrAuthentication) || p != "" {
				t.Fatalf("%s %s with a wrong password: %q %v", mech, c.user, p, err)
			}
			if strings.Contains(err.Error(), c.pw) && c.pw != "" || strings.Contains(err.Error(), c.user) {
				t.Fatalf("error names the credential: %v", err)
			}
		}
	}
	if _, err := scramLogin(t, s, SCRAMSHA256, "bob", "battery staple"); err != nil {
		t.Fatal(err)
	}
	// bob's line holds no SCRAM-SHA-512 credential.
	if _, err := scramLogin(t, s, SCRAMSHA512, "bob", "battery staple"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("SCRAM-SHA-512 without a stored credential: %v", err)
	}
}

// TestUnknownUserLooksKnown: an unknown user gets a stable salt and the
// same iterations, so the server-first message does not tell it apart.
func TestUnknownUserLooksKnown(t *testing.T) {
	s := server(t, map[string]string{"alice": "pw-alice-1"})
	first := func(user string) string {
		sess, _ := s.Start(SCRAMSHA256)
		out, _, _, err := sess.Step([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(out), ",") // drop the nonce
		return rest
	}
	a, b := first("nobody"), first("nobody")
	if a != b || !strings.HasSuffix(a, ",i=4096") || a == first("somebody") {
		t.Fatalf("decoy salts: %q %q", a, b)
	}
}

func TestPlain(t *testing.T) {
	s := server(t, map[string]string{"alice": "s3cret-pw"})
	login := func(msg string) (string, error) {
		sess, err := s.Start(PLAIN)
		if err != nil {
			t.Fatal(err)
		}
		out, done, p, err := sess.Step([]byte(msg))
		if err == nil && (!done || len(out) != 0) {
			t.Fatalf("PLAIN success: done %v out %q", done, out)
		}
		if err != nil && (done || p != "") {
			t.Fatalf("PLAIN failure reports done %v principal %q", done, p)
		}
		return p, err
	}
	for _, msg := range []string{"\x00alice\x00s3cret-pw", "alice\x00alice\x00s3cret-pw"} {
		if p, err := login(msg); err != nil || p != "p-alice" {
			t.Fatalf("good login %q: %q %v", msg, p, err)
		}
	}
	wrong, err := login("\x00alice\x00s3cret-pX")
	if !errors.Is(err, ErrAuthentication) || wrong != "" {
		t.Fatalf("wrong password: %v", err)
	}
	_, unknown := login("\x00mallory\x00s3cret-pw")
	if unknown == nil || unknown.Error() != err.Error() {
		t.Fatalf("unknown user %v differs from wrong password %v", unknown, err)
	}
	for _, msg := range []string{"", "alice", "\x00alice", "\x00alice\x00", "\x00\x00pw", "bob\x00alice\x00s3cret-pw", "\x00alice\x00s3cret-pw\x00x"} {
		_, err := login(msg)
		if !errors.Is(err, ErrAuthentication) {
			t.Fatalf("%q: %v", msg, err)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "alice") {
			t.Fatalf("error echoes the message: %v", err)
		}
	}
	if _, err := s.Start("GSSAPI"); !errors.Is(err, ErrMechanism) {
		t.Fatalf("GSSAPI: %v", err)
	}
}

// FuzzSession feeds arbitrary client messages to every mechanism: a
// refusal, never a panic or a login.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{"n,,n=alice,r=abc", "\x00alice\x00pw", "c=biws,r=abc,p=AAAA", "n,a=x,n=alice,r=", "p=tls-unique,,n=a,r=b", "y,,n==2C,r=x", "n,,n=a=ZZ,r=b,e=1"} {
		f.Add([]byte(seed), []byte("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	}
	s := server(f, map[string]string{"alice": "not-in-the-corpus-Zq8"})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		for _, mech := range s.Mechanisms() {
			sess, err := s.Start(mech)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range [][]byte{first, second} {
				_, done, p, err := sess.Step(msg)
				if done || p != "" {
					t.Fatalf("%s logged in from %q, %q", mech, first, second)
				}
				if err != nil {
					if !errors.Is(err, ErrAuthentication) {
						t.Fatalf("%s: error %v does not wrap ErrAuthentication", mech, err)
					}
					break
				}
			}
		}
	})
}

// TestNewCredentials: each mechanism gets its own salt, and the derived
// keys authenticate the password through PLAIN's derivation.
func TestNewCredentials(t *testing.T) {
	creds, err := NewCredentials("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := creds[SCRAMSHA256], creds[SCRAMSHA512]
	if a.Iterations != 4096 || string(a.Salt) == string(b.Salt) || len(a.StoredKey) != 32 || len(b.StoredKey) != 64 {
		t.Fatalf("credentials %+v %+v", a, b)
	}
	if k, err := StoredKey(SCRAMSHA512, "pw", b); err != nil || string(k) != string(b.StoredKey) {
		t.Fatal("derivation differs")
	}
	if _, err := NewCredentials("", 4096); err == nil {
		t.Fatal("empty password accepted")
	}
}
