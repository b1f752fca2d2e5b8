package testkit

import (
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Engine is a protect engine for policies on env's Vault (root token,
// each call bounded by vaultTimeout), closed when t ends; vc is its Vault
// client.
func Engine(t testing.TB, env *Env, policies *policy.Set, vaultTimeout time.Duration) (eng *protect.Engine, vc *vaultclient.Client) {
	t.Helper()
	c := RootVault(env, vaultTimeout)
	c.Logger = Quiet()
	vc, err := vaultclient.New(c)
	if err != nil {
		t.Fatal(err)
	}
	eng = protect.New(transit.New(vc, transit.Options{}), protect.Options{Policies: policies})
	t.Cleanup(eng.Close)
	return eng, vc
}
