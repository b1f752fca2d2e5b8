package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestBuiltGatewaySurvivesPoisonRecord runs the built binary (`gateway
// dev`), writes a value of 8 MiB of '[' straight to Kafka with sarama, and
// checks that the process stays alive and reports that record failed
// (too_deep) on the GET, the stream, the viewer's API and `gateway consume`,
// then serves the next request.
func TestBuiltGatewaySurvivesPoisonRecord(t *testing.T) {
	bin := buildGateway(t)
	listen, vaddr, kaddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testkit.SyncBuffer{}
	cmd := exec.CommandContext(ctx, bin, "dev", "--log-level", "error", "--listen", listen, "--vault-addr", vaddr, "--kafka-addr", kaddr, "--proxy-addr", "")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})
	base := "http://" + listen
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("dev exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev stack not ready:\n%s", out.String())
		}
	}
	token := regexp.MustCompile(`VAULT_TOKEN=(\S+)`).FindStringSubmatch(out.String())
	if token == nil {
		t.Fatalf("no token in the banner:\n%s", out.String())
	}

	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.Producer.Return.Successes = true
	sc.Producer.MaxMessageBytes = 16 << 20
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	prod, err := sarama.NewSyncProducer([]string{kaddr}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	poison := append([]byte(`{"Name":`), bytes.Repeat([]byte{'['}, 8<<20)...)
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "purchases", Partition: 0, Value: sarama.ByteEncoder(poison)}); err != nil {
		t.Fatal(err)
	}

	cid := clusterID(t, base)
	records := base + "/v3/clusters/" + cid + "/topics/purchases/records"
	get := func(url string) []byte {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v (gateway alive? %s)", url, err, out.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
		return b
	}
	var rr struct {
		Records []struct {
			Decryption struct {
				Status string `json:"status"`
				Code   string `json:"code"`
			} `json:"decryption"`
		} `json:"records"`
	}
	// A read returns what the broker hands over within its wait; the 8 MiB
	// record may take more than one on a loaded machine.
	for deadline := time.Now().Add(60 * time.Second); len(rr.Records) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := json.Unmarshal(get(records+"?partition=0&offset=0&max=10"), &rr); err != nil {
			t.Fatal(err)
		}
	}
	if len(rr.Records) != 1 || rr.Records[0].Decryption.Status != "failed" || rr.Records[0].Decryption.Code != "too_deep" {
		t.Fatalf("GET: %+v", rr)
	}

	// The stream reports it and goes on.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, records+":stream?partition=0&offset=0&max=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReaderSize(resp.Body, 1<<20).ReadString('\n')
	resp.Body.Close()
	if err != nil || !strings.Contains(line, `"status":"failed"`) || !strings.Contains(line, `"code":"too_deep"`) {
		t.Fatalf("stream: %v %.300s", err, line)
	}

	// The viewer's API.
	b := get(base + "/ui/api/records?topic=purchases")
	for deadline := time.Now().Add(60 * time.Second); !bytes.Contains(b, []byte(`"failed"`)) && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b = get(base + "/ui/api/records?topic=purchases")
	}
	if !bytes.Contains(b, []byte(`"failed"`)) {
		t.Fatalf("viewer: %.300s", b)
	}

	// The next request is served.
	body := `{"partition_id":0,"value":{"type":"JSON","data":{"Name":"Ann","Address":"1 Main St","credit_card":"2516-2848-6785-9087"}}}`
	presp, err := http.Post(records, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != 200 {
		t.Fatalf("produce after the poison record: %d %s", presp.StatusCode, pb)
	}

	// gateway consume, the built binary, reports both and exits 0.
	cons := exec.CommandContext(ctx, bin, "consume", "--log-level", "error", "--topic", "purchases", "--partition", "0", "--brokers", kaddr, "--format", "raw")
	cons.Env = append(os.Environ(), "VAULT_ADDR=http://"+vaddr, "VAULT_TOKEN="+token[1])
	var stdout, stderr bytes.Buffer
	cons.Stdout, cons.Stderr = &stdout, &stderr
	if err := cons.Run(); err != nil {
		t.Fatalf("consume: %v\n%s", err, stderr.String())
	}
	if got := regexp.MustCompile(`"status":"(\w+)"`).FindAllStringSubmatch(stdout.String(), -1); len(got) != 2 || got[0][1] != "failed" || got[1][1] != "decrypted" {
		t.Fatalf("consume statuses %v", got)
	}
	select {
	case err := <-done:
		t.Fatalf("gateway exited: %v\n%s", err, out.String())
	default:
	}
}

func clusterID(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/v3/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cl struct {
		Data []struct {
			ClusterID string `json:"cluster_id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cl); err != nil || len(cl.Data) != 1 {
		t.Fatalf("clusters: %v %+v", err, cl)
	}
	return fmt.Sprint(cl.Data[0].ClusterID)
}
