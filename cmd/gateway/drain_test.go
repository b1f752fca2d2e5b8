package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestBuiltServeDrainsOnSIGTERM runs the built `gateway serve` against a
// real Vault and a kfake broker, keeps a steady produce load on it, opens
// a record stream, and sends SIGTERM. It checks the drain: /readyz answers
// 503 while /healthz answers 200 and produce still succeeds during the
// drain delay; the stream ends cleanly at the drain timeout; the process
// exits 0; every request that got 200 is in Kafka, and no request that
// did not get 200 is. Each request carries a unique key to tell them
// apart. It prints the figures; only generous safety limits are timed.
func TestBuiltServeDrainsOnSIGTERM(t *testing.T) {
	env := testkit.Start(t)
	bin := buildGateway(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	cfg := testkit.WriteFile(t, dir, "gw.ini", fmt.Sprintf("[default]\nbootstrap.servers=%s\n\n[policy:purchases]\nfields = Name transit\n\n[kafkagate]\nlisten = %s\n", env.Brokers[0], listen))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &testkit.SyncBuffer{}
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg, "--drain-delay", "2s", "--drain-timeout", "3s")
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.Vault.Addr, "VAULT_TOKEN="+env.Vault.Token)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
		}
	})
	base := "http://" + listen
	client := &http.Client{Timeout: 30 * time.Second}
	waitHealthy(t, client, base+"/readyz", done, out, 60*time.Second)
	var exitErr error
	go func() { exitErr = <-done; close(exited) }()
	records := base + "/v3/clusters/" + clusterID(t, base) + "/topics/purchases/records"

	// The load: 4 workers, each sending one request after another with a
	// unique key, until the gateway has exited (at most 20,000 requests).
	type result struct {
		key    string
		status int // 0: transport error
		at     time.Time
	}
	var (
		mu      sync.Mutex
		results []result
		seq     int
	)
	next := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if seq >= 20000 {
			return "", false
		}
		seq++
		return fmt.Sprintf("req-%06d", seq), true
	}
	wait := testkit.Repeat(4, exited, func(int) bool {
		key, ok := next()
		if !ok {
			return false
		}
		body := fmt.Sprintf(`{"key":{"type":"STRING","data":%q},"value":{"type":"JSON","data":{"Name":"Ann","Address":"1 Main St"}}}`, key)
		r := result{key: key}
		if resp, err := client.Post(records, "application/json", strings.NewReader(body)); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.status = resp.StatusCode
		}
		r.at = time.Now()
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		if r.status != 200 {
			time.Sleep(10 * time.Millisecond) // refused: do not spin
		}
		return true
	})
	count200 := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.status == 200 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(60 * time.Second); count200() < 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no steady load: %d requests got 200\n%s", count200(), out.String())
		}
	}

	// A stream in flight: it must end cleanly at the drain timeout.
	streamEnd := make(chan error, 1)
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, records+":stream?partition=0&offset=0", nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	if sresp.StatusCode != 200 {
		b, _ := io.ReadAll(sresp.Body)
		t.Fatalf("stream: %d %s", sresp.StatusCode, b)
	}
	streamLines := 0
	go func() {
		defer sresp.Body.Close()
		sc := bufio.NewScanner(sresp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			streamLines++
		}
		streamEnd <- sc.Err()
	}()

	sigterm := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// /readyz turns 503 while /healthz stays 200 and produce still works.
	var ready503 time.Time
	for deadline := time.Now().Add(10 * time.Second); ready503.IsZero(); time.Sleep(10 * time.Millisecond) {
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" {
				ready503 = time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 503 after SIGTERM\n%s", out.String())
		}
	}
	if resp, err := client.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz during the drain delay: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("serve still running 90 s after SIGTERM\n%s", out.String())
	}
	drain := time.Since(sigterm)
	wait()
	if exitErr != nil {
		t.Fatalf("serve exit: %v (want 0)\n%s", exitErr, out.String())
	}
	select {
	case err := <-streamEnd:
		if err != nil {
			t.Errorf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stream still open after the gateway exited")
	}

	// Every 200 is in Kafka; nothing else is.
	inKafka := map[string]int{}
	for _, m := range testkit.ReadAll(t, env.Brokers, "purchases") {
		inKafka[string(m.Key)]++
	}
	var ok, refused, other, okAfterSignal int
	var lost, producedWithout200 []string
	for _, r := range results {
		switch {
		case r.status == 200:
			ok++
			if r.at.After(sigterm) {
				okAfterSignal++
			}
			if inKafka[r.key] != 1 {
				lost = append(lost, fmt.Sprintf("%s(%d)", r.key, inKafka[r.key]))
			}
		case r.status == 0:
			refused++
		default:
			other++
		}
		if r.status != 200 && inKafka[r.key] > 0 {
			producedWithout200 = append(producedWithout200, fmt.Sprintf("%s(status %d)", r.key, r.status))
		}
	}
	t.Logf("drain: %d requests, %d got 200 (%d after SIGTERM), %d transport errors, %d other statuses; %d records in Kafka; /readyz 503 after %d ms; exit 0 after %d ms; stream sent %d lines and ended cleanly",
		len(results), ok, okAfterSignal, refused, other, len(inKafka), ready503.Sub(sigterm).Milliseconds(), drain.Milliseconds(), streamLines)
	if len(lost) > 0 {
		t.Errorf("%d requests got 200 but are not in Kafka exactly once: %v", len(lost), lost)
	}
	if len(producedWithout200) > 0 {
		t.Errorf("%d requests without 200 are in Kafka: %v", len(producedWithout200), producedWithout200)
	}
	if okAfterSignal == 0 {
		t.Error("no request got 200 after SIGTERM: the listener did not keep serving during the drain delay")
	}
	if other > 0 {
		t.Errorf("%d requests got a status other than 200 (want 200 or a refused connection)", other)
	}
	for _, want := range []string{"draining: /readyz answers 503", "draining: listener closed", "draining: server stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("test ran out of time")
	}
}
