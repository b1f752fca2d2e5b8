package kgclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/config"
	"github.com/kafkagate/kafkagate/devenv"
	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/kgclient"
	"github.com/kafkagate/kafkagate/protect"
	"github.com/kafkagate/kafkagate/testkit"
	"github.com/kafkagate/kafkagate/transit"
	"github.com/kafkagate/kafkagate/vaultclient"
)

const testConfig = `
[policy:purchases]
fields = Name transit, Address transit
`

// consumeAll reads every record of one-partition topic.
func consumeAll(t *testing.T, brokers []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cons, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	hw := pc.HighWaterMarkOffset()
	var out []*sarama.ConsumerMessage
	for int64(len(out)) < hw {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d of %d records", len(out), hw)
		}
	}
	return out
}

// TestRoundTrip encrypts with Producer against a real Vault and kfake,
// checks the stored bytes, and decrypts with Decoder.
func TestRoundTrip(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	ctx := context.Background()
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := kafka.Configure(map[string]string{"bootstrap.servers": env.Brokers[0]}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sarama.NewSyncProducer(ks.Brokers, ks.Sarama)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	vc, err := vaultclient.New(vaultclient.Config{Addr: env.Vault.Addr, Token: env.Vault.Token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	engine := protect.New(transit.New(vc, transit.Options{}), protect.Options{Policies: cfg.Policies})
	defer engine.Close()
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

	msgs := consumeAll(t, env.Brokers, "purchases")
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
	if n := len(consumeAll(t, env.Brokers, "purchases")); n != 4 {
		t.Fatalf("%d records after the refused send", n)
	}
}
