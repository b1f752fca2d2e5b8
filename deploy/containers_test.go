package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	tcvault "github.com/testcontainers/testcontainers-go/modules/vault"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// TestGatewayAgainstContainers runs what the compose stack runs, with
// real Kafka (KRaft) and Vault containers: the provisioning job's work
// (lifecycle.Provision: Vault keys and policies, topics with their
// dead-letter topics) on deploy/kafkagate.ini, then the gateway. A record
// produced through the REST API is stored without plaintext and read back
// decrypted. Skipped where Docker is not available.
func TestGatewayAgainstContainers(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	kc, err := tckafka.Run(ctx, "confluentinc/confluent-local:7.5.0", tckafka.WithClusterID("kafkagate-test"))
	testcontainers.CleanupContainer(t, kc)
	if err != nil {
		t.Fatalf("kafka container: %v", err)
	}
	brokers, err := kc.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const rootToken = "kafkagate-test-root"
	vc, err := tcvault.Run(ctx, "hashicorp/vault:1.21.0", tcvault.WithToken(rootToken))
	testcontainers.CleanupContainer(t, vc)
	if err != nil {
		t.Fatalf("vault container: %v", err)
	}
	vaddr, err := vc.HttpHostAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load("kafkagate.ini")
	if err != nil {
		t.Fatal(err)
	}
	log := testkit.Quiet()
	vconf := vaultclient.Config{Addr: vaddr, Token: rootToken, Timeout: 10 * time.Second}
	admin, err := vaultclient.New(vconf)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	kcl := testkit.KafkaClient(t, testkit.KafkaSettings(t, brokers, "message.max.bytes", cfg.Get("default", "message.max.bytes", "")))
	rep, err := lifecycle.Provision(ctx, admin, lifecycle.ProvisionOptions{
		Policies: cfg.Policies, TransitMount: cfg.Get("kafkagate", "transit_mount", "transit"),
		FPE: core.KeyringOptions(cfg), Kafka: kcl, Partitions: 1,
	})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Logf("provisioned: %d created", rep.Count(lifecycle.StatusCreated))

	// The gateway as compose runs it, but on loopback without the access
	// file (the access job is the compose stack's).
	gw := testkit.Gateway(t, nil, server.Options{Config: withoutAccess(t), Vault: vconf, Logger: log, Brokers: brokers})
	base := testkit.Serve(t, gw)
	cid := testkit.ClusterID(t, gw)

	const topic = "purchases_encrypted"
	value := map[string]string{"Name": "Container Test", "Address": "7 Harbour Rd", "credit_card": "4539-1488-0343-6467"}
	body, _ := json.Marshal(map[string]any{"value": map[string]any{"type": "JSON", "data": value}})
	resp, b := testkit.Do(t, nil, http.MethodPost, fmt.Sprintf("%s/v3/clusters/%s/topics/%s/records", base, cid, topic), "", string(body))
	var produced struct {
		PartitionID int32 `json:"partition_id"`
		Offset      int64 `json:"offset"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &produced) != nil {
		t.Fatalf("produce: %d %s", resp.StatusCode, b)
	}
	recs, err := kcl.Read(ctx, topic, produced.PartitionID, produced.Offset, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read the stored record: %v (%d)", err, len(recs))
	}
	for _, s := range value {
		if bytes.Contains(recs[0].Value, []byte(s)) {
			t.Fatalf("Kafka stores plaintext %q: %s", s, recs[0].Value)
		}
	}
	resp, b = testkit.Do(t, nil, http.MethodGet, fmt.Sprintf("%s/v3/clusters/%s/topics/%s/records?partition=%d&offset=%d&max=1", base, cid, topic, produced.PartitionID, produced.Offset), "", "")
	for _, s := range value {
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(s)) {
			t.Fatalf("decrypting read: %d %s, want %q", resp.StatusCode, b, s)
		}
	}
}

// withoutAccess is deploy/kafkagate.ini without [kafkagate] access_file
// and listen.
func withoutAccess(t *testing.T) *config.File {
	t.Helper()
	raw, err := os.ReadFile("kafkagate.ini")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "access_file") || strings.HasPrefix(l, "listen") {
			continue
		}
		lines = append(lines, l)
	}
	f, err := config.Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
