package access

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// scramForm is a syntactically valid stored credential (not derived from
// any password).
func scramForm(mech string, keyLen int) string {
	return FormatSCRAM(mech, SCRAMCredential{Iterations: 4096, Salt: []byte("saltsalt-16bytes"),
		StoredKey: []byte(strings.Repeat("k", keyLen)), ServerKey: []byte(strings.Repeat("s", keyLen))})
}

func TestParseSASL(t *testing.T) {
	c256, c512 := scramForm(SCRAMSHA256, 32), scramForm(SCRAMSHA512, 64)
	a, err := Parse(strings.NewReader("# kafka users\nsasl shop " + c256 + "," + c512 + " shop produce:orders\nsasl reader " + c256 + " analytics consume:orders*\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Principals() != 2 {
		t.Fatalf("credentials %d", a.Principals())
	}
	u, ok := a.SASLUser("shop")
	if !ok || u.Principal.Name != "shop" || u.Principal.Method != "sasl" || len(u.SCRAM) != 2 ||
		!u.Principal.Can(RightProduce, "orders") || u.Principal.Can(RightConsume, "orders") {
		t.Fatalf("shop: %+v", u)
	}
	if c := u.SCRAM[SCRAMSHA512]; c.Iterations != 4096 || string(c.Salt) != "saltsalt-16bytes" || len(c.StoredKey) != 64 {
		t.Fatalf("sha-512 credential %+v", c)
	}
	if u, ok := a.SASLUser("reader"); !ok || len(u.SCRAM) != 1 || u.Principal.Name != "analytics" {
		t.Fatalf("reader: %+v", u)
	}
	if _, ok := a.SASLUser("analytics"); ok {
		t.Fatal("a principal name found as a username")
	}
	// The line printed for a credential parses back to it.
	line := SASLLine("shop", u.SCRAM, "shop", u.Principal.Grants)
	if want := "sasl shop " + c256 + "," + c512 + " shop produce:orders"; line != want {
		t.Fatalf("SASLLine\n%s\nwant\n%s", line, want)
	}
}

func TestParseSASLErrors(t *testing.T) {
	c256, c512 := scramForm(SCRAMSHA256, 32), scramForm(SCRAMSHA512, 64)
	for _, c := range []struct{ name, text, want string }{
		{"password pasted", "sasl shop hunter2-secret shop produce:x", "never a password"},
		{"password with colons", "sasl shop a:b:c:hunter2-secret:e shop produce:x", "never a password"},
		{"no rights", "sasl shop " + c256 + " shop", "want `sasl <username>"},
		{"sha-512 only", "sasl shop " + c512 + " shop produce:x", "scram-sha-256 form is required"},
		{"twice", "sasl shop " + c256 + "," + c256 + " shop produce:x", "given twice"},
		{"upper-case mechanism", "sasl shop " + strings.Replace(c256, "scram-sha-256", "SCRAM-SHA-256", 1) + " shop produce:x", "never a password"},
		{"few iterations", "sasl shop " + strings.Replace(c256, ":4096:", ":1000:", 1) + " shop produce:x", "iterations must be"},
		{"short key", "sasl shop " + strings.Replace(c256, c256[strings.LastIndex(c256, ":"):], ":AAAA", 1) + " shop produce:x", "32 bytes"},
		{"bad base64", "sasl shop " + strings.Replace(c256, ":4096:", ":4096:!!", 1) + " shop produce:x", "base64"},
		{"bad username", "sasl sh/op " + c256 + " shop produce:x", "SASL username"},
		{"bad principal", "sasl shop " + c256 + " sh/op produce:x", "principal name"},
		{"bad right", "sasl shop " + c256 + " shop write:x", `unknown right "write:x"`},
		{"duplicate user", "sasl shop " + c256 + " a produce:x\nsasl shop " + c256 + " b produce:y", "line 3: same SASL username as line 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader("# header\n" + c.text))
			if err == nil || !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("err = %v, want one naming the line and containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error echoes a password: %v", err)
			}
		})
	}
}

// TestSecurityDocSASLExample parses the sasl line example of
// docs/security.md, so the documented format is the implemented one.
func TestSecurityDocSASLExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### Kafka SASL users")
	_, block, ok2 := strings.Cut(after, "```text\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/security.md lacks the sasl line example")
	}
	a, err := Parse(strings.NewReader(block))
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := a.SASLUser("shop"); !ok || !u.Principal.Can(RightProduce, "purchases") || len(u.SCRAM) != 1 {
		t.Fatalf("example: %+v", u)
	}
}
