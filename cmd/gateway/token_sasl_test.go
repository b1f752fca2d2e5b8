package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/access/sasl"
)

// runIn runs the CLI with stdin.
func runIn(stdin string, out *bytes.Buffer, args ...string) error {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(out)
	root.SetErr(out)
	return root.ExecuteContext(context.Background())
}

// TestTokenSASL: the printed line holds no password, parses, and logs the
// user in with the password through PLAIN; a wrong password is refused.
func TestTokenSASL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "access")
	var out bytes.Buffer
	if err := runIn("Tr0ub4dor&3\n", &out, "token", "sasl", "shop", "--rights", "produce:orders", "--principal", "shop-app", "--access-file", file); err != nil {
		t.Fatal(err)
	}
	line := strings.SplitN(out.String(), "\n", 2)[0]
	stored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "sasl shop scram-sha-256:4096:") || !strings.HasSuffix(line, " shop-app produce:orders") ||
		string(stored) != line+"\n" || strings.Contains(out.String()+string(stored), "Tr0ub4dor") {
		t.Fatalf("output %q, file %q", out.String(), stored)
	}
	a, err := access.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sasl.New(a)
	if err != nil {
		t.Fatal(err)
	}
	for pw, ok := range map[string]bool{"Tr0ub4dor&3": true, "Tr0ub4dor&4": false} {
		sess, _ := srv.Start(sasl.PLAIN)
		_, done, principal, err := sess.Step([]byte("\x00shop\x00" + pw))
		if ok != (err == nil && done && principal == "shop-app") || !ok && !errors.Is(err, sasl.ErrAuthentication) {
			t.Fatalf("password %q: done %v principal %q err %v", pw, done, principal, err)
		}
	}
	// Refusals: one line, nothing appended.
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"token", "sasl", "shop2", "--rights", "admin", "--access-file", file}},
		{"pw\n", []string{"token", "sasl", "sh op", "--rights", "admin", "--access-file", file}},
		{"pw\n", []string{"token", "sasl", "shop2", "--rights", "write:x", "--access-file", file}},
		{"pw\n", []string{"token", "sasl", "shop", "--rights", "admin", "--access-file", file}}, // duplicate username
		{"pw\n", []string{"token", "sasl", "shop2", "--rights", "admin", "--iterations", "5000000"}},
	} {
		var bad bytes.Buffer
		if err := runIn(c.stdin, &bad, c.args...); err == nil || strings.Contains(bad.String(), "sasl shop2") {
			t.Fatalf("%v: err %v output %q", c.args, err, bad.String())
		}
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(after, stored) {
		t.Fatalf("a refused token sasl changed the file: %q", after)
	}
}
