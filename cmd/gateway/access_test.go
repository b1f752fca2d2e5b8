package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestServeRefusesExposureWithoutAuth: with no access_file, `gateway
// serve` refuses any non-loopback address before dialling anything (the
// broker in the config does not exist).
func TestServeRefusesExposureWithoutAuth(t *testing.T) {
	dir := t.TempDir()
	cfg := testkit.WriteFile(t, dir, "gw.ini", "[default]\nbootstrap.servers=127.0.0.1:1\n\n[kafkagate]\nlisten = 0.0.0.0:8080\n")
	for _, args := range [][]string{
		{"serve", "--config", cfg},
		{"serve", "--config", cfg, "--listen", ":8080"},
		{"serve", "--config", cfg, "--listen", "[::]:8080"},
		{"serve", "--config", cfg, "--listen", "192.0.2.1:8080"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), &out, args...)
		if !errors.Is(err, server.ErrExposed) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "access_file") {
			t.Fatalf("%v: err %v", args, err)
		}
	}
}

func TestTokenNew(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access")
	var out, out2 bytes.Buffer
	if err := run(context.Background(), &out, "token", "new", "--principal", "svc", "--rights", "produce:purchases consume:*", "--access-file", access); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), &out2, "token", "new", "--principal", "ops", "--rights", "admin,metrics", "--access-file", access); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	tok, line := lines[0], lines[1]
	if !strings.HasPrefix(tok, httpapi.TokenPrefix) || line != "token "+httpapi.HashToken(tok)+" svc produce:purchases consume:*" {
		t.Fatalf("output:\n%s", out.String())
	}
	tok2 := strings.SplitN(out2.String(), "\n", 2)[0]
	file, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok, tok2, tok[len(httpapi.TokenPrefix):], tok2[len(httpapi.TokenPrefix):]} {
		if bytes.Contains(file, []byte(s)) {
			t.Fatalf("the access file stores a token:\n%s", file)
		}
	}
	if !bytes.Contains(file, []byte(line+"\n")) || bytes.Count(file, []byte("\n")) != 2 {
		t.Fatalf("access file:\n%s", file)
	}
	if st, err := os.Stat(access); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("access file mode: %v %v", st.Mode(), err)
	}
	if _, err := httpapi.LoadAccess(access); err != nil {
		t.Fatal(err)
	}
	// Bad rights: an error, and the file is untouched.
	var bad bytes.Buffer
	for _, args := range [][]string{
		{"token", "new", "--principal", "x", "--rights", "write:purchases", "--access-file", access},
		{"token", "new", "--principal", "x y", "--rights", "admin", "--access-file", access},
		{"token", "new", "--rights", "admin"},
	} {
		if err := run(context.Background(), &bad, args...); err == nil {
			t.Fatalf("%v: no error", args)
		}
	}
	if after, _ := os.ReadFile(access); !bytes.Equal(after, file) || bad.Len() != 0 {
		t.Fatalf("a refused token new changed the file or printed a token: %q", bad.String())
	}
}

// waitHealthy polls url until it answers 200, failing t when the command
// behind it exits first or limit passes.
func waitHealthy(t *testing.T, c *http.Client, url string, done <-chan error, out *testkit.SyncBuffer, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("exited before %s answered: %v\n%s", url, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy within %s:\n%s", url, limit, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopRun cancels a command running in the background and fails t unless
// it returns nil within limit.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error, limit time.Duration, what string) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s did not stop cleanly: %v", what, err)
		}
	case <-time.After(limit):
		t.Fatalf("%s did not stop within %s of cancellation", what, limit)
	}
}

// TestServeTLSAndTokens runs `gateway serve` as configured in a file:
// first with TLS and an access file, where a token produces and its
// absence gets 401, and the log names the principal but not the token;
// then without authentication, where it warns that it listens on
// loopback only.
func TestServeTLSAndTokens(t *testing.T) {
	env := testkit.Start(t)
	testkit.UseVault(t, env)
	dir := t.TempDir()
	ca := testkit.ServerTLS(t, dir, "test CA", "gateway", "server").CA
	var tokOut bytes.Buffer
	if err := run(context.Background(), &tokOut, "token", "new", "--principal", "shop", "--rights", "produce:purchases", "--access-file", filepath.Join(dir, "access")); err != nil {
		t.Fatal(err)
	}
	tok := strings.SplitN(tokOut.String(), "\n", 2)[0]
	listen := freeAddr(t)
	base := fmt.Sprintf("[default]\nbootstrap.servers=%s\n\n[policy:purchases]\nfields = Name transit\n\n[kafkagate]\nlisten = %s\n", env.Brokers[0], listen)
	// Relative paths are taken from the configuration file's directory.
	cfg := testkit.WriteFile(t, dir, "gw.ini", base+"access_file = access\ntls_cert = server.crt\ntls_key = server.key\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, out, "serve", "--config", cfg) }()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	waitHealthy(t, client, "https://"+listen+"/healthz", done, out, 30*time.Second)
	cid := testkit.APIClusterID(t, client, "https://"+listen, "Bearer "+tok)
	post := func(auth string) (int, string) {
		resp, b := testkit.Do(t, client, "POST", "https://"+listen+"/v3/clusters/"+cid+"/topics/purchases/records", auth, `{"value":{"type":"JSON","data":{"Name":"Ann"}}}`)
		return resp.StatusCode, string(b)
	}
	if st, b := post(""); st != 401 {
		t.Fatalf("no token: %d %s", st, b)
	}
	if st, b := post("Bearer " + tok); st != 200 || !strings.Contains(b, `"mode":"transit"`) {
		t.Fatalf("with token: %d %s", st, b)
	}
	// Plain HTTP never reaches the API behind a TLS listener.
	if resp, err := http.Get("http://" + listen + "/v3/clusters"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS listener: %d", resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	logs := out.String()
	if strings.Contains(logs, tok) || strings.Contains(logs, tok[len(httpapi.TokenPrefix):]) {
		t.Fatal("the serve log holds the token")
	}
	for _, want := range []string{"principal=shop", "status=401", "tls=true", "authentication is on"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("serve log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "authentication is off") {
		t.Fatalf("serve claims authentication is off:\n%s", logs)
	}

	// No access file: loopback only, and it says so.
	cfg = testkit.WriteFile(t, dir, "open.ini", base)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	out2 := &testkit.SyncBuffer{}
	done2 := make(chan error, 1)
	go func() { done2 <- run(ctx2, out2, "serve", "--config", cfg) }()
	waitHealthy(t, http.DefaultClient, "http://"+listen+"/healthz", done2, out2, 30*time.Second)
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(out2.String(), `level=WARN msg="authentication is off: listening on loopback only"`) {
		t.Fatalf("no warning:\n%s", out2.String())
	}
}
