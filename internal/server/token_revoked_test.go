package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// setupAppRole enables AppRole on env's Vault with a least-privilege
// policy for the gateway's transit keys, and writes the role and secret
// ids to files as an operator would. The token TTL is long, so only a
// revocation ends a token during the test.
func setupAppRole(t *testing.T, env *testkit.Env) (roleIDFile, secretIDFile string, creds []string) {
	t.Helper()
	ctx := context.Background()
	root := env.VC
	write := func(path string, data map[string]any) map[string]any {
		t.Helper()
		out, err := root.Write(ctx, path, data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	}
	write("sys/auth/approle", map[string]any{"type": "approle"})
	write("sys/policies/acl/kafkagate", map[string]any{"policy": `
path "transit/keys/kafka-*"    { capabilities = ["create", "read", "update"] }
path "transit/encrypt/kafka-*" { capabilities = ["create", "update"] }
path "transit/decrypt/kafka-*" { capabilities = ["update"] }
`})
	write("auth/approle/role/kafkagate", map[string]any{"token_policies": "kafkagate", "token_ttl": "1h", "token_max_ttl": "4h"})
	rid, err := root.Read(ctx, "auth/approle/role/kafkagate/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid := write("auth/approle/role/kafkagate/secret-id", nil)
	dir := t.TempDir()
	roleIDFile, secretIDFile = filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	roleID, secretID := rid["role_id"].(string), sid["secret_id"].(string)
	if err := os.WriteFile(roleIDFile, []byte(roleID), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretIDFile, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	return roleIDFile, secretIDFile, []string{roleID, secretID}
}

// appRoleGateway serves testConfig with a gateway that logs in to env's
// Vault with AppRole, logging into logs at debug level.
func appRoleGateway(t *testing.T, env *testkit.Env, roleIDFile, secretIDFile string, logs io.Writer) *fixture {
	t.Helper()
	cfg := testkit.Config(t, testConfig)
	f := serve(t, env, server.Options{Config: cfg,
		Vault:  vaultclient.Config{Addr: env.Vault.Addr, RoleIDFile: roleIDFile, SecretIDFile: secretIDFile, Timeout: 3 * time.Second},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if f.gw.Vault.AuthMethod() != vaultclient.AuthAppRole {
		t.Fatalf("auth method %s", f.gw.Vault.AuthMethod())
	}
	// The first request creates the key with the AppRole token.
	if resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(purchase)); resp.StatusCode != 200 {
		t.Fatalf("first produce: %d %s", resp.StatusCode, b)
	}
	return f
}

// revokeCurrent revokes the gateway's current Vault token by accessor, as
// an operator would with the root token, and returns it.
func revokeCurrent(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	tok := f.gw.Vault.API().Token()
	look, err := f.env.VC.Write(ctx, "auth/token/lookup", map[string]any{"token": tok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.VC.Write(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": look["accessor"]}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// appRoleStack starts a stack whose gateway logs in with AppRole; it
// returns the gateway's fixture, the secret id file, the AppRole
// credentials and the gateway's log.
func appRoleStack(t *testing.T) (f *fixture, secretIDFile string, creds []string, logs *testkit.SyncBuffer) {
	t.Helper()
	env := testkit.Start(t)
	roleIDFile, secretIDFile, creds := setupAppRole(t, env)
	logs = &testkit.SyncBuffer{}
	return appRoleGateway(t, env, roleIDFile, secretIDFile, logs), secretIDFile, creds, logs
}

type produceOutcome struct {
	start, end time.Time
	status     int
	retryAfter string
}

// TestVaultTokenRevokedUnderLoad: a gateway authenticated with AppRole
// serves a steady stream of produce requests while the root token revokes
// the gateway's current token three times (auth/token/revoke-accessor).
// The gateway logs in again and serves; every answer in the window is 200,
// or 503 with Retry-After — never another status; every 200 is in Kafka
// and nothing else is; no record carries plaintext; no log line carries a
// token or the AppRole credentials.
func TestVaultTokenRevokedUnderLoad(t *testing.T) {
	f, secretIDFile, creds, logs := appRoleStack(t)
	gw := f.gw
	before := testkit.HighWatermarks(t, gw.Kafka, "purchases")

	// Steady load: two clients, back to back.
	const clients = 2
	load := startProduceLoad(f.url("purchases"), clients)
	const revocations = 3
	var recoveries []time.Duration
	var revokedTokens []string
	time.Sleep(time.Second)
	for i := range revocations {
		tok := revokeCurrent(t, f)
		at := time.Now() // requests started before this may still use tok
		revokedTokens = append(revokedTokens, tok)
		done, ok := load.firstSuccessAfter(at)
		if !ok {
			load.stop()
			t.Fatalf("revocation %d: no successful produce within 30 s", i+1)
		}
		recoveries = append(recoveries, done.Sub(at))
		if gw.Vault.API().Token() == tok {
			t.Fatalf("revocation %d: the gateway still holds the revoked token", i+1)
		}
		time.Sleep(time.Second)
	}
	load.stop()

	all := load.snapshot()
	ok, refused := 0, 0
	for _, o := range all {
		switch {
		case o.status == 200:
			ok++
		case o.status == 503 && o.retryAfter != "":
			refused++
		default:
			t.Errorf("answer %d (Retry-After %q) during token revocation; want 200 or 503 with Retry-After", o.status, o.retryAfter)
		}
	}
	if ok == 0 {
		t.Fatal("no request succeeded")
	}
	after := testkit.HighWatermarks(t, gw.Kafka, "purchases")
	if got := after - before; got != int64(ok) {
		t.Fatalf("%d records reached Kafka for %d successful answers", got, ok)
	}
	recs := f.raw(t, "purchases")
	for _, r := range recs {
		for _, s := range secrets {
			if bytes.Contains(r.Value, []byte(s)) {
				t.Fatalf("plaintext %q in Kafka", s)
			}
		}
	}
	noCredentialInLog(t, logs.String(), append(append(creds, revokedTokens...), gw.Vault.API().Token(), f.env.Vault.Token)...)
	revokedTokens = append(revokedTokens, checkUnrecoverableRevocation(t, f, secretIDFile))
	noCredentialInLog(t, logs.String(), append(append(creds, revokedTokens...), gw.Vault.API().Token())...)

	var worst time.Duration
	for _, d := range recoveries {
		worst = max(worst, d)
	}
	t.Logf("token revoked %d times under load (%d clients): %d requests, %d ok, %d refused (503 + Retry-After), 0 other; %d records in Kafka, 0 plaintext; recovery (revocation to next success) %v, worst %v",
		revocations, clients, len(all), ok, refused, after-before, recoveries, worst)
}

// produceLoad posts produceBody(purchase) to one URL from several
// clients, back to back, until stopped, and keeps every outcome.
type produceLoad struct {
	mu       sync.Mutex
	outcomes []produceOutcome
	done     chan struct{}
	wg       sync.WaitGroup
}

func startProduceLoad(url string, clients int) *produceLoad {
	l := &produceLoad{done: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-l.done:
					return
				default:
				}
				o := produceOutcome{start: time.Now()}
				resp, err := client.Post(url, "application/json", strings.NewReader(produceBody(purchase)))
				if err != nil {
					o.status = -1
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					o.status, o.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
				}
				o.end = time.Now()
				l.mu.Lock()
				l.outcomes = append(l.outcomes, o)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and waits for its clients.
func (l *produceLoad) stop() {
	close(l.done)
	l.wg.Wait()
}

func (l *produceLoad) snapshot() []produceOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]produceOutcome(nil), l.outcomes...)
}

// firstSuccessAfter waits for a request started after ts to succeed.
func (l *produceLoad) firstSuccessAfter(ts time.Time) (time.Time, bool) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, o := range l.snapshot() {
			if o.status == 200 && o.start.After(ts) {
				return o.end, true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// breakSecretID replaces the AppRole secret id in secretIDFile with one
// that does not log in, and revokes the gateway's current token. It
// returns the good secret id and the revoked token.
func breakSecretID(t *testing.T, f *fixture, secretIDFile string) (good, revoked string) {
	t.Helper()
	b, err := os.ReadFile(secretIDFile)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Dir(secretIDFile), filepath.Base(secretIDFile), "00000000-0000-0000-0000-000000000000")
	return string(b), revokeCurrent(t, f)
}

// noCredentialInLog fails t when log holds any of creds.
func noCredentialInLog(t *testing.T, log string, creds ...string) {
	t.Helper()
	for _, s := range creds {
		if strings.Contains(log, s) {
			t.Fatal("a token or AppRole credential appears in the log")
		}
	}
}

// checkUnrecoverableRevocation revokes the gateway's token while its
// secret id no longer logs in: a clear refusal, 503 with Retry-After,
// nothing produced; and serving again once the secret id is fixed. It
// returns the revoked token.
func checkUnrecoverableRevocation(t *testing.T, f *fixture, secretIDFile string) string {
	gw := f.gw
	good, revoked := breakSecretID(t, f, secretIDFile)
	stuck := testkit.HighWatermarks(t, gw.Kafka, "purchases")
	// Three requests: each refused call makes one login attempt, and
	// Vault locks an AppRole out after 5 failed logins (user lockout); see
	// TestVaultFailedReloginIsPaced.
	const failing = 3
	codes := map[int]int{}
	for range failing {
		resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
		var e errBody
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || e.ErrorCode/100 != 503 {
			t.Fatalf("with no valid token: %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		codes[e.ErrorCode]++
		for _, s := range secrets {
			if strings.Contains(e.Message, s) {
				t.Fatal("plaintext in the error")
			}
		}
	}
	if n := testkit.HighWatermarks(t, gw.Kafka, "purchases"); n != stuck {
		t.Fatalf("%d records produced without a valid token", n-stuck)
	}
	testkit.WriteFile(t, filepath.Dir(secretIDFile), filepath.Base(secretIDFile), good)
	fixedAt := time.Now()
	var fixedAfter time.Duration
	for {
		resp, _ := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
		if resp.StatusCode == 200 {
			fixedAfter = time.Since(fixedAt)
			break
		}
		if resp.StatusCode != 503 || time.Since(fixedAt) > 15*time.Second {
			locked, _ := f.env.VC.Read(context.Background(), "sys/locked-users")
			t.Fatalf("after fixing the secret id: %d; sys/locked-users: %v", resp.StatusCode, locked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("unrecoverable revocation: %d/%d requests refused with 503 + Retry-After (codes %v), 0 produced; served again %v after the secret id was fixed", failing, failing, codes, fixedAfter)
	return revoked
}

// TestVaultFailedReloginIsPaced: while the gateway's token is revoked and
// its AppRole secret id does not log in, a steady stream of requests must
// not turn into a stream of failed logins: Vault locks the role out after
// 5 failures (user lockout, 15 minutes by default), so the gateway would
// stay down long after the secret id is fixed. Logins must be paced
// (at most about one per second) and the gateway must serve again soon
// after the fix.
func TestVaultFailedReloginIsPaced(t *testing.T) {
	f, secretIDFile, _, logs := appRoleStack(t)
	ctx := context.Background()
	good, _ := breakSecretID(t, f, secretIDFile)
	window := 2 * time.Second
	start := time.Now()
	sent := 0
	for time.Since(start) < window {
		resp, _ := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("with no valid token: %d", resp.StatusCode)
		}
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	failed := strings.Count(logs.String(), "vault login failed") + strings.Count(logs.String(), "vault authentication failed")
	if limit := int(window/time.Second) + 2; failed > limit {
		t.Errorf("%d failed logins for %d refused requests in %v; want at most %d (paced)", failed, sent, window, limit)
	}
	testkit.WriteFile(t, filepath.Dir(secretIDFile), filepath.Base(secretIDFile), good)
	fixedAt := time.Now()
	for {
		resp, _ := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
		if resp.StatusCode == 200 {
			break
		}
		if time.Since(fixedAt) > 15*time.Second {
			locked, _ := f.env.VC.Read(ctx, "sys/locked-users")
			t.Fatalf("not serving 15 s after the secret id was fixed (%d); sys/locked-users: %v", resp.StatusCode, locked)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d refused requests made %d failed logins; served again %v after the fix", sent, failed, time.Since(fixedAt))
}
