package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

func run(ctx context.Context, out io.Writer, args ...string) error {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(out)
	return root.ExecuteContext(ctx)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// TestDevStackEndToEnd runs what `make demo` runs (gateway dev, on the
// embedded default configuration), produces through its HTTP API as the
// README shows, reads the record back with `gateway consume`, and stops it.
func TestDevStackEndToEnd(t *testing.T) {
	if _, err := devenv.FindVault(); err != nil {
		t.Fatal(err)
	}
	listen, vaddr, kaddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, out, "dev", "--log-level", "error", "--listen", listen, "--vault-addr", vaddr, "--kafka-addr", kaddr, "--proxy-addr", "127.0.0.1:0")
	}()
	base := "http://" + listen
	waitHealthy(t, http.DefaultClient, base+"/readyz", done, out, 60*time.Second)
	banner := out.String()
	token := regexp.MustCompile(`VAULT_TOKEN=(\S+)`).FindStringSubmatch(banner)
	if token == nil || !strings.Contains(banner, "curl") {
		t.Fatalf("banner lacks token or examples:\n%s", banner)
	}
	resp, err := http.Get(base + "/v3/clusters")
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Data []struct {
			ClusterID string `json:"cluster_id"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&cl)
	resp.Body.Close()
	if len(cl.Data) != 1 || cl.Data[0].ClusterID == "" {
		t.Fatalf("clusters: %+v", cl)
	}
	body := `{"value":{"type":"JSON","data":{"Name":"Ann","Address":"1 Main St","credit_card":"2516-2848-6785-9087","loyalty":"gold"}}}`
	resp, err = http.Post(base+"/v3/clusters/"+cl.Data[0].ClusterID+"/topics/purchases/records", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(pb), `"mode":"transit"`) != 3 {
		t.Fatalf("produce: %d %s", resp.StatusCode, pb)
	}

	// gateway consume, as a user would run it against the dev stack.
	t.Setenv("VAULT_ADDR", "http://"+vaddr)
	t.Setenv("VAULT_TOKEN", token[1])
	var cons bytes.Buffer
	if err := run(context.Background(), &cons, "consume", "--log-level", "error", "--topic", "purchases", "--brokers", kaddr); err != nil {
		t.Fatalf("consume: %v\n%s", err, cons.String())
	}
	lines := strings.Split(strings.TrimSpace(cons.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("consume printed %d lines:\n%s", len(lines), cons.String())
	}
	var rec struct {
		Topic string `json:"topic"`
		Value struct {
			Data map[string]string `json:"data"`
		} `json:"value"`
		Decryption struct {
			Status string `json:"status"`
		} `json:"decryption"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Decryption.Status != "decrypted" || rec.Value.Data["Address"] != "1 Main St" || rec.Value.Data["loyalty"] != "gold" {
		t.Fatalf("consumed: %s", lines[0])
	}

	// keys rotate, then a new record carries v2 and both still read.
	var rot bytes.Buffer
	if err := run(context.Background(), &rot, "keys", "rotate", "kafka-purchases"); err != nil || !strings.Contains(rot.String(), "version is now 2") {
		t.Fatalf("rotate: %v %s", err, rot.String())
	}
	resp, err = http.Post(base+"/v3/clusters/"+cl.Data[0].ClusterID+"/topics/purchases/records", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(pb), `"key_version":2`) {
		t.Fatalf("after rotation: %s", pb)
	}
	cons.Reset()
	if err := run(context.Background(), &cons, "consume", "--log-level", "error", "--topic", "purchases", "--brokers", kaddr, "--format", "raw"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(cons.String(), `"status":"decrypted"`); n != 2 {
		t.Fatalf("want 2 decrypted records:\n%s", cons.String())
	}

	// The Kafka proxy: kcat produces through it, the broker holds the
	// card number encrypted, and kcat reads it back through it decrypted.
	proxy := regexp.MustCompile(`proxy +(\S+)`).FindStringSubmatch(banner)
	if proxy == nil {
		t.Fatalf("banner lacks the proxy address:\n%s", banner)
	}
	kcat := testkit.Kcat(t)
	card := "4929-1111-2222-3333"
	in := `{"Name":"Bob","Address":"2 High St","credit_card":"` + card + `"}`
	pc := exec.Command(kcat, "-b", proxy[1], "-t", "purchases", "-P", "-p", "0")
	pc.Stdin = strings.NewReader(in + "\n")
	if b, err := pc.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce through the proxy: %v %s", err, b)
	}
	direct, err := exec.Command(kcat, "-b", kaddr, "-t", "purchases", "-C", "-e", "-p", "0", "-o", "-1", "-c", "1").Output()
	if err != nil || strings.Contains(string(direct), card) || !strings.Contains(string(direct), "vault:v2:") {
		t.Fatalf("broker's view of the proxied record: %v %s", err, direct)
	}
	via, err := exec.Command(kcat, "-b", proxy[1], "-t", "purchases", "-C", "-e", "-p", "0", "-o", "-1", "-c", "1").Output()
	if err != nil || !strings.Contains(string(via), card) || !strings.Contains(string(via), "2 High St") {
		t.Fatalf("kcat through the proxy: %v %s", err, via)
	}

	stopRun(t, cancel, done, 30*time.Second, "dev")
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, "consume")
	if err == nil || !strings.Contains(err.Error(), "--topic is required") {
		t.Fatalf("got %v", err)
	}
	err = run(context.Background(), &out, "serve", "--config", "/nonexistent.ini")
	if err == nil || strings.Contains(oneLine(err.Error()), "\n") {
		t.Fatalf("got %v", err)
	}
	if got := oneLine("a\nb\r\nc"); got != "a b  c" {
		t.Fatalf("oneLine: %q", got)
	}
}
