package vaultclient

// Authentication that survives: how the client gets its Vault token and
// keeps it alive.
//
//   - token: VAULT_TOKEN, or VAULT_TOKEN_FILE (read at start and read again
//     whenever Vault refuses the token, so a Vault Agent sink that rewrites
//     the file is followed). A renewable token with a TTL is renewed at 2/3
//     of its TTL when Config.RenewToken is set (FromEnv sets it).
//   - AppRole: VAULT_ROLE_ID or VAULT_ROLE_ID_FILE, and VAULT_SECRET_ID_FILE
//     (the files are read at every login, so they can be rotated);
//     auth/<VAULT_APPROLE_MOUNT, default approle>/login.
//   - Kubernetes: VAULT_K8S_ROLE, with the service-account JWT from
//     VAULT_K8S_JWT_FILE (default the pod's projected token, read at every
//     login); auth/<VAULT_K8S_MOUNT, default kubernetes>/login.
//
// With AppRole or Kubernetes, New starts one goroutine, owned by the Client
// and stopped by Close, that logs in, renews the token at 2/3 of its TTL,
// and logs in again when renewal fails or the token reaches its max TTL
// (with backoff while Vault is unreachable). Independently, a data call
// that Vault refuses (403) because the token is no longer valid (revoked,
// expired) triggers one login and one retry; a refusal by policy, with a
// valid token, is returned as it is. Tokens, secret ids and JWTs are never
// logged or put in errors.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Authentication methods, as reported by Client.AuthMethod.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// DefaultK8sJWTFile is where Kubernetes mounts a pod's service-account
// token.
const DefaultK8sJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Login pacing.
const (
	// minReloginGap: a refused data call does not trigger another login
	// within this time of the previous one (a token that is refused right
	// after login is refused by policy, not expired).
	minReloginGap = time.Second
	// maxReloginGap caps the pause after consecutive failed logins from
	// refused data calls (1 s, 2 s, 4 s, ... up to this): Vault locks an
	// AppRole out after a few failures (user lockout), and a stream of
	// refused requests must not become a stream of failed logins.
	maxReloginGap = 10 * time.Second
	backoffMin    = 500 * time.Millisecond
	backoffMax    = 30 * time.Second
)

// authFromEnv reads the authentication variables into cfg.
func authFromEnv(cfg *Config) {
	cfg.TokenFile = os.Getenv("VAULT_TOKEN_FILE")
	cfg.RoleID = os.Getenv("VAULT_ROLE_ID")
	cfg.RoleIDFile = os.Getenv("VAULT_ROLE_ID_FILE")
	cfg.SecretIDFile = os.Getenv("VAULT_SECRET_ID_FILE")
	cfg.AppRoleMount = os.Getenv("VAULT_APPROLE_MOUNT")
	cfg.K8sRole = os.Getenv("VAULT_K8S_ROLE")
	cfg.K8sJWTFile = os.Getenv("VAULT_K8S_JWT_FILE")
	cfg.K8sMount = os.Getenv("VAULT_K8S_MOUNT")
	cfg.RenewToken = cfg.Token != "" || cfg.TokenFile != ""
}

// lease is what Vault said about the current token.
type lease struct {
	ttl       time.Duration // 0: does not expire
	renewable bool
}

// authenticator obtains and keeps the client's token.
type authenticator struct {
	api    *api.Client
	method string
	log    *slog.Logger
	// login obtains a new token: a Vault login, or (token method) the
	// token itself, from the file when there is one.
	login func(ctx context.Context) (string, lease, error)
	// canRelogin: login can give a different token than the one refused
	// (false for a static VAULT_TOKEN).
	canRelogin bool
	renew      bool // run the renewal loop

	mu        sync.Mutex // serialises logins; guards the fields below
	lastLogin time.Time
	// lastAttempt and failedLogins pace logins triggered by refused data
	// calls (onDenied), failed ones included.
	lastAttempt  time.Time
	failedLogins int
	cur          lease
	closed       bool

	ready chan struct{} // closed after the first login attempt
	kick  chan struct{} // a login happened outside the loop
	stop  context.CancelFunc
	done  chan struct{}
}

// newAuthenticator checks cfg's authentication settings. It does not
// contact Vault.
func newAuthenticator(c *api.Client, cfg Config, log *slog.Logger) (*authenticator, error) {
	approle := cfg.RoleID != "" || cfg.RoleIDFile != "" || cfg.SecretIDFile != ""
	k8s := cfg.K8sRole != "" || cfg.K8sJWTFile != ""
	token := cfg.Token != "" || cfg.TokenFile != ""
	n := 0
	for _, b := range []bool{approle, k8s, token} {
		if b {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("vault authentication: set one of VAULT_TOKEN/VAULT_TOKEN_FILE, an AppRole login (VAULT_ROLE_ID or VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE) or a Kubernetes login (VAULT_K8S_ROLE), not several")
	}
	a := &authenticator{api: c, log: log, ready: make(chan struct{}), kick: make(chan struct{}, 1)}
	switch {
	case approle:
		if cfg.RoleID != "" && cfg.RoleIDFile != "" {
			return nil, errors.New("vault authentication: set VAULT_ROLE_ID or VAULT_ROLE_ID_FILE, not both")
		}
		if cfg.RoleID == "" && cfg.RoleIDFile == "" {
			return nil, errors.New("vault authentication: AppRole needs VAULT_ROLE_ID or VAULT_ROLE_ID_FILE")
		}
		mount := mountOr(cfg.AppRoleMount, "approle")
		a.method, a.canRelogin, a.renew = AuthAppRole, true, true
		a.login = func(ctx context.Context) (string, lease, error) {
			roleID, err := valueOrFile("VAULT_ROLE_ID_FILE", cfg.RoleID, cfg.RoleIDFile)
			if err != nil {
				return "", lease{}, err
			}
			body := map[string]any{"role_id": roleID}
			if cfg.SecretIDFile != "" {
				sid, err := readSecretFile("VAULT_SECRET_ID_FILE", cfg.SecretIDFile)
				if err != nil {
					return "", lease{}, err
				}
				body["secret_id"] = sid
			}
			return a.post(ctx, "auth/"+mount+"/login", body)
		}
	case k8s:
		if cfg.K8sRole == "" {
			return nil, errors.New("vault authentication: Kubernetes login needs VAULT_K8S_ROLE")
		}
		jwtFile := cfg.K8sJWTFile
		if jwtFile == "" {
			jwtFile = DefaultK8sJWTFile
		}
		mount := mountOr(cfg.K8sMount, "kubernetes")
		a.method, a.canRelogin, a.renew = AuthKubernetes, true, true
		a.login = func(ctx context.Context) (string, lease, error) {
			jwt, err := readSecretFile("VAULT_K8S_JWT_FILE", jwtFile)
			if err != nil {
				return "", lease{}, err
			}
			return a.post(ctx, "auth/"+mount+"/login", map[string]any{"role": cfg.K8sRole, "jwt": jwt})
		}
	default:
		if cfg.Token != "" && cfg.TokenFile != "" {
			return nil, errors.New("vault authentication: set VAULT_TOKEN or VAULT_TOKEN_FILE, not both")
		}
		a.method, a.canRelogin, a.renew = AuthToken, cfg.TokenFile != "", cfg.RenewToken
		a.login = func(ctx context.Context) (string, lease, error) {
			tok, err := valueOrFile("VAULT_TOKEN_FILE", cfg.Token, cfg.TokenFile)
			if err != nil {
				return "", lease{}, err
			}
			if !a.renew || tok == "" {
				return tok, lease{}, nil
			}
			// Learn the token's TTL, to renew it in time.
			lc, err := a.api.Clone()
			if err != nil {
				return "", lease{}, fmt.Errorf("vault token lookup: %w", err)
			}
			lc.SetToken(tok)
			if ns := a.api.Namespace(); ns != "" {
				lc.SetNamespace(ns)
			}
			s, err := lc.Auth().Token().LookupSelfWithContext(ctx)
			if err != nil {
				return tok, lease{}, Classify("token lookup-self", err)
			}
			ttl, _ := s.TokenTTL()
			ren, _ := s.TokenIsRenewable()
			return tok, lease{ttl: ttl, renewable: ren}, nil
		}
	}
	return a, nil
}

func mountOr(m, def string) string {
	if m = strings.Trim(m, "/"); m == "" {
		return def
	}
	return m
}

// valueOrFile is value, or the content of file (readSecretFile, env names
// it) when file is set.
func valueOrFile(env, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	return readSecretFile(env, file)
}

// readSecretFile reads a credential file, trimmed. Errors name the
// variable and the path, never the content.
func readSecretFile(env, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("vault authentication: %s: %w", env, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("vault authentication: %s %s is empty", env, path)
	}
	return s, nil
}

// post performs a login request without sending the current token.
func (a *authenticator) post(ctx context.Context, path string, body map[string]any) (string, lease, error) {
	r := a.api.NewRequest(http.MethodPut, "/v1/"+path)
	r.ClientToken = ""
	if err := r.SetJSONBody(body); err != nil {
		return "", lease{}, fmt.Errorf("vault login %s: encode request: %w", path, err)
	}
	//nolint:staticcheck // RawRequestWithContext: the login must not carry the stale token.
	resp, err := a.api.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return "", lease{}, Classify("login "+path, err)
	}
	s, err := api.ParseSecret(resp.Body)
	if err != nil || s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", lease{}, fmt.Errorf("vault login %s: no token in the answer: %w", path, vaultWords{ErrUnavailable})
	}
	return s.Auth.ClientToken, lease{ttl: time.Duration(s.Auth.LeaseDuration) * time.Second, renewable: s.Auth.Renewable}, nil
}

// start begins the renewal loop (when there is one to run) or, for a plain
// token, sets it at once.
func (a *authenticator) start() {
	ctx, stop := context.WithCancel(context.Background())
	a.stop, a.done = stop, make(chan struct{})
	if !a.renew {
		tok, _, err := a.login(ctx)
		if err != nil {
			a.log.Warn("vault token not loaded", "method", a.method, "error", err)
		}
		a.api.SetToken(tok)
		close(a.ready)
		close(a.done)
		return
	}
	go a.run(ctx)
}

// relogin obtains a new token and installs it. Callers hold a.mu.
func (a *authenticator) reloginLocked(ctx context.Context) (lease, error) {
	tok, l, err := a.login(ctx)
	if tok != "" {
		a.api.SetToken(tok) // a token read from the environment or a file is set even if its lookup failed
	}
	if err != nil {
		return lease{}, err
	}
	a.cur, a.lastLogin = l, time.Now()
	if a.method != AuthToken {
		a.log.Info("vault login", "method", a.method, "ttl", l.ttl, "renewable", l.renewable)
	}
	return l, nil
}

// run is the renewal loop: log in, renew at 2/3 of the TTL, log in again
// when renewal fails or the token reaches its max TTL.
func (a *authenticator) run(ctx context.Context) {
	defer close(a.done)
	readyOnce := sync.OnceFunc(func() { close(a.ready) })
	defer readyOnce()
	backoff := backoffMin
	needLogin := true
	var l lease
	for {
		if needLogin {
			a.mu.Lock()
			var err error
			l, err = a.reloginLocked(ctx)
			a.mu.Unlock()
			readyOnce()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("vault authentication failed; retrying", "method", a.method, "retry_in", backoff, "error", err)
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, backoffMax)
				continue
			}
			backoff, needLogin = backoffMin, false
		}
		if l.ttl <= 0 || (!l.renewable && !a.canRelogin) {
			// Nothing to renew (e.g. a root token): wait for a login made
			// elsewhere, or the end.
			select {
			case <-ctx.Done():
				return
			case <-a.kick:
				l = a.current()
				continue
			}
		}
		t := time.NewTimer(l.ttl * 2 / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.kick:
			t.Stop()
			l = a.current()
			continue
		case <-t.C:
		}
		if !l.renewable {
			needLogin = a.canRelogin
			continue
		}
		want := l.ttl
		s, err := a.api.Auth().Token().RenewSelfWithContext(ctx, int(want.Seconds()))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("vault token renewal failed; logging in again", "method", a.method, "error", Classify("renew-self", err))
			needLogin = a.canRelogin
			if !needLogin {
				return // a static token that cannot be renewed: nothing more to do
			}
			continue
		}
		ttl, _ := s.TokenTTL()
		ren, _ := s.TokenIsRenewable()
		a.log.Debug("vault token renewed", "method", a.method, "ttl", ttl)
		nl := lease{ttl: ttl, renewable: ren}
		if ttl < want && a.canRelogin {
			// Capped by the token's max TTL: the next step is a login.
			nl.renewable = false
		}
		a.mu.Lock()
		a.cur = nl
		a.mu.Unlock()
		l = nl
	}
}

func (a *authenticator) current() lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

// waitReady waits for the first login attempt.
func (a *authenticator) waitReady(ctx context.Context) {
	select {
	case <-a.ready:
	case <-ctx.Done():
	}
}

// onDenied is called after Vault refused a data call made with token
// used. It reports whether the call should be retried: when another login
// has happened since, or when the token is no longer valid and a new login
// succeeded.
func (a *authenticator) onDenied(ctx context.Context, used string) bool {
	if !a.canRelogin {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if a.api.Token() != used {
		return true // someone logged in meanwhile
	}
	if time.Since(a.lastLogin) < minReloginGap || time.Since(a.lastAttempt) < a.reloginGapLocked() {
		return false
	}
	if used != "" {
		if _, err := a.api.Auth().Token().LookupSelfWithContext(ctx); err == nil {
			return false // the token is valid: Vault refused by policy
		} else if !errors.Is(Classify("lookup-self", err), ErrDenied) {
			return false // Vault unreachable: the original error stands
		}
	}
	a.log.Info("vault refused the token (revoked or expired); logging in again", "method", a.method)
	a.lastAttempt = time.Now()
	if _, err := a.reloginLocked(ctx); err != nil {
		a.failedLogins++
		a.log.Warn("vault login failed", "method", a.method, "error", err, "next_attempt_in", a.reloginGapLocked())
		return false
	}
	a.failedLogins = 0
	select {
	case a.kick <- struct{}{}:
	default:
	}
	return true
}

// reloginGapLocked is the pause before another login attempt from a
// refused data call: none after a success, then 1 s doubling per
// consecutive failure up to maxReloginGap. Callers hold a.mu.
func (a *authenticator) reloginGapLocked() time.Duration {
	if a.failedLogins == 0 {
		return minReloginGap
	}
	return min(minReloginGap<<min(a.failedLogins-1, 8), maxReloginGap)
}

// close stops the loop and, for tokens this client logged in for, revokes
// the token.
func (a *authenticator) close() {
	// Cancel first: the renewal loop may hold a.mu through a Vault call
	// (a login or lookup-self against an unreachable Vault), which the
	// cancellation ends.
	a.stop()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	<-a.done
	if a.method != AuthToken && a.api.Token() != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := a.api.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
			a.log.Debug("vault token not revoked at close", "error", Classify("revoke-self", err))
		}
		a.api.ClearToken()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Ready waits for the first login attempt (or ctx). Calls through Write
// and Read wait by themselves; administrative calls made through API()
// must call Ready first, or they may go out before the token is set.
func (c *Client) Ready(ctx context.Context) error {
	c.auth.waitReady(ctx)
	return ctx.Err()
}

// AuthMethod is how the client authenticates: AuthToken, AuthAppRole or
// AuthKubernetes.
func (c *Client) AuthMethod() string { return c.auth.method }

// Close stops the token renewal started by New and, for tokens obtained by
// an AppRole or Kubernetes login, revokes the token. The client must not be
// used afterwards. It is safe to call more than once.
func (c *Client) Close() error {
	c.auth.close()
	return nil
}

// Write performs a logical write. For batch operations in which every item
// failed, Vault answers HTTP 400 even when partial_failure_response_code is
// set; Write then still returns the data (with its per-item batch_results)
// instead of an error, so each item's own error reaches its caller. A call
// refused because the token is no longer valid is retried once after a new
// login.
func (c *Client) Write(ctx context.Context, path string, data map[string]any) (map[string]any, error) {
	return withLogin(ctx, c, func() (map[string]any, error) { return c.write(ctx, path, data) })
}

// WriteRaw is Write for a request body already encoded as JSON: it
// returns Vault's answer as it came (the JSON envelope whose "data" Write
// returns, empty when Vault sent none), for callers that decode the answer
// they expect faster than Write's generic map. Errors, the HTTP 400
// answer to a batch in which every item failed, and the re-login are
// Write's.
func (c *Client) WriteRaw(ctx context.Context, path string, body []byte) ([]byte, error) {
	return withLogin(ctx, c, func() ([]byte, error) { return c.writeRaw(ctx, path, body) })
}

// Read performs a logical read. A missing path is ErrNotFound. A call
// refused because the token is no longer valid is retried once after a
// new login.
func (c *Client) Read(ctx context.Context, path string) (map[string]any, error) {
	return withLogin(ctx, c, func() (map[string]any, error) { return c.read(ctx, path) })
}

// withLogin runs call once the first login is done, and once more after a
// new login when Vault refused the token it used.
func withLogin[T any](ctx context.Context, c *Client, call func() (T, error)) (T, error) {
	c.auth.waitReady(ctx)
	used := c.api.Token()
	out, err := call()
	if errors.Is(err, ErrDenied) && c.auth.onDenied(ctx, used) {
		return call()
	}
	return out, err
}
