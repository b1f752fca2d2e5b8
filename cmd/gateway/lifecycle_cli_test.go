package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const lifecycleCLIConfig = `
[policy:orders]
fields = Name transit

[policy:orders_v2]
transit_key = kafka-orders
fields = Name transit
`

// TestLifecycleCLI drives provision, keys rotate/inventory/config/list,
// rewrap and consume as an operator would.
func TestLifecycleCLI(t *testing.T) {
	env := testkit.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kafkagate.ini")
	if err := os.WriteFile(cfgPath, []byte(lifecycleCLIConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.UseVault(t, env)
	ctx := context.Background()
	brokers := strings.Join(env.Brokers, ",")
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, &out, append([]string{"--config", cfgPath, "--brokers", brokers, "--log-level", "error"}, args...)...)
		return out.String(), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("gateway %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	creds := filepath.Join(dir, "creds")
	plan := mustCLI("provision", "--dry-run", "--credentials-dir", creds)
	if !strings.Contains(plan, "0 created, 24 would be created, 1 unchanged") {
		t.Fatalf("dry run:\n%s", plan)
	}
	mustCLI("provision", "--credentials-dir", creds)
	again := mustCLI("provision", "--credentials-dir", creds, "--fail-on-drift")
	if !strings.Contains(again, "0 created, 0 would be created, 25 unchanged, 0 drifted") {
		t.Fatalf("second provision:\n%s", again)
	}

	gw := testkit.Gateway(t, env, server.Options{Config: testkit.Config(t, lifecycleCLIConfig), Vault: testkit.RootVault(env, 0)})
	produce := func(from, n int) {
		t.Helper()
		var vals [][]byte
		for i := from; i < from+n; i++ {
			vals = append(vals, []byte(fmt.Sprintf(`{"Name":"customer-%d"}`, i)))
		}
		testkit.Produce(t, gw.Kafka, testkit.Seal(t, gw, "orders", vals...)...)
	}
	produce(0, 4)
	if out := mustCLI("keys", "rotate", "--topic", "orders"); !strings.Contains(out, "rotated transit kafka-orders: latest version is now 2") {
		t.Fatalf("rotate: %s", out)
	}
	produce(4, 3)

	inventory := func(topic string) lifecycle.Inventory {
		t.Helper()
		var inv lifecycle.Inventory
		if err := json.Unmarshal([]byte(mustCLI("keys", "inventory", "--topic", topic, "--json")), &inv); err != nil {
			t.Fatal(err)
		}
		return inv
	}
	inv := inventory("orders")
	if fmt.Sprint(inv.Versions(protect.UseTransit, "kafka-orders")) != "[1 2]" || inv.Uses[0].Records != 4 || inv.Uses[1].Records != 3 {
		t.Fatalf("inventory of orders: %+v", inv)
	}
	t.Logf("inventory orders: v1 %d records (offsets %d..%d), v2 %d records (offsets %d..%d)", inv.Uses[0].Records, inv.Uses[0].Partitions[0].OldestOffset, inv.Uses[0].Partitions[0].NewestOffset,
		inv.Uses[1].Records, inv.Uses[1].Partitions[0].OldestOffset, inv.Uses[1].Partitions[0].NewestOffset)

	state := filepath.Join(dir, "rewrap.state")
	out := mustCLI("rewrap", "--topic", "orders", "--to", "orders_v2", "--state", state, "--batch", "3")
	if !strings.Contains(out, "read 7, written 7, failed 0; target grew by 7; verified true") {
		t.Fatalf("rewrap: %s", out)
	}
	// Resumed with the saved state there is nothing left to copy.
	out = mustCLI("rewrap", "--topic", "orders", "--to", "orders_v2", "--state", state)
	if !strings.Contains(out, "read 7, written 7, failed 0; target grew by 0; verified true") {
		t.Fatalf("resumed rewrap: %s", out)
	}
	inv2 := inventory("orders_v2")
	if fmt.Sprint(inv2.Versions(protect.UseTransit, "kafka-orders")) != "[2]" || inv2.Records != 7 {
		t.Fatalf("inventory of orders_v2: %+v", inv2)
	}

	var ks lifecycle.KeyStatus
	if err := json.Unmarshal([]byte(mustCLI("keys", "config", "kafka-orders", "--min-decryption-version", "2", "--auto-rotate-period", "24h")), &ks); err != nil {
		t.Fatal(err)
	}
	if ks.MinDecryptionVersion != 2 || ks.LatestVersion != 2 || ks.AutoRotatePeriod != "24h0m0s" {
		t.Fatalf("keys config: %+v", ks)
	}
	var list []lifecycle.KeyStatus
	if err := json.Unmarshal([]byte(mustCLI("keys", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "kafka-orders" || fmt.Sprint(list[0].Topics) != "[orders orders_v2]" || list[0].MinDecryptionVersion != 2 {
		t.Fatalf("keys list: %+v", list)
	}
	if _, err := cli("keys", "config", "kafka-orders", "--auto-rotate-period", "5m"); err == nil {
		t.Fatal("keys config accepted an auto_rotate_period under 1h")
	}

	v2 := mustCLI("consume", "--topic", "orders_v2", "--format", "raw")
	v1 := mustCLI("consume", "--topic", "orders", "--format", "raw")
	if strings.Count(v2, `"status":"decrypted"`) != 7 || strings.Count(v1, `"status":"decrypted"`) != 3 || strings.Count(v1, `"status":"failed"`) != 4 {
		t.Fatalf("after retiring v1:\norders_v2:\n%s\norders:\n%s", v2, v1)
	}
}
