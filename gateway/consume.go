package gateway

import (
	"context"
	"fmt"
	"slices"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/httpapi"
	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/protect"
)

// ConsumeOptions select what Consume reads.
type ConsumeOptions struct {
	Topic     string
	Partition int32 // -1: all partitions
	Offset    int64 // sarama.OffsetOldest (-2) for the beginning
	Max       int   // 0: everything up to the current end
	Batch     int   // records decrypted per Vault round trip; default 500
}

// ConsumedRecord is a decrypted record with its topic.
type ConsumedRecord struct {
	Topic string `json:"topic"`
	httpapi.ReadRecord
}

// Consume reads a topic's partitions up to their current end, decrypts the
// records in batches and hands each to emit in partition and offset order.
// It does not wait for new records.
func (g *Gateway) Consume(ctx context.Context, o ConsumeOptions, emit func(ConsumedRecord) error) (int, error) {
	return Consume(ctx, g.Kafka, g.Engine, o, emit)
}

// Consume is Gateway.Consume for any Kafka client and engine.
func Consume(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o ConsumeOptions, emit func(ConsumedRecord) error) (int, error) {
	if o.Batch <= 0 {
		o.Batch = 500
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
			in := make([]protect.Record, len(recs))
			for i, r := range recs {
				in[i] = protect.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: make([]protect.Header, len(r.Headers))}
				for j, h := range r.Headers {
					in[i].Headers[j] = protect.Header{Key: h.Key, Value: h.Value}
				}
			}
			opened, err := eng.Decrypt(ctx, in)
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
