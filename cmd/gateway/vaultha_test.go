package main

import (
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestBuiltGatewayVaultLeaderLoss runs the built `gateway serve` against
// a three-node Vault cluster with raft storage behind HAProxy, which
// routes only to the active node (GET /v1/sys/health answers 200 there,
// 429 on a standby), under a steady produce load by clients that retry a
// refused request with the same record id. The active Vault node is
// killed with SIGKILL: a new leader is elected, the gateway resumes
// without a restart, every record that got 200 is in Kafka, and no
// plaintext is stored. It prints the outage the clients saw (first
// refusal to the first 200 after the last one) and the counts; only
// generous safety limits are timed.
//
// The cluster takes a while to start, so the test runs only with
// KAFKAGATE_HA set (make test-ha).
func TestBuiltGatewayVaultLeaderLoss(t *testing.T) {
	testkit.RequireHA(t)
	bin := buildGateway(t)
	vault, lb, first := testkit.VaultBehindHAProxy(t)

	_, brokers := testkit.Kafka(t)
	cfg := haConfig(t, brokers)
	// The keys the policy needs, created through the load balancer.
	prov := exec.Command(bin, "provision", "--no-kafka", "--config", cfg)
	prov.Env = append(os.Environ(), "VAULT_ADDR="+lb.URL, "VAULT_TOKEN="+vault.RootToken)
	if out, err := prov.CombinedOutput(); err != nil {
		t.Fatalf("gateway provision: %v\n%s", err, out)
	}
	listen := freeAddr(t)
	gw := startServe(t, bin, cfg, "gateway", listen, lb.URL, vault.RootToken)
	base := "http://" + listen
	load := testkit.StartLoad(t, base+"/v3/clusters/"+testkit.APIClusterID(t, nil, base, "")+"/topics/purchases/records", 4)
	load.WaitOK(t, 0, 300, 90*time.Second)

	mark := load.Mark()
	killed := time.Now()
	first.Proc.Kill(t)
	next := vault.WaitActive(t, first, 2*time.Minute)
	elected := time.Since(killed)
	load.WaitOK(t, load.Mark(), 300, 2*time.Minute)
	s := load.Summary(mark, -1)
	t.Logf("vault leader %s killed; %s active after %d ms (seen by polling sys/health)", first.ID, next.ID, elected.Milliseconds())
	t.Logf("after the kill: %s", s)

	if gw.Exited() {
		t.Fatalf("the gateway exited:\n%s", gw.Out.String())
	}
	c := checkLoad(t, load, brokers)
	all := load.Summary(0, -1)
	t.Logf("vault HA: %s; outage (first refusal to first 200 again) %d ms; lost %d, duplicates %d, plaintext found %d",
		all, s.ErrorWindow.Milliseconds(), len(c.Lost), c.Duplicates, c.Plaintext)
	if all.Other > 0 || all.ConnErrors > 0 {
		t.Errorf("clients saw answers other than 200 and 503: %d connection errors, %d other %v", all.ConnErrors, all.Other, all.OtherStatuses)
	}
	// The gateway itself stayed up: its health endpoint never failed.
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz after the failover: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
