package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Env is a Vault dev server and a kfake broker for one test.
type Env = devenv.Env

// Start starts Vault and a broker with short group timeouts for t and
// stops them when t ends. It fails the test (never skips) when the vault
// binary is missing: `make test` builds it first.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, devenv.KafkaOptions{FastGroups: true})
}

// StartWith is Start with broker options.
func StartWith(t testing.TB, ko devenv.KafkaOptions) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env, err := devenv.StartEnv(ctx, vaultOptions(t), ko)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env
}

// StartVault starts only Vault for t.
func StartVault(t testing.TB) *devenv.Vault {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := devenv.StartVault(ctx, vaultOptions(t))
	if err != nil {
		t.Fatalf("start vault dev server: %v", err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	return v
}

// VaultClient starts only Vault for t and returns it with a root-token
// client.
func VaultClient(t testing.TB) (*devenv.Vault, *vaultclient.Client) {
	t.Helper()
	v := StartVault(t)
	vc, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	return v, vc
}

// vaultOptions finds the vault binary (failing t without one) and sends
// the server's log to stderr when KAFKAGATE_VAULT_LOG is set.
func vaultOptions(t testing.TB) devenv.VaultOptions {
	t.Helper()
	bin, err := devenv.FindVault()
	if err != nil {
		t.Fatalf("%v (tests need a real Vault; `make test` builds it)", err)
	}
	o := devenv.VaultOptions{Binary: bin}
	if os.Getenv("KAFKAGATE_VAULT_LOG") != "" {
		o.Log = os.Stderr
	}
	return o
}

// UseVault points the VAULT_ADDR and VAULT_TOKEN environment variables,
// which the gateway's commands read, at env's Vault (root token) for t.
func UseVault(t *testing.T, env *Env) {
	t.Setenv("VAULT_ADDR", env.Vault.Addr)
	t.Setenv("VAULT_TOKEN", env.Vault.Token)
}

// WriteFile writes text to dir/name (mode 0600) and returns the path.
func WriteFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// PauseVault stops v with SIGSTOP. The returned resume continues it,
// failing t on error; a test that ends without calling resume has v
// continued then.
func PauseVault(t testing.TB, v *devenv.Vault) (resume func()) {
	t.Helper()
	if err := v.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = v.Resume()
		}
	})
	return func() {
		t.Helper()
		if err := v.Resume(); err != nil {
			t.Fatal(err)
		}
		resumed = true
	}
}

// Kcat is the path of kcat, an independent Kafka client (librdkafka).
// Without it t is skipped, or fails when KAFKAGATE_REQUIRE_KCAT is set.
func Kcat(t testing.TB) string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("KAFKAGATE_REQUIRE_KCAT") != "" {
			t.Fatal("kcat is not installed (make deps installs it)")
		}
		t.Skip("kcat not installed")
	}
	return kcat
}
