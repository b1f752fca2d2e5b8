package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// haConfig is the configuration of the gateways of the HA tests: one
// topic whose Name field is encrypted (the load's marker is in Name).
func haConfig(t *testing.T, brokers []string) string {
	t.Helper()
	return testkit.WriteFile(t, t.TempDir(), "gw.ini", fmt.Sprintf("[default]\nbootstrap.servers=%s\n\n[policy:purchases]\nfields = Name transit\n", brokers[0]))
}

// startServe starts the built `gateway serve` on listen with Vault at
// vaultAddr (token), a 2 s drain delay and a 5 s drain timeout, and waits
// until its /readyz answers 200.
func startServe(t *testing.T, bin, cfg, name, listen, vaultAddr, token string) *testkit.Process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg, "--listen", listen, "--drain-delay", "2s", "--drain-timeout", "5s")
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+vaultAddr, "VAULT_TOKEN="+token)
	p := testkit.StartProcess(t, name, cmd)
	c := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := c.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if p.Exited() {
			t.Fatalf("%s exited before it was ready:\n%s", name, p.Out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 90 s:\n%s", name, p.Out.String())
		}
	}
}

// checkLoad stops the load, reads the topic, prints the figures and
// fails t when a record that got 200 is missing, plaintext is stored, or
// a record never got 200 although its client retried.
func checkLoad(t *testing.T, load *testkit.Load, brokers []string) testkit.LoadCheck {
	t.Helper()
	load.Stop()
	c := load.Check(testkit.ReadStored(t, brokers, "purchases"))
	t.Logf("kafka: %s", c)
	if len(c.Lost) > 0 {
		t.Errorf("%d records got 200 but are not in Kafka: %v", len(c.Lost), c.Lost)
	}
	if c.Plaintext > 0 {
		t.Errorf("%d stored records hold the plaintext marker", c.Plaintext)
	}
	if u := load.Unfinished(); len(u) > 0 {
		t.Errorf("%d records never got 200 although retried: %v", len(u), u)
	}
	if c.OK == 0 {
		t.Error("no record got 200")
	}
	return c
}

// TestBuiltReplicasBehindHAProxy runs two built `gateway serve` replicas,
// sharing one Vault and the kfake broker, behind HAProxy (health check on
// /readyz), under a steady produce load through the load balancer by
// clients that retry a refused request with the same record id.
//
// (a) One replica is killed with SIGKILL, then started again: every
// record that got 200 is in Kafka, no plaintext is stored, and clients
// saw only 200, 503 or connection errors, every record getting 200 in
// the end. (b) The other replica gets SIGTERM (it drains), exits 0 and is
// started again, a rolling restart: no request fails but with 503.
// It prints each phase's figures; only generous safety limits are timed.
func TestBuiltReplicasBehindHAProxy(t *testing.T) {
	testkit.HAProxyBin(t)
	env := testkit.Start(t)
	bin := buildGateway(t)
	cfg := haConfig(t, env.Brokers)
	addrs := []string{freeAddr(t), freeAddr(t)}
	start := func(i int) *testkit.Process {
		return startServe(t, bin, cfg, fmt.Sprintf("replica s%d", i), addrs[i], env.Vault.Addr, env.Vault.Token)
	}
	reps := []*testkit.Process{start(0), start(1)}
	lb := testkit.StartHAProxy(t, testkit.HAProxyOptions{Servers: addrs, Check: "/readyz"})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy log:\n%s", lb.Proc.Out.String())
		}
	})
	lb.WaitServers(t, map[string]bool{"s0": true, "s1": true}, 30*time.Second)
	records := lb.URL + "/v3/clusters/" + testkit.APIClusterID(t, nil, lb.URL, "") + "/topics/purchases/records"
	load := testkit.StartLoad(t, records, 4)
	load.WaitOK(t, 0, 300, 90*time.Second)
	states, err := lb.ServerStates()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Sessions == 0 {
			t.Fatalf("haproxy sent no request to %s before the kill: %+v", s.Name, states)
		}
	}

	// restart starts replica i again, waits until haproxy sends to it and
	// it has served, and sums up the load since mark.
	restart := func(i, mark int) testkit.LoadSummary {
		reps[i] = start(i)
		lb.WaitServers(t, map[string]bool{fmt.Sprint("s", i): true}, 30*time.Second)
		load.WaitOK(t, load.Mark(), 200, 90*time.Second)
		return load.Summary(mark, -1)
	}

	// (a) SIGKILL s0 under load; haproxy takes it out; start it again.
	markA := load.Mark()
	reps[0].Kill(t)
	lb.WaitServers(t, map[string]bool{"s0": false}, 30*time.Second)
	load.WaitOK(t, load.Mark(), 200, 90*time.Second)
	a := restart(0, markA)
	t.Logf("(a) kill -9 s0, restart it: %s", a)

	// (b) SIGTERM s1: it drains and exits 0; start it again.
	markB := load.Mark()
	if err := reps[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exitErr, timeout := reps[1].Wait(90 * time.Second)
	if timeout != nil || exitErr != nil {
		t.Fatalf("s1 after SIGTERM: exit %v, %v\n%s", exitErr, timeout, reps[1].Out.String())
	}
	load.WaitOK(t, load.Mark(), 100, 90*time.Second)
	b := restart(1, markB)
	t.Logf("(b) SIGTERM s1, restart it: %s", b)

	c := checkLoad(t, load, env.Brokers)
	all := load.Summary(0, -1)
	t.Logf("replicas: %s; lost %d, duplicates %d, plaintext found %d", all, len(c.Lost), c.Duplicates, c.Plaintext)
	states, err = lb.ServerStates()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("haproxy: %+v", states)
	// The kill must have hit requests (sent to s0 after it died, or in
	// flight): haproxy resent them. Otherwise nothing was tested.
	if s0 := states[0]; s0.Name != "s0" || s0.Retries+s0.Redispatches == 0 {
		t.Errorf("haproxy resent no request from the killed replica: %+v", states)
	}
	if a.Other > 0 {
		t.Errorf("(a) clients saw statuses other than 200, 503 and connection errors: %v", a.OtherStatuses)
	}
	if b.Other > 0 || b.ConnErrors > 0 {
		t.Errorf("(b) a rolling restart failed requests beyond 503: %d connection errors, %d other %v", b.ConnErrors, b.Other, b.OtherStatuses)
	}
	if all.Other > 0 {
		t.Errorf("clients saw statuses other than 200, 503 and connection errors: %v", all.OtherStatuses)
	}
}
