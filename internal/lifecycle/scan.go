package lifecycle

import (
	"context"
	"fmt"
	"slices"

	"github.com/kafkagate/kafkagate/internal/kafka"
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
