package testkit

import (
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// ReadAll reads every record of topic, from every partition, as a
// read_committed consumer sees it.
func ReadAll(t testing.TB, brokers []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	return ReadAllAs(t, brokers, topic, sarama.ReadCommitted)
}

// ReadAllAs is ReadAll at an isolation level: ReadUncommitted also returns
// the records of aborted transactions.
func ReadAllAs(t testing.TB, brokers []string, topic string, level sarama.IsolationLevel) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.IsolationLevel = level
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cons, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, err := cons.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		all []*sarama.ConsumerMessage
		wg  sync.WaitGroup
	)
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			// The partition is not empty: the first fetch may be slow on a
			// loaded machine, so wait longer for it than between records.
			idle := time.NewTimer(15 * time.Second)
			defer idle.Stop()
			for {
				select {
				case m := <-pc.Messages():
					mu.Lock()
					all = append(all, m)
					mu.Unlock()
					if m.Offset >= pc.HighWaterMarkOffset()-1 {
						// the end, unless control records follow: wait briefly
						idle.Reset(300 * time.Millisecond)
					} else {
						idle.Reset(time.Second)
					}
				case <-pc.Errors():
				case <-idle.C:
					return
				}
			}
		}()
	}
	wg.Wait()
	return all
}

// SyncProducer is a sarama producer with ks's settings, closed when t
// ends.
func SyncProducer(t testing.TB, ks *kafka.Settings) sarama.SyncProducer {
	t.Helper()
	sp, err := sarama.NewSyncProducer(ks.Brokers, ks.Sarama)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	return sp
}

// Admin is a sarama cluster admin for brokers, closed when t ends.
func Admin(t testing.TB, brokers []string) sarama.ClusterAdmin {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	return admin
}

// SaramaConfig is a sarama client configuration for tests: Kafka 2.8, a
// producer that returns successes, waits for all replicas and is told the
// partition (manual partitioner), and consumers that start at the oldest
// offset.
func SaramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}
