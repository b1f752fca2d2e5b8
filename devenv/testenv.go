package devenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkagate/kafkagate/transit"
	"github.com/kafkagate/kafkagate/vaultclient"
)

// Env is a Vault dev server and a kfake broker for one test.
type Env struct {
	Vault   *Vault
	VC      *vaultclient.Client // root-token client
	Transit *transit.Client
	Kafka   *kfake.Cluster
	Brokers []string
}

// Start starts both components for t and stops them when t ends. It fails
// the test (never skips) when the vault binary is missing: `make test`
// builds it first.
func Start(t testing.TB) *Env {
	t.Helper()
	return (&Env{}).start(t, KafkaOptions{FastGroups: true})
}

// StartWith is Start with broker options.
func StartWith(t testing.TB, ko KafkaOptions) *Env {
	t.Helper()
	return (&Env{}).start(t, ko)
}

func (e *Env) start(t testing.TB, ko KafkaOptions) *Env {
	t.Helper()
	env := e
	env.Vault = StartTestVault(t)
	var err error
	env.VC, err = env.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	env.Transit = transit.New(env.VC, transit.Options{})
	env.Kafka, err = StartKafka(ko)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Kafka.Close)
	env.Brokers = env.Kafka.ListenAddrs()
	return env
}

// StartTestVault starts only Vault for t.
func StartTestVault(t testing.TB) *Vault {
	t.Helper()
	bin, err := FindVault()
	if err != nil {
		t.Fatalf("%v (tests need a real Vault; `make test` builds it)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var logw *os.File
	if os.Getenv("KAFKAGATE_VAULT_LOG") != "" {
		logw = os.Stderr
	}
	o := VaultOptions{Binary: bin}
	if logw != nil {
		o.Log = logw
	}
	v, err := StartVault(ctx, o)
	if err != nil {
		t.Fatalf("start vault dev server: %v", err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	return v
}
