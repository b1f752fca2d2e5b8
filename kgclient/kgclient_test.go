package kgclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
	"github.com/kafkagate/kafkagate/kgclient"
)

const testConfig = `
[policy:purchases]
fields = Name transit, Address transit
`

// TestRoundTrip encrypts with Producer against a real Vault and kfake,
// checks the stored bytes, and decrypts with Decoder.
func TestRoundTrip(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	ctx := context.Background()
	cfg := testkit.Config(t, testConfig)
	sp := testkit.SyncProducer(t, testkit.KafkaSettings(t, env.Brokers))
	engine, _ := testkit.Engine(t, env, cfg.Policies, 2*time.Second)
	p := kgclient.NewProducer(sp, engine, cfg.Policies)

	secrets := []string{"Ann Example", "1 Main St"}
	value := []byte(`{"Name":"Ann Example","Address":"1 Main St","loyalty":"gold"}`)
	for i := 0; i < 3; i++ {
		if _, off, err := p.Send(ctx, "purchases", fmt.Appendf(nil, "k%d", i), value, []sarama.RecordHeader{{Key: []byte("trace"), Value: []byte("abc")}}); err != nil || off != int64(i) {
			t.Fatalf("send %d: offset %d, %v", i, off, err)
		}
	}
	if _, _, err := p.Send(ctx, "unprotected", nil, value, nil); !errors.Is(err, kgclient.ErrNoPolicy) {
		t.Fatalf("no policy: %v", err)
	}
	if _, _, err := p.Send(ctx, "purchases", nil, value, []sarama.RecordHeader{{Key: []byte("kafkagate.fields"), Value: []byte("{}")}}); !errors.Is(err, kgclient.ErrReservedHeader) {
		t.Fatalf("reserved header: %v", err)
	}
	var pe *protect.Error
	if _, _, err := p.Send(ctx, "purchases", nil, []byte(`{"Name":7}`), nil); !errors.As(err, &pe) || pe.Code != protect.CodeFieldType || pe.Field != "Name" {
		t.Fatalf("bad value: %v", err)
	}
	// A record not written by kafkagate, for the decoder.
	if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "purchases", Value: sarama.StringEncoder(`{"Name":"raw"}`)}); err != nil {
		t.Fatal(err)
	}

	msgs := testkit.ReadAll(t, env.Brokers, "purchases")
	if len(msgs) != 4 {
		t.Fatalf("%d records stored, want 4 (refused sends must write nothing)", len(msgs))
	}
	for _, m := range msgs[:3] {
		for _, s := range secrets {
			if bytes.Contains(m.Value, []byte(s)) {
				t.Fatalf("plaintext %q stored", s)
			}
		}
	}
	recs, err := kgclient.NewDecoder(engine).Decode(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs[:3] {
		if r.Status != protect.StatusDecrypted || !bytes.Equal(r.Value, value) || string(r.Key) != fmt.Sprintf("k%d", i) || len(r.Fields) != 2 {
			t.Fatalf("record %d: %s %s", i, r.Status, r.Value)
		}
	}
	if recs[3].Status != protect.StatusUnencrypted || string(recs[3].Value) != `{"Name":"raw"}` {
		t.Fatalf("raw record: %s", recs[3].Status)
	}

	// Vault stopped: Send refuses and writes nothing; Decode refuses.
	if err := env.Vault.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Send(ctx, "purchases", nil, value, nil); !errors.Is(err, vaultclient.ErrUnavailable) {
		t.Fatalf("vault down: %v", err)
	}
	if _, err := kgclient.NewDecoder(engine).Decode(ctx, msgs); !errors.Is(err, vaultclient.ErrUnavailable) {
		t.Fatalf("decode with vault down: %v", err)
	}
	if n := len(testkit.ReadAll(t, env.Brokers, "purchases")); n != 4 {
		t.Fatalf("%d records after the refused send", n)
	}
}

// TestOpenFromConfigFile builds the keys from a configuration file and the
// VAULT_* environment, as a program outside this module does, and round
// trips a record through kfake and real Vault.
func TestOpenFromConfigFile(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	ctx := context.Background()
	path := testkit.WriteFile(t, t.TempDir(), "kafkagate.ini", "[default]\nbootstrap.servers = "+env.Brokers[0]+"\n"+testConfig)
	t.Setenv("VAULT_ADDR", env.Vault.Addr)
	t.Setenv("VAULT_TOKEN", env.Vault.Token)
	keys, err := kgclient.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	sp := testkit.SyncProducer(t, testkit.KafkaSettings(t, env.Brokers))
	value := []byte(`{"Name":"Ann Example","Address":"1 Main St"}`)
	if _, _, err := keys.Producer(sp).Send(ctx, "purchases", nil, value, nil); err != nil {
		t.Fatal(err)
	}
	msgs := testkit.ReadAll(t, env.Brokers, "purchases")
	if len(msgs) != 1 || bytes.Contains(msgs[0].Value, []byte("Ann Example")) {
		t.Fatalf("stored: %d records, %s", len(msgs), msgs[0].Value)
	}
	recs, err := keys.Decoder().Decode(ctx, msgs)
	if err != nil || recs[0].Status != protect.StatusDecrypted || !bytes.Equal(recs[0].Value, value) {
		t.Fatalf("decode: %v %+v", err, recs)
	}
	if _, err := kgclient.Open(path+".missing", nil); err == nil {
		t.Fatal("a missing configuration file opened")
	}
}
