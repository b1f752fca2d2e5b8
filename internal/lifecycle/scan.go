package lifecycle

import (
	"context"
	"fmt"
	"slices"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// defaultBatch is the number of records read (and sent to Vault) at once.
const defaultBatch = 500

// scan reads every partition of topic from start (per partition; absent:
// the oldest offset) up to the high watermark as it is when the partition
// is reached, handing fn one batch at a time.
func scan(ctx context.Context, kc *kafka.Client, topic string, start map[int32]int64, batch int, fn func(part int32, recs []kafka.Record) error) error {
	if batch <= 0 {
		batch = defaultBatch
	}
	parts, err := kc.Partitions(topic)
	if err != nil {
		return fmt.Errorf("scan %s: %w", topic, err)
	}
	slices.Sort(parts)
	for _, p := range parts {
		off, ok := start[p]
		if !ok {
			off = kafka.OffsetOldest
		}
		for {
			recs, err := kc.Read(ctx, topic, p, off, batch)
			if err != nil {
				return fmt.Errorf("scan %s/%d at %d: %w", topic, p, off, err)
			}
			if len(recs) == 0 {
				break
			}
			if err := fn(p, recs); err != nil {
				return err
			}
			off = recs[len(recs)-1].Offset + 1
		}
	}
	return nil
}

// toProtect converts Kafka records for the engine.
func toProtect(recs []kafka.Record) []protect.Record {
	out := make([]protect.Record, len(recs))
	for i, r := range recs {
		out[i] = protect.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: make([]protect.Header, len(r.Headers))}
		for j, h := range r.Headers {
			out[i].Headers[j] = protect.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}
