package gateway

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/httpapi"
	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/protect"
)

// ConsumeOptions select what Consume reads.
type ConsumeOptions struct {
	Topic     string
	Partition int32 // -1: all partitions (stateless mode)
	Offset    int64 // sarama.OffsetOldest (-2) for the beginning (stateless mode)
	Max       int   // 0: everything up to the current end (stateless), or until ctx ends (group)
	Batch     int   // records decrypted per Vault round trip; default 500
	// Group, when set, consumes as this consumer group: the group's
	// members share the partitions, Consume follows new records until ctx
	// ends or Max records, and the offsets of emitted records are
	// committed. Partition and Offset are not used.
	Group string
	// FromBeginning makes a group without committed offsets start at the
	// oldest record; by default it starts at the newest, like
	// kafka-console-consumer.
	FromBeginning bool
	// SessionTimeout and HeartbeatInterval tune the group (0: sarama's).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
}

// ConsumedRecord is a decrypted record with its topic.
type ConsumedRecord struct {
	Topic string `json:"topic"`
	httpapi.ReadRecord
}

// Consume reads a topic's partitions up to their current end, decrypts the
// records in batches and hands each to emit in partition and offset order.
// It does not wait for new records. With o.Group it consumes as a consumer
// group instead, following new records (see ConsumeOptions.Group).
func (g *Gateway) Consume(ctx context.Context, o ConsumeOptions, emit func(ConsumedRecord) error) (int, error) {
	return Consume(ctx, g.Kafka, g.Engine, o, emit)
}

// Consume is Gateway.Consume for any Kafka client and engine.
func Consume(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o ConsumeOptions, emit func(ConsumedRecord) error) (int, error) {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Group != "" {
		return consumeGroup(ctx, kc, eng, o, emit)
	}
	parts, err := kc.Partitions(o.Topic)
	if err != nil {
		return 0, err
	}
	if o.Partition >= 0 {
		if !slices.Contains(parts, o.Partition) {
			return 0, fmt.Errorf("topic %q has no partition %d: %w", o.Topic, o.Partition, kafka.ErrUnknownTopic)
		}
		parts = []int32{o.Partition}
	}
	n := 0
	for _, p := range parts {
		off := o.Offset
		if off < 0 {
			off = sarama.OffsetOldest
		}
		for {
			want := o.Batch
			if o.Max > 0 {
				if n >= o.Max {
					return n, nil
				}
				want = min(want, o.Max-n)
			}
			recs, err := kc.Read(ctx, o.Topic, p, off, want)
			if err != nil {
				return n, err
			}
			if len(recs) == 0 {
				break
			}
			opened, err := eng.Decrypt(ctx, toProtect(recs))
			if err != nil {
				return n, err
			}
			for i, r := range recs {
				if err := emit(ConsumedRecord{Topic: r.Topic, ReadRecord: httpapi.ToReadRecord(r, opened[i])}); err != nil {
					return n, err
				}
				n++
			}
			off = recs[len(recs)-1].Offset + 1
		}
	}
	return n, nil
}

func toProtect(recs []kafka.Record) []protect.Record {
	in := make([]protect.Record, len(recs))
	for i, r := range recs {
		in[i] = protect.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: make([]protect.Header, len(r.Headers))}
		for j, h := range r.Headers {
			in[i].Headers[j] = protect.Header{Key: h.Key, Value: h.Value}
		}
	}
	return in
}

// consumeGroup is Consume with a consumer group. It returns nil when ctx
// ends (Ctrl-C) or after Max records; offsets of emitted records are
// committed on the way and when it returns.
func consumeGroup(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o ConsumeOptions, emit func(ConsumedRecord) error) (int, error) {
	st, err := kc.OpenStream(ctx, kafka.StreamOptions{Topic: o.Topic, Group: o.Group, FromBeginning: o.FromBeginning, MaxBatch: o.Batch,
		SessionTimeout: o.SessionTimeout, HeartbeatInterval: o.HeartbeatInterval})
	if err != nil {
		return 0, err
	}
	n := 0
	// Close commits the marked offsets; the errors sarama reports then
	// (a late rebalance, a commit after the group moved on) leave the
	// records to be delivered again, which at-least-once allows.
	defer st.Close()
	for o.Max == 0 || n < o.Max {
		recs, err := st.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
		if o.Max > 0 && len(recs) > o.Max-n {
			recs = recs[:o.Max-n]
		}
		opened, err := eng.Decrypt(ctx, toProtect(recs))
		if err != nil {
			if ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
		for i, r := range recs {
			if err := emit(ConsumedRecord{Topic: r.Topic, ReadRecord: httpapi.ToReadRecord(r, opened[i])}); err != nil {
				st.Done(recs[:i])
				return n, err
			}
			n++
		}
		st.Done(recs)
	}
	return n, nil
}
