// Package follow reads a topic for the demo consumers: as a consumer group
// (starting at the oldest record when the group has no offsets, as
// auto.offset.reset=earliest did in the original), or with --reset from
// the beginning of every partition once, at start, without a group. It
// follows new records until its context ends or a number of records has
// been handled.
package follow

import (
	"context"
	"errors"
	"fmt"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// Options select what Run reads.
type Options struct {
	Topic string
	// Group is the consumer group; ignored with Reset.
	Group string
	// Reset reads every partition from its oldest record, without a
	// group, so nothing is committed. (The original reset the group's
	// offsets on every rebalance; this happens once.)
	Reset bool
	// Max stops Run after this many records; 0 follows until ctx ends.
	Max int
}

// Run streams o.Topic and calls handle with each batch of records, in
// partition order within a batch. Records are marked processed once handle
// returns nil. Run returns nil when ctx ends or Max records were handled.
func Run(ctx context.Context, s *kafka.Settings, o Options, handle func(context.Context, []kafka.Record) error) (int, error) {
	so := kafka.StreamOptions{Topic: o.Topic, Group: o.Group, FromBeginning: true, Partition: -1, Offset: kafka.OffsetOldest}
	if o.Reset || o.Group == "" {
		so.Group = ""
	}
	st, err := kafka.OpenStream(ctx, s, so)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("read %s: %w", o.Topic, err)
	}
	defer st.Close()
	n := 0
	for o.Max <= 0 || n < o.Max {
		recs, err := st.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrStreamClosed) {
				return n, nil
			}
			return n, fmt.Errorf("read %s: %w", o.Topic, err)
		}
		if o.Max > 0 && len(recs) > o.Max-n {
			recs = recs[:o.Max-n]
		}
		if err := handle(ctx, recs); err != nil {
			return n, err
		}
		st.Done(recs)
		n += len(recs)
	}
	return n, nil
}

// ResetGroup deletes a consumer group and so its committed offsets: its
// next member starts from the oldest record. A group that does not exist
// is fine; a group with running members cannot be deleted.
func ResetGroup(ctx context.Context, s *kafka.Settings, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	admin, err := kafka.NewAdmin(s, "")
	if err != nil {
		return fmt.Errorf("reset group %s: %w", group, err)
	}
	defer admin.Close()
	if err := admin.DeleteGroup(group); err != nil {
		return fmt.Errorf("reset group %s (is a member still running?): %w", group, err)
	}
	return nil
}
