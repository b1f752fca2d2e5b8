// Package consume reads a topic for the CLI's `gateway consume`: a
// partition range up to its current end or a consumer group that follows
// new records, decrypting each batch through the protect engine and
// handing every record, with its per-record status, to the caller.
package consume

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Options select what Run reads.
type Options struct {
	Topic     string
	Partition int32 // -1: all partitions (stateless mode)
	Offset    int64 // kafka.OffsetOldest (-2) for the beginning (stateless mode)
	Max       int   // 0: everything up to the current end (stateless), or until ctx ends (group)
	Batch     int   // records decrypted per Vault round trip; default 500
	// Group, when set, consumes as this consumer group: the group's
	// members share the partitions, Run follows new records until ctx
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
	// TreatUndecryptableAsPlaintext reports a record that cannot be
	// decrypted (status failed) with status StatusRaw and its stored bytes
	// verbatim (BINARY), instead of status failed (OpenMSIStream's
	// treat_undecryptable_as_plaintext). The bytes are what Kafka holds:
	// ciphertext or foreign data, never decrypted plaintext.
	TreatUndecryptableAsPlaintext bool
	// MaxWaitPerDecrypt bounds the wait for one record's decryption (0:
	// none). A batch that overruns it is decrypted again record by record,
	// each within MaxWaitPerDecrypt; a record that overruns it is reported
	// with status StatusTimeout and its stored value, never dropped.
	MaxWaitPerDecrypt time.Duration
}

// Consumer record statuses besides protect's (decrypted, partial, failed,
// unencrypted, file_chunk).
const (
	// StatusRaw: undecryptable, returned as its stored bytes because of
	// TreatUndecryptableAsPlaintext.
	StatusRaw = "raw"
	// StatusTimeout: decryption did not finish within MaxWaitPerDecrypt;
	// the value is as stored.
	StatusTimeout = "timeout"
)

// Line is one record as `gateway consume` prints it: the decrypting
// read's JSON form with the topic.
type Line struct {
	Topic string `json:"topic"`
	httpapi.ReadRecord
}

// Run reads a topic's partitions up to their current end, decrypts the
// records in batches and hands each to emit in partition and offset order.
// It does not wait for new records. With o.Group it consumes as a consumer
// group instead, following new records (see Options.Group).
func Run(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o Options, emit func(Line) error) (int, error) {
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
			off = kafka.OffsetOldest
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
			out, err := decrypt(ctx, eng, recs, o)
			if err != nil {
				return n, err
			}
			for _, r := range out {
				if err := emit(r); err != nil {
					return n, err
				}
				n++
			}
			off = recs[len(recs)-1].Offset + 1
		}
	}
	return n, nil
}

// consumeGroup is Consume with a consumer group. It returns nil when ctx
// ends (Ctrl-C) or after Max records; offsets of emitted records are
// committed on the way and when it returns.
func consumeGroup(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o Options, emit func(Line) error) (int, error) {
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
		out, err := decrypt(ctx, eng, recs, o)
		if err != nil {
			if ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
		for i, r := range out {
			if err := emit(r); err != nil {
				st.Done(recs[:i])
				return n, err
			}
			n++
		}
		st.Done(recs)
	}
	return n, nil
}

// decrypt opens a batch with the options' deadline and undecryptable
// handling. Vault or Kafka being unavailable is an error (fail closed);
// only a record's own deadline turns into a status.
func decrypt(ctx context.Context, eng *protect.Engine, recs []kafka.Record, o Options) ([]Line, error) {
	opened, err := decryptWithin(ctx, eng, recs, o.MaxWaitPerDecrypt*time.Duration(len(recs)))
	timedOut := make([]bool, len(recs))
	if err != nil {
		if !expired(ctx, err, o.MaxWaitPerDecrypt) {
			return nil, err
		}
		// The batch overran: each record gets its own deadline.
		opened = make([]protect.Opened, len(recs))
		for i := range recs {
			one, err := decryptWithin(ctx, eng, recs[i:i+1], o.MaxWaitPerDecrypt)
			switch {
			case err == nil:
				opened[i] = one[0]
			case expired(ctx, err, o.MaxWaitPerDecrypt):
				timedOut[i] = true
				opened[i] = protect.Opened{Value: recs[i].Value, Status: protect.StatusFailed,
					Err: fmt.Errorf("decryption did not finish within %v (max wait per decrypt)", o.MaxWaitPerDecrypt)}
			default:
				return nil, err
			}
		}
	}
	out := make([]Line, len(recs))
	for i, r := range recs {
		rr := httpapi.ToReadRecord(r, opened[i])
		switch {
		case timedOut[i]:
			rr.Decryption.Status = StatusTimeout
		case o.TreatUndecryptableAsPlaintext && opened[i].Status == protect.StatusFailed:
			rr.Decryption.Status = StatusRaw
			if r.Value != nil { // verbatim: never reinterpreted as JSON or text
				b, _ := json.Marshal(base64.StdEncoding.EncodeToString(r.Value))
				rr.Value = &httpapi.Data{Type: "BINARY", Data: b}
			}
		}
		out[i] = Line{Topic: r.Topic, ReadRecord: rr}
	}
	return out, nil
}

// decryptWithin is eng.Decrypt bounded by d (0: unbounded).
func decryptWithin(ctx context.Context, eng *protect.Engine, recs []protect.Record, d time.Duration) ([]protect.Opened, error) {
	if d <= 0 {
		return eng.Decrypt(ctx, recs)
	}
	dctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return eng.Decrypt(dctx, recs)
}

// expired reports whether err is the per-decrypt deadline (and not the
// caller's own context ending).
func expired(ctx context.Context, err error, d time.Duration) bool {
	return d > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)
}

// RequireEncryptedRefuses reports whether consume --require-encrypted
// refuses r: a record not written by kafkagate (unencrypted), one holding a
// policy field in clear (not_encrypted), or one outside its topic's policy
// (not_allowed). Records that failed to decrypt are still ciphertext and
// pass, with their status.
func RequireEncryptedRefuses(r Line) bool {
	d := r.Decryption
	if d.Status == string(protect.StatusUnencrypted) || d.Code == protect.CodeNotAllowed {
		return true
	}
	for _, f := range d.Fields {
		if f.Status == protect.CodeNotEncrypted {
			return true
		}
	}
	return false
}
