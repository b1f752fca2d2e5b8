package vaultclient_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// approleFixture enables AppRole on a real Vault dev server with a role
// that may encrypt (not decrypt) with transit key "k", and writes its
// credentials to files.
type approleFixture struct {
	root                 *vaultclient.Client
	roleIDFile, sidFile  string
	roleID, secretID     string
	ctx                  context.Context
	vaultAddr, rootToken string
}

func newAppRole(t *testing.T, tokenTTL, maxTTL string) *approleFixture {
	t.Helper()
	v := testkit.StartVault(t)
	root, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	ctx := context.Background()
	must := func(_ map[string]any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Write(ctx, "sys/auth/approle", map[string]any{"type": "approle"}))
	must(root.Write(ctx, "transit/keys/k", map[string]any{"type": "aes256-gcm96"}))
	must(root.Write(ctx, "sys/policies/acl/enc", map[string]any{"policy": `path "transit/encrypt/k" { capabilities = ["update"] }`}))
	must(root.Write(ctx, "auth/approle/role/gw", map[string]any{"token_policies": "enc", "token_ttl": tokenTTL, "token_max_ttl": maxTTL}))
	rid, err := root.Read(ctx, "auth/approle/role/gw/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Write(ctx, "auth/approle/role/gw/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &approleFixture{root: root, ctx: ctx, vaultAddr: v.Addr, rootToken: v.Token,
		roleIDFile: filepath.Join(dir, "role-id"), sidFile: filepath.Join(dir, "secret-id"),
		roleID: rid["role_id"].(string), secretID: sid["secret_id"].(string)}
	if err := os.WriteFile(f.roleIDFile, []byte(f.roleID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.sidFile, []byte(f.secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// accessorOf returns the accessor of token (looked up with the root token).
func (f *approleFixture) accessorOf(t *testing.T, token string) string {
	t.Helper()
	d, err := f.root.Write(f.ctx, "auth/token/lookup", map[string]any{"token": token})
	if err != nil {
		t.Fatal(err)
	}
	return d["accessor"].(string)
}

// TestAppRoleRenewalAndRelogin: an AppRole login with a 3 s token TTL and
// a 9 s max TTL keeps encrypting for 12 s (four TTLs and one max TTL),
// logs in again on its own when the max TTL is reached, recovers at once
// after its token is revoked, does not log in again when Vault refuses by
// policy, and Close stops the goroutine and revokes the token. No log line
// carries the role id, the secret id or a token.
func TestAppRoleRenewalAndRelogin(t *testing.T) {
	f := newAppRole(t, "3s", "9s")
	logs := &testkit.SyncBuffer{}
	c, err := vaultclient.New(vaultclient.Config{Addr: f.vaultAddr, RoleIDFile: f.roleIDFile, SecretIDFile: f.sidFile,
		Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMethod() != vaultclient.AuthAppRole {
		t.Fatalf("method %s", c.AuthMethod())
	}
	tc := transit.New(c, transit.Options{})
	tokens := map[string]bool{}
	deadline := time.Now().Add(12 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		res, err := tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("x")}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("encrypt %d after %d tokens: %v %v", n, len(tokens), err, res[0].Err)
		}
		tokens[c.API().Token()] = true
		n++
		time.Sleep(200 * time.Millisecond)
	}
	if len(tokens) < 2 {
		t.Fatalf("max TTL of 9 s passed with %d token(s): no new login", len(tokens))
	}
	if !strings.Contains(logs.String(), "vault token renewed") {
		t.Fatalf("no renewal logged:\n%s", logs.String())
	}

	// Revoke the current token behind the client's back.
	before := c.API().Token()
	if _, err := f.root.Write(f.ctx, "auth/token/revoke-accessor", map[string]any{"accessor": f.accessorOf(t, before)}); err != nil {
		t.Fatal(err)
	}
	res, err := tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("after revoke")}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("encrypt after revocation: %v", err)
	}
	if c.API().Token() == before {
		t.Fatal("token unchanged after revocation")
	}

	// A refusal by policy is returned as it is, without a new login.
	time.Sleep(1100 * time.Millisecond) // past the minimum gap between logins
	tok := c.API().Token()
	_, err = tc.Decrypt(f.ctx, "k", []transit.Ciphertext{{Ciphertext: res[0].Ciphertext}})
	if !errors.Is(err, vaultclient.ErrDenied) {
		t.Fatalf("decrypt without the right: %v", err)
	}
	if c.API().Token() != tok {
		t.Fatal("a policy refusal caused a new login")
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.root.Write(f.ctx, "auth/token/lookup", map[string]any{"token": tok}); err == nil {
		t.Fatal("token still valid after Close")
	}
	for _, secret := range []string{f.roleID, f.secretID, tok, before} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("a credential appears in the log")
		}
	}
}

// TestAppRoleBadSecretThenFixed: a client made while the credentials are
// wrong keeps retrying with backoff, and works as soon as they are fixed;
// the error never shows the secret id.
func TestAppRoleBadSecretThenFixed(t *testing.T) {
	f := newAppRole(t, "30s", "60s")
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not-the-secret-id"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	c, err := vaultclient.New(vaultclient.Config{Addr: f.vaultAddr, RoleID: f.roleID, SecretIDFile: bad, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := transit.New(c, transit.Options{})
	_, err = tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("x")}})
	if !errors.Is(err, vaultclient.ErrDenied) {
		t.Fatalf("with a wrong secret id: %v", err)
	}
	if strings.Contains(err.Error()+logs.String(), "not-the-secret-id") {
		t.Fatal("the secret id leaked")
	}
	if err := os.WriteFile(bad, []byte(f.secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(minGap)
	res, err := tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("x")}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("after fixing the secret id file: %v", err)
	}
}

const minGap = 1100 * time.Millisecond

// TestTokenFileReread: a token from VAULT_TOKEN_FILE that Vault refuses is
// read again from the file (as a Vault Agent sink rewrites it).
func TestTokenFileReread(t *testing.T) {
	f := newAppRole(t, "1h", "2h")
	tok1 := createToken(t, f)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok1), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := vaultclient.New(vaultclient.Config{Addr: f.vaultAddr, TokenFile: file, RenewToken: true, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&testkit.SyncBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := transit.New(c, transit.Options{})
	if _, err := tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.root.Write(f.ctx, "auth/token/revoke", map[string]any{"token": tok1}); err != nil {
		t.Fatal(err)
	}
	tok2 := createToken(t, f)
	if err := os.WriteFile(file, []byte(tok2), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(minGap)
	if _, err := tc.Encrypt(f.ctx, "k", []transit.Item{{Plaintext: []byte("x")}}); err != nil {
		t.Fatalf("after the token file changed: %v", err)
	}
	if c.API().Token() != tok2 {
		t.Fatal("the new token was not picked up")
	}
}

func createToken(t *testing.T, f *approleFixture) string {
	t.Helper()
	s, err := f.root.API().Auth().Token().CreateWithContext(f.ctx, &api.TokenCreateRequest{Policies: []string{"enc"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth.ClientToken
}

// TestKubernetesLoginRequest: a Kubernetes login reads the JWT file and
// asks auth/<mount>/login; this Vault has no Kubernetes API to review the
// JWT, so Vault refuses, and the refusal never contains the JWT.
func TestKubernetesLoginRequest(t *testing.T) {
	f := newAppRole(t, "1h", "2h")
	if _, err := f.root.Write(f.ctx, "sys/auth/k8s", map[string]any{"type": "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	jwt := filepath.Join(t.TempDir(), "token")
	const secretJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"
	if err := os.WriteFile(jwt, []byte(secretJWT), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	c, err := vaultclient.New(vaultclient.Config{Addr: f.vaultAddr, K8sRole: "gateway", K8sJWTFile: jwt, K8sMount: "k8s", Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.AuthMethod() != vaultclient.AuthKubernetes {
		t.Fatal(c.AuthMethod())
	}
	_, err = c.Read(f.ctx, "transit/keys/k")
	if err == nil {
		t.Fatal("read without a Kubernetes login succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	if !strings.Contains(logs.String(), "auth/k8s/login") {
		t.Fatalf("no login attempt at auth/k8s/login logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String()+err.Error(), secretJWT) {
		t.Fatal("the JWT leaked")
	}
}

func TestAuthConfig(t *testing.T) {
	for _, c := range []vaultclient.Config{
		{Addr: "http://127.0.0.1:1", Token: "t", RoleID: "r"},
		{Addr: "http://127.0.0.1:1", RoleID: "r", RoleIDFile: "/f"},
		{Addr: "http://127.0.0.1:1", SecretIDFile: "/f"},
		{Addr: "http://127.0.0.1:1", K8sJWTFile: "/f"},
		{Addr: "http://127.0.0.1:1", Token: "t", TokenFile: "/f"},
		{Addr: "http://127.0.0.1:1", K8sRole: "r", RoleID: "x"},
	} {
		if vc, err := vaultclient.New(c); err == nil {
			_ = vc.Close()
			t.Errorf("%+v accepted", c)
		}
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ROLE_ID_FILE", "/run/role")
	t.Setenv("VAULT_SECRET_ID_FILE", "/run/secret")
	t.Setenv("VAULT_K8S_ROLE", "")
	cfg := vaultclient.FromEnv()
	if cfg.RoleIDFile != "/run/role" || cfg.SecretIDFile != "/run/secret" || cfg.RenewToken {
		t.Fatalf("FromEnv: %+v", cfg)
	}
	t.Setenv("VAULT_ROLE_ID_FILE", "")
	t.Setenv("VAULT_SECRET_ID_FILE", "")
	t.Setenv("VAULT_K8S_ROLE", "gw")
	t.Setenv("VAULT_K8S_MOUNT", "k8s-prod")
	cfg = vaultclient.FromEnv()
	if cfg.K8sRole != "gw" || cfg.K8sMount != "k8s-prod" || cfg.K8sJWTFile != "" {
		t.Fatalf("FromEnv: %+v", cfg)
	}
	vc, err := vaultclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if vc.AuthMethod() != vaultclient.AuthKubernetes {
		t.Fatal(vc.AuthMethod())
	}
	_ = vc.Close()
}
