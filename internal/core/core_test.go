package core_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

const policies = `
[policy:orders]
mode = fields
fields = customer transit
transit_key = kafka-orders
`

// TestOpenRoundTrip opens a Core on a real Vault and broker (no HTTP) and
// sends a record through its engine both ways; [kafkagate] max_json_depth
// reaches the engine.
func TestOpenRoundTrip(t *testing.T) {
	env := testkit.Start(t)
	cfg := testkit.Config(t, "[kafkagate]\nmax_json_depth = 3\n"+policies)
	c, err := core.Open(core.Options{Config: cfg, Vault: testkit.RootVault(env, 30*time.Second), Logger: testkit.Quiet(), Brokers: env.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Transit.EnsureKey(context.Background(), "kafka-orders", transit.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	pol, ok := cfg.Policies.For("orders")
	if !ok {
		t.Fatal("no policy for orders")
	}
	plain := []byte(`{"customer":"Ann","total":3}`)
	deep := []byte(`{"customer":"Ann","x":{"y":{"z":{}}}}`)
	sealed, err := c.Engine.EncryptRecords(context.Background(), pol, []protect.Record{{Topic: "orders", Value: plain}, {Topic: "orders", Value: deep}})
	if err != nil {
		t.Fatal(err)
	}
	var pe *protect.Error
	if !errors.As(sealed[1].Err, &pe) || pe.Code != protect.CodeTooDeep {
		t.Fatalf("a record deeper than max_json_depth = 3: %v, want %s", sealed[1].Err, protect.CodeTooDeep)
	}
	if sealed[0].Err != nil || bytes.Contains(sealed[0].Value, []byte("Ann")) {
		t.Fatalf("sealed: %v %s", sealed[0].Err, sealed[0].Value)
	}
	opened, err := c.Engine.Decrypt(context.Background(), []protect.Record{{Topic: "orders", Value: sealed[0].Value, Headers: sealed[0].Headers}})
	if err != nil {
		t.Fatal(err)
	}
	if opened[0].Status != protect.StatusDecrypted || !bytes.Equal(opened[0].Value, plain) {
		t.Fatalf("opened: %s %s, want %s", opened[0].Status, opened[0].Value, plain)
	}
}

// TestOpenRefusesBadDepth: a max_json_depth out of range is a
// configuration error before anything is dialled.
func TestOpenRefusesBadDepth(t *testing.T) {
	for _, v := range []string{"0", "10001", "deep"} {
		cfg := testkit.Config(t, "[kafkagate]\nmax_json_depth = "+v+"\n"+policies)
		_, err := core.Open(core.Options{Config: cfg, Logger: testkit.Quiet(), Brokers: []string{"127.0.0.1:1"}})
		if !errors.Is(err, config.ErrConfig) {
			t.Fatalf("max_json_depth = %s: %v, want config.ErrConfig", v, err)
		}
	}
}
