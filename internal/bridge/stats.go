package bridge

import (
	"log/slog"
	"sync/atomic"
)

// Stats counts what a bridge did since it was built. Every field is safe
// for concurrent use.
type Stats struct {
	// Consumed: source records taken into a batch (a record fetched again
	// after a retry or a restart counts again).
	Consumed atomic.Int64
	// Produced: encrypted (or passthrough) records acknowledged by the
	// target topic; in exactly-once mode, committed.
	Produced atomic.Int64
	// DeadLettered: records acknowledged by the dead-letter topic.
	DeadLettered atomic.Int64
	// Retries: waits after Vault or Kafka failed (each backoff counts once).
	Retries atomic.Int64
	// DuplicatesSuspected: records processed again that a previous owner
	// of their partition may already have written to the target (it
	// stopped after sending them and before committing). An upper bound
	// on the duplicates at-least-once delivery caused; 0 in exactly-once
	// mode, where such writes were aborted.
	DuplicatesSuspected atomic.Int64
	// Batches: batches written (one Vault call and one produce each).
	Batches atomic.Int64
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Consumed, Produced, DeadLettered, Retries, DuplicatesSuspected, Batches int64
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Consumed:            s.Consumed.Load(),
		Produced:            s.Produced.Load(),
		DeadLettered:        s.DeadLettered.Load(),
		Retries:             s.Retries.Load(),
		DuplicatesSuspected: s.DuplicatesSuspected.Load(),
		Batches:             s.Batches.Load(),
	}
}

// LogAttrs renders the snapshot for slog.
func (s Snapshot) LogAttrs() []any {
	return []any{
		slog.Int64("consumed", s.Consumed),
		slog.Int64("produced", s.Produced),
		slog.Int64("dead_lettered", s.DeadLettered),
		slog.Int64("retries", s.Retries),
		slog.Int64("duplicates_suspected", s.DuplicatesSuspected),
		slog.Int64("batches", s.Batches),
	}
}
