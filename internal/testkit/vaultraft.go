package testkit

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// VaultNode is one server of a VaultCluster.
type VaultNode struct {
	ID          string // raft node id: n0, n1, ...
	Addr        string // http://127.0.0.1:port (API)
	Listen      string // 127.0.0.1:port (API), for a load balancer
	ClusterAddr string // https://127.0.0.1:port (raft and request forwarding)
	Proc        *Process
}

// VaultCluster is a Vault HA cluster of real `vault server` processes with
// integrated (raft) storage on loopback ports: initialised with one
// unseal key, every node unsealed and a raft voter, transit enabled at
// transit/.
type VaultCluster struct {
	Nodes     []*VaultNode
	RootToken string
	UnsealKey string
}

// StartVaultCluster starts an n-node raft cluster for t and stops it when
// t ends. Node 0 is initialised and unsealed; the others join it (vault
// operator raft join) and are unsealed; autopilot promotes them to voters
// after 1 s of stability, and StartVaultCluster waits until all n vote,
// so the cluster survives the loss of any one node (n >= 3). Raft's
// timing is Vault's fastest (performance_multiplier = 1). The servers'
// logs go to stderr when KAFKAGATE_VAULT_LOG is set.
func StartVaultCluster(t testing.TB, n int) *VaultCluster {
	t.Helper()
	bin := vaultOptions(t).Binary
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c := &VaultCluster{}
	for i := 0; i < n; i++ {
		node := &VaultNode{ID: fmt.Sprintf("n%d", i), Listen: freeLoopback(t)}
		node.Addr = "http://" + node.Listen
		cluster := freeLoopback(t)
		node.ClusterAddr = "https://" + cluster
		data := filepath.Join(dir, node.ID)
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := WriteFile(t, dir, node.ID+".hcl", fmt.Sprintf(`storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = 1
}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr      = %q
cluster_addr  = %q
disable_mlock = true
ui            = false
`, data, node.ID, node.Listen, cluster, node.Addr, node.ClusterAddr))
		cmd := exec.Command(bin, "server", "-config", cfg)
		cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "VAULT_LOG_LEVEL=warn"}
		node.Proc = StartProcess(t, "vault "+node.ID, cmd)
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(c.stop)
	if os.Getenv("KAFKAGATE_VAULT_LOG") != "" {
		t.Cleanup(func() {
			for _, node := range c.Nodes {
				fmt.Fprintf(os.Stderr, "--- vault %s log:\n%s", node.ID, node.Proc.Out.String())
			}
		})
	}
	for _, node := range c.Nodes {
		c.waitHealth(t, node, 60*time.Second, func(code int) bool { return code != 0 })
	}

	// Initialise and unseal node 0; it becomes the active node.
	first := c.client(t, c.Nodes[0], "")
	init, err := first.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vault operator init: %v", err)
	}
	c.RootToken, c.UnsealKey = init.RootToken, init.Keys[0]
	c.unseal(ctx, t, c.Nodes[0])
	c.waitHealth(t, c.Nodes[0], 60*time.Second, func(code int) bool { return code == http.StatusOK })
	root := c.client(t, c.Nodes[0], c.RootToken)
	if _, err := root.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{
		"server_stabilization_time": "1s", "cleanup_dead_servers": false,
	}); err != nil {
		t.Fatalf("raft autopilot configuration: %v", err)
	}

	// The others join node 0 and are unsealed with the same key.
	for _, node := range c.Nodes[1:] {
		res, err := c.client(t, node, "").Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: c.Nodes[0].Addr})
		if err != nil || !res.Joined {
			t.Fatalf("vault operator raft join (%s): %v %+v", node.ID, err, res)
		}
		c.unseal(ctx, t, node)
		c.waitHealth(t, node, 60*time.Second, func(code int) bool { return code == http.StatusTooManyRequests })
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := root.Sys().RaftAutopilotStateWithContext(ctx)
		if err == nil && st != nil && len(st.Voters) == n && st.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raft voters after 90 s: %v %+v", err, st)
		}
	}
	if err := root.Sys().MountWithContext(ctx, "transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enable transit: %v", err)
	}
	return c
}

// client is a vault/api client for node with token ("" for none).
func (c *VaultCluster) client(t testing.TB, node *VaultNode, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = node.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	vc, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(token)
	return vc
}

func (c *VaultCluster) unseal(ctx context.Context, t testing.TB, node *VaultNode) {
	t.Helper()
	// A node that has just joined may still be fetching the cluster's
	// keyring: retry while it says so.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := c.client(t, node, "").Sys().UnsealWithContext(ctx, c.UnsealKey)
		if err == nil && !st.Sealed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unseal %s: %v %+v\n%s", node.ID, err, st, node.Proc.Out.String())
		}
	}
}

// HealthCode is node's answer to GET /v1/sys/health: 200 active, 429
// standby, 503 sealed, 501 not initialised; 0 when it does not answer.
func (node *VaultNode) HealthCode() int {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(node.Addr + "/v1/sys/health")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (c *VaultCluster) waitHealth(t testing.TB, node *VaultNode, limit time.Duration, ok func(code int) bool) {
	t.Helper()
	code := 0
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		if code = node.HealthCode(); ok(code) {
			return
		}
		if node.Proc.Exited() {
			t.Fatalf("vault %s exited:\n%s", node.ID, node.Proc.Out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault %s: health %d after %s\n%s", node.ID, code, limit, node.Proc.Out.String())
		}
	}
}

// Listens are the nodes' API host:port, for a load balancer.
func (c *VaultCluster) Listens() []string {
	out := make([]string, len(c.Nodes))
	for i, node := range c.Nodes {
		out[i] = node.Listen
	}
	return out
}

// Active returns the node that answers as the active one (nil if none
// does now).
func (c *VaultCluster) Active() *VaultNode {
	for _, node := range c.Nodes {
		if !node.Proc.Exited() && node.HealthCode() == http.StatusOK {
			return node
		}
	}
	return nil
}

// WaitActive waits until a node other than not answers as active, and
// returns it, failing t after limit.
func (c *VaultCluster) WaitActive(t testing.TB, not *VaultNode, limit time.Duration) *VaultNode {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		if a := c.Active(); a != nil && a != not {
			return a
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, node := range c.Nodes {
				fmt.Fprintf(&logs, "--- %s (health %d):\n%s", node.ID, node.HealthCode(), node.Proc.Out.String())
			}
			t.Fatalf("no new active vault node within %s\n%s", limit, logs.String())
		}
	}
}

// stop ends every node still running (SIGTERM, then SIGKILL).
func (c *VaultCluster) stop() {
	for _, node := range c.Nodes {
		if !node.Proc.Exited() {
			_ = node.Proc.Signal(syscall.SIGTERM)
		}
	}
	for _, node := range c.Nodes {
		if _, err := node.Proc.Wait(10 * time.Second); err != nil {
			_ = node.Proc.Signal(syscall.SIGKILL)
			<-node.Proc.Done()
		}
	}
}

// Kafka starts only a kfake broker (short group timeouts) for t and
// returns it with its addresses.
func Kafka(t testing.TB) (*kfake.Cluster, []string) {
	t.Helper()
	kc, err := devenv.StartKafka(devenv.KafkaOptions{FastGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc, kc.ListenAddrs()
}

// RequireHA skips t unless KAFKAGATE_HA is set (make test-ha sets it):
// the Vault HA tests start a three-node cluster, which takes a while.
func RequireHA(t testing.TB) {
	t.Helper()
	if os.Getenv("KAFKAGATE_HA") == "" {
		t.Skip("set KAFKAGATE_HA=1 to run the Vault HA tests (make test-ha)")
	}
}

// VaultBehindHAProxy starts a three-node cluster and HAProxy in front of
// it, routing only to the active node (GET /v1/sys/health answers 200
// there, 429 on a standby), and waits until HAProxy sees exactly the
// active node up. It returns the cluster, the load balancer and the
// active node. HAProxy's log is printed if t fails.
func VaultBehindHAProxy(t testing.TB) (*VaultCluster, *HAProxy, *VaultNode) {
	t.Helper()
	HAProxyBin(t)
	began := time.Now()
	c := StartVaultCluster(t, 3)
	t.Logf("vault raft cluster of 3 ready in %d ms", time.Since(began).Milliseconds())
	lb := StartHAProxy(t, HAProxyOptions{Servers: c.Listens(), Check: "/v1/sys/health"})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy log:\n%s", lb.Proc.Out.String())
		}
	})
	active := c.Active()
	if active == nil {
		t.Fatal("no active vault node")
	}
	want := map[string]bool{}
	for i, node := range c.Nodes {
		want[fmt.Sprintf("s%d", i)] = node == active
	}
	lb.WaitServers(t, want, 30*time.Second)
	return c, lb, active
}
