package vaultclient_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// TestVaultLeaderLoss runs three clients against a real three-node Vault
// raft cluster: one through HAProxy (routing to the active node only),
// one straight to a standby, one straight to the active node with a
// keep-alive connection open. The active node is killed with SIGKILL.
// The client of the dead node fails at once, and on every later call,
// with ErrUnavailable (no hang on its dead connection); the other two
// fail only with ErrUnavailable (the load balancer's 503, the standby's
// 5xx while no leader is elected) and then succeed again without a new
// client, decrypting what was encrypted before the kill.
func TestVaultLeaderLoss(t *testing.T) {
	testkit.RequireHA(t)
	cl, lb, active := testkit.VaultBehindHAProxy(t)
	var standby *testkit.VaultNode
	for _, n := range cl.Nodes {
		if n != active {
			standby = n
			break
		}
	}
	ctx := context.Background()
	newClient := func(addr string) *vaultclient.Client {
		c, err := vaultclient.New(vaultclient.Config{Addr: addr, Token: cl.RootToken, Timeout: 10 * time.Second, Logger: testkit.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	viaLB, viaStandby, direct := newClient(lb.URL), newClient(standby.Addr), newClient(active.Addr)
	if _, err := viaLB.Write(ctx, "transit/keys/ha", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("leader-loss"))
	encrypt := func(c *vaultclient.Client) (string, error) {
		d, err := c.Write(ctx, "transit/encrypt/ha", map[string]any{"plaintext": plain})
		if err != nil {
			return "", err
		}
		s, _ := d["ciphertext"].(string)
		return s, nil
	}
	var before []string
	for _, c := range []*vaultclient.Client{viaLB, viaStandby, direct} {
		ct, err := encrypt(c)
		if err != nil || ct == "" {
			t.Fatalf("encrypt before the kill: %q %v", ct, err)
		}
		before = append(before, ct)
	}

	active.Proc.Kill(t)
	killed := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := encrypt(direct); !errors.Is(err, vaultclient.ErrUnavailable) {
			t.Fatalf("call %d to the killed node: %v, want ErrUnavailable", i, err)
		}
	}
	t.Logf("the killed node's client: 3 calls, each ErrUnavailable, within %d ms of the kill", time.Since(killed).Milliseconds())

	// Both clients call from the kill on, at once, until they succeed.
	type outcome struct {
		name        string
		failures    int
		first, last error
		bad         error
		recovered   time.Duration
		c           *vaultclient.Client
	}
	results := make(chan outcome, 2)
	for name, c := range map[string]*vaultclient.Client{"through haproxy": viaLB, "to a standby": viaStandby} {
		go func() {
			o := outcome{name: name, c: c}
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
				_, err := encrypt(c)
				if err == nil {
					break
				}
				if !errors.Is(err, vaultclient.ErrUnavailable) {
					o.bad = err
					break
				}
				o.failures++
				if o.first == nil {
					o.first = err
				}
				o.last = err
				if time.Now().After(deadline) {
					o.bad = errors.New("no success 2 minutes after the kill")
					break
				}
			}
			o.recovered = time.Since(killed)
			results <- o
		}()
	}
	for i := 0; i < 2; i++ {
		o := <-results
		if o.bad != nil {
			t.Errorf("%s: %v, want ErrUnavailable until success while the leader is lost", o.name, o.bad)
			continue
		}
		t.Logf("%s: %d calls refused with ErrUnavailable, success %d ms after the kill; first %v; last %v",
			o.name, o.failures, o.recovered.Milliseconds(), o.first, o.last)
		for _, ct := range before {
			d, err := o.c.Write(ctx, "transit/decrypt/ha", map[string]any{"ciphertext": ct})
			if err != nil || d["plaintext"] != plain {
				t.Errorf("%s: decrypt after the failover: %v %v", o.name, d["plaintext"], err)
			}
		}
	}
}
