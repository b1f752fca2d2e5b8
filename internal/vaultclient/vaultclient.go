// Package vaultclient is kafkagate's single door to HashiCorp Vault: it builds
// a client from the standard VAULT_* environment (TLS verification on unless
// VAULT_SKIP_VERIFY, which is logged), authenticates with a token, AppRole or
// Kubernetes and keeps the token alive (auth.go), and it exposes the small
// Logical interface that transit, fpe and envelope use, with every failure
// classified into a typed error so callers can fail closed.
package vaultclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/kms"
)

// Typed errors: the KMS-neutral ones of package kms. Every error returned
// by Client wraps exactly one of these (or context.Canceled); Classify maps
// Vault's HTTP statuses onto them.
var (
	// ErrUnavailable means Vault could not be reached, is sealed, or failed
	// internally (HTTP 5xx, 429): the caller should refuse and retry later.
	ErrUnavailable = kms.ErrUnavailable
	// ErrDenied means Vault refused the token (HTTP 401, 403).
	ErrDenied = kms.ErrDenied
	// ErrNotFound means the path or key does not exist (HTTP 404).
	ErrNotFound = kms.ErrNotFound
	// ErrInvalid means Vault rejected the request as malformed (HTTP 400
	// and other 4xx).
	ErrInvalid = kms.ErrInvalid
)

// kindText names an error kind in Vault's words, for messages.
func kindText(kind error) string {
	switch kind {
	case ErrUnavailable:
		return "vault unavailable"
	case ErrDenied:
		return "vault permission denied"
	case ErrNotFound:
		return "vault path not found"
	case ErrInvalid:
		return "vault rejected the request"
	}
	return kind.Error()
}

// vaultWords is an error kind in Vault's words: it reads "vault
// unavailable", ... and matches its kind with errors.Is.
type vaultWords struct{ kind error }

func (w vaultWords) Error() string { return kindText(w.kind) }
func (w vaultWords) Unwrap() error { return w.kind }

// Logical is the slice of Vault that kafkagate's crypto packages need.
// Numbers in the returned data are json.Number.
type Logical interface {
	Write(ctx context.Context, path string, data map[string]any) (map[string]any, error)
	Read(ctx context.Context, path string) (map[string]any, error)
}

// Config says how to reach Vault. Zero fields fall back to the environment.
type Config struct {
	Addr       string
	Token      string
	Namespace  string
	CACert     string
	CAPath     string
	SkipVerify bool
	Timeout    time.Duration
	Logger     *slog.Logger

	// Authentication beyond a static token (see auth.go); at most one
	// method may be set.
	TokenFile    string // VAULT_TOKEN_FILE: the token, re-read when Vault refuses it
	RenewToken   bool   // renew a renewable Token/TokenFile before it expires (FromEnv sets it)
	RoleID       string // VAULT_ROLE_ID: AppRole role id
	RoleIDFile   string // VAULT_ROLE_ID_FILE
	SecretIDFile string // VAULT_SECRET_ID_FILE: AppRole secret id, read at every login
	AppRoleMount string // VAULT_APPROLE_MOUNT, default approle
	K8sRole      string // VAULT_K8S_ROLE: Kubernetes auth role
	K8sJWTFile   string // VAULT_K8S_JWT_FILE, default DefaultK8sJWTFile
	K8sMount     string // VAULT_K8S_MOUNT, default kubernetes
}

// FromEnv reads VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT,
// VAULT_CAPATH, VAULT_SKIP_VERIFY and the authentication variables of
// auth.go.
func FromEnv() Config {
	skip := false
	switch strings.ToLower(os.Getenv("VAULT_SKIP_VERIFY")) {
	case "1", "true", "yes":
		skip = true
	}
	cfg := Config{
		Addr:       os.Getenv("VAULT_ADDR"),
		Token:      os.Getenv("VAULT_TOKEN"),
		Namespace:  os.Getenv("VAULT_NAMESPACE"),
		CACert:     os.Getenv("VAULT_CACERT"),
		CAPath:     os.Getenv("VAULT_CAPATH"),
		SkipVerify: skip,
	}
	authFromEnv(&cfg)
	return cfg
}

// Client is a Vault client that classifies errors. It is safe for
// concurrent use.
type Client struct {
	api  *api.Client
	addr string
	auth *authenticator
}

// New builds a client. With AppRole or Kubernetes (or a renewable token and
// RenewToken) it starts the login and renewal goroutine of auth.go, which
// Close stops; calls made before the first login wait for it. New itself
// does not wait for Vault.
func New(cfg Config) (*Client, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Addr == "" {
		return nil, errors.New("vault address is empty: set VAULT_ADDR")
	}
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("vault client defaults: %w", ac.Error)
	}
	ac.Address = cfg.Addr
	ac.MaxRetries = 0 // kafkagate retries at its own level; fail fast here
	// Every call is bounded: by cfg.Timeout, else VAULT_CLIENT_TIMEOUT
	// (read by DefaultConfig), else 30 s. A node that died without
	// closing its connections (a lost host) costs a call this long.
	switch {
	case cfg.Timeout > 0:
		ac.Timeout = cfg.Timeout
	case os.Getenv(api.EnvVaultClientTimeout) == "":
		ac.Timeout = 30 * time.Second
	}
	tls := &api.TLSConfig{CACert: cfg.CACert, CAPath: cfg.CAPath, Insecure: cfg.SkipVerify}
	if err := ac.ConfigureTLS(tls); err != nil {
		return nil, fmt.Errorf("vault TLS settings: %w", err)
	}
	if cfg.SkipVerify {
		logger.Warn("VAULT_SKIP_VERIFY is set: Vault's TLS certificate is NOT verified")
	}
	// Larger idle pool: several batches are in flight at once.
	if tr, ok := ac.HttpClient.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 64
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	// api.NewClient reads VAULT_TOKEN itself; the config wins.
	c.ClearToken()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	a, err := newAuthenticator(c, cfg, logger)
	if err != nil {
		return nil, err
	}
	a.start()
	return &Client{api: c, addr: cfg.Addr, auth: a}, nil
}

// API returns the underlying client, for administrative calls (sys/mounts,
// auth) that are not on the data path.
func (c *Client) API() *api.Client { return c.api }

// Addr is the Vault address.
func (c *Client) Addr() string { return c.addr }

// write is Write without the re-login.
func (c *Client) write(ctx context.Context, path string, data map[string]any) (map[string]any, error) {
	r := c.api.NewRequest(http.MethodPut, "/v1/"+path)
	if err := r.SetJSONBody(data); err != nil {
		return nil, fmt.Errorf("write %s: encode request: %w", path, err)
	}
	body, err := c.send(ctx, path, r)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	s, err := api.ParseSecret(body)
	if err != nil {
		return nil, fmt.Errorf("write %s: decode response: %w", path, vaultWords{ErrUnavailable})
	}
	if s == nil || s.Data == nil {
		return map[string]any{}, nil
	}
	return s.Data, nil
}

// writeRaw is WriteRaw without the re-login.
func (c *Client) writeRaw(ctx context.Context, path string, body []byte) ([]byte, error) {
	r := c.api.NewRequest(http.MethodPut, "/v1/"+path)
	// Obj is what vault/api re-encodes when it follows a redirect.
	r.BodyBytes, r.Obj = body, json.RawMessage(body)
	rb, err := c.send(ctx, path, r)
	if err != nil {
		return nil, err
	}
	defer rb.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(rb, maxAnswer)); err != nil {
		return nil, Classify("write "+path, err)
	}
	return buf.Bytes(), nil
}

// maxAnswer bounds the answer WriteRaw reads.
const maxAnswer = 64 << 20

// send performs r and returns the body of Vault's answer, or the
// classified error. For batch operations in which every item failed, Vault
// answers HTTP 400 even when partial_failure_response_code is set; send
// then still returns the body (with its per-item batch_results) instead of
// an error.
func (c *Client) send(ctx context.Context, path string, r *api.Request) (io.ReadCloser, error) {
	//nolint:staticcheck // RawRequestWithContext keeps the body of a 400.
	resp, err := c.api.RawRequestWithContext(ctx, r)
	if err == nil {
		return resp.Body, nil
	}
	if resp != nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest {
			if b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer)); rerr == nil && hasBatchResults(b) {
				return io.NopCloser(bytes.NewReader(b)), nil
			}
		}
	}
	return nil, Classify("write "+path, err)
}

// hasBatchResults reports whether an error body carries batch_results.
func hasBatchResults(body []byte) bool {
	var env struct {
		Data struct {
			BatchResults []json.RawMessage `json:"batch_results"`
		} `json:"data"`
	}
	return json.Unmarshal(body, &env) == nil && env.Data.BatchResults != nil
}

// read is Read without the re-login.
func (c *Client) read(ctx context.Context, path string) (map[string]any, error) {
	s, err := c.api.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, Classify("read "+path, err)
	}
	if s == nil {
		return nil, fmt.Errorf("read %s: %w", path, vaultWords{ErrNotFound})
	}
	return s.Data, nil
}

// Health reports whether Vault is reachable, initialised and unsealed.
func (c *Client) Health(ctx context.Context) error {
	h, err := c.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return Classify("health", err)
	}
	if h.Sealed || !h.Initialized {
		return fmt.Errorf("health: sealed or not initialised: %w", vaultWords{ErrUnavailable})
	}
	return nil
}

// Error is a classified Vault error. Its message carries Vault's own error
// strings (never request bodies, so never plaintext or tokens).
type Error struct {
	Op     string
	Status int
	Msgs   []string
	Kind   error
	cause  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vault ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(kindText(e.Kind))
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if len(e.Msgs) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Msgs, "; "))
	} else if e.cause != nil && e.Status == 0 {
		b.WriteString(": ")
		b.WriteString(scrub(e.cause.Error()))
	}
	return b.String()
}

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying transport error, if any.
func (e *Error) Unwrap() error { return e.cause }

// Classify turns an error from vault/api (or the network) into an *Error.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		e := &Error{Op: op, Status: re.StatusCode, Msgs: re.Errors, cause: err}
		if re.RawError {
			// Not Vault's JSON: a load balancer or proxy answered (its
			// HTML page is no message for a log).
			e.Msgs = []string{notVaultBody}
		}
		switch {
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			e.Kind = ErrDenied
		case re.StatusCode == http.StatusNotFound:
			e.Kind = ErrNotFound
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
			e.Kind = ErrUnavailable
		default:
			e.Kind = ErrInvalid
		}
		return e
	}
	// The caller gave up: not Vault's fault, and not a reason for a 503.
	if errors.Is(err, context.Canceled) {
		return &Error{Op: op, Kind: context.Canceled, cause: err}
	}
	// Everything else (network errors, timeouts, unreadable answers) means
	// Vault is not usable now.
	return &Error{Op: op, Kind: ErrUnavailable, cause: err}
}

// notVaultBody replaces an error body that is not Vault's JSON.
const notVaultBody = "the answer is not Vault's (from a load balancer or proxy?)"

// scrub keeps transport errors short and free of query strings.
func scrub(s string) string {
	if i := strings.Index(s, "?"); i >= 0 {
		if j := strings.IndexAny(s[i:], " \""); j >= 0 {
			return s[:i] + s[i+j:]
		}
		return s[:i]
	}
	return s
}
