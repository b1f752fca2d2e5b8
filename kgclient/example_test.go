package kgclient_test

import (
	"context"
	"fmt"
	"log"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
	"github.com/kafkagate/kafkagate/kgclient"
)

// ExampleProducer encrypts a record by its topic's policy and sends it. It
// needs a broker and Vault (VAULT_ADDR, VAULT_TOKEN), so it is compiled but
// not run; TestRoundTrip runs the same steps against real ones.
func ExampleProducer() {
	ctx := context.Background()
	cfg, err := config.Load("getting_started.ini") // [default] and [policy:<topic>] sections
	if err != nil {
		log.Fatal(err)
	}
	ks, err := kafka.Configure(cfg.Section("default"), nil) // idempotent, acks=all
	if err != nil {
		log.Fatal(err)
	}
	sp, err := sarama.NewSyncProducer(ks.Brokers, ks.Sarama)
	if err != nil {
		log.Fatal(err)
	}
	defer sp.Close()
	vc, err := vaultclient.New(vaultclient.FromEnv())
	if err != nil {
		log.Fatal(err)
	}
	engine := protect.New(transit.New(vc, transit.Options{}), protect.Options{Policies: cfg.Policies})
	defer engine.Close()

	p := kgclient.NewProducer(sp, engine, cfg.Policies)
	partition, offset, err := p.Send(ctx, "purchases", []byte("customer-42"),
		[]byte(`{"Name":"Ann","Address":"1 Main St","loyalty":"gold"}`), nil)
	if err != nil {
		log.Fatal(err) // kgclient.ErrNoPolicy, a *protect.Error, Vault or Kafka unavailable
	}
	fmt.Println("written encrypted to", partition, offset)
}

// ExampleDecoder decrypts what a sarama consumer fetched.
func ExampleDecoder() {
	ctx := context.Background()
	vc, err := vaultclient.New(vaultclient.FromEnv())
	if err != nil {
		log.Fatal(err)
	}
	engine := protect.New(transit.New(vc, transit.Options{}), protect.Options{})
	defer engine.Close()
	dec := kgclient.NewDecoder(engine)

	var fetched []*sarama.ConsumerMessage // from a PartitionConsumer or a ConsumerGroupClaim
	recs, err := dec.Decode(ctx, fetched)
	if err != nil {
		log.Fatal(err) // Vault unavailable: nothing decrypted
	}
	for _, r := range recs {
		if r.Status != protect.StatusDecrypted {
			continue // partial, failed or unencrypted: never treat as decrypted
		}
		fmt.Printf("%s/%d@%d %s\n", r.Topic, r.Partition, r.Offset, r.Value)
	}
}
