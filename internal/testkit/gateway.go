package testkit

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/demo"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Quiet is a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Config parses a kafkagate configuration, failing t on error.
func Config(t testing.TB, text string) *config.File {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// RootVault is env's Vault address and root token, each call bounded by
// timeout (0: the client's default).
func RootVault(env *Env, timeout time.Duration) vaultclient.Config {
	return vaultclient.Config{Addr: env.Vault.Addr, Token: env.Vault.Token, Timeout: timeout}
}

// Gateway assembles a gateway on env for t and closes it when t ends.
// o.Brokers defaults to env's broker (env may be nil when o.Brokers is
// set), o.Logger to Quiet.
func Gateway(t testing.TB, env *Env, o server.Options) *server.Gateway {
	t.Helper()
	if o.Brokers == nil {
		o.Brokers = env.Brokers
	}
	if o.Logger == nil {
		o.Logger = Quiet()
	}
	gw, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	return gw
}

// ServeAPI serves gw's API through httptest until t ends.
func ServeAPI(t testing.TB, gw *server.Gateway) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(gw.API)
	t.Cleanup(srv.Close)
	return srv
}

// Serve runs gw.Serve (API and viewer) on a loopback port until t ends,
// when it checks that Serve returned nil; it returns the base URL.
func Serve(t testing.TB, gw *server.Gateway) string {
	t.Helper()
	l, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// ClusterID is the cluster id of gw's Kafka.
func ClusterID(t testing.TB, gw *server.Gateway) string {
	t.Helper()
	cid, err := gw.Kafka.ClusterID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cid
}

// EnsureEnvelopeKEK creates envelope mode's default key encryption key
// (derived) in env's transit.
func EnsureEnvelopeKEK(t testing.TB, env *Env) {
	t.Helper()
	if err := env.Transit.EnsureKey(context.Background(), envelope.DefaultKEK, transit.KeySpec{Derived: true}); err != nil {
		t.Fatal(err)
	}
}

// EnsureFPEDomains creates the FPE key encryption key and a key for each
// domain, stored where cfg's gateway looks for them.
func EnsureFPEDomains(t testing.TB, env *Env, cfg *config.File, domains ...string) {
	t.Helper()
	ctx := context.Background()
	kr := vaultkeyring.New(env.VC, core.KeyringOptions(cfg))
	if err := kr.EnsureKEK(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		if _, err := kr.Ensure(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
}

// ProvisionDemo creates in env's Vault what the demo's configuration cfg
// needs (demo.Provision), within a minute.
func ProvisionDemo(t testing.TB, env *Env, cfg *config.File) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := demo.Provision(ctx, env.VC, cfg); err != nil {
		t.Fatal(err)
	}
}
