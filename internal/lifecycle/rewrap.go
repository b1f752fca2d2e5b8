package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// RewrapOptions say what Rewrap copies where.
type RewrapOptions struct {
	From, To string
	// Target is To's policy (nil: none): its rewrapped_from must list From
	// for envelope records, and its index=hmac fields are re-indexed.
	Target *policy.Policy
	Batch  int // records per Vault round trip; default 500
	// Resume continues a run that was interrupted: the first source offset
	// per partition and the data keys already rewrapped (State of the last
	// Checkpoint).
	Resume *State
	// Checkpoint, when set, is called after each batch has been written
	// (acknowledged by the brokers) with the state to resume from.
	Checkpoint func(State) error
	// DLQ, when set, is the topic records that cannot be rewrapped are
	// written to, with kafkagate.dlq.code, .reason and .source headers (as
	// the bridge's dead letters): as they were in the source (they are
	// encrypted there) or, for records without kafkagate encryption,
	// sealed whole with the target policy's transit key. An unencrypted
	// record is never written in clear: without a target transit key it is
	// only reported.
	DLQ string
}

// State is where a rewrap run stands: saved by the CLI after each batch.
type State struct {
	From    string            `json:"from"`
	To      string            `json:"to"`
	Next    map[int32]int64   `json:"next"`           // first source offset not yet done, per partition
	DEKs    map[string]string `json:"deks,omitempty"` // wrapped DEK -> rewrapped (ciphertexts, not secrets)
	Read    int               `json:"read"`
	Written int               `json:"written"`
	Failed  int               `json:"failed"`
	// DeadLettered counts the failed records written to the DLQ topic.
	DeadLettered int `json:"dead_lettered"`
}

// Failure is a source record Rewrap did not copy.
type Failure struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Code      string `json:"code"`
	Error     string `json:"error"`
	// DeadLettered: the record was written to RewrapOptions.DLQ.
	DeadLettered bool `json:"dead_lettered"`
}

// RewrapReport is the outcome of Rewrap.
type RewrapReport struct {
	State
	Failures []Failure `json:"failures,omitempty"`
	// Versions counts the key versions the written records refer to.
	Versions map[string]int `json:"versions"`
	// TargetGrowth is how many records the target topic gained while Rewrap
	// wrote (sum over partitions of the high watermark increase).
	// CountsMatch says it equals the records written in this run and that
	// every record read was either written or reported as a failure;
	// Verified says the counts match and no record failed: every record
	// of the source is in the target, rewrapped.
	TargetGrowth int64 `json:"target_growth"`
	CountsMatch  bool  `json:"counts_match"`
	Verified     bool  `json:"verified"`
}

// ErrCountMismatch: the counts did not add up at the end of a rewrap (the
// target topic gained a different number of records than were written:
// another producer wrote to it at the same time, or records were lost).
var ErrCountMismatch = errors.New("rewrap: counts do not match")

// ErrNotRewrapped: the counts add up but some records could not be
// rewrapped (RewrapReport.Failures lists them); the run is not verified.
var ErrNotRewrapped = errors.New("rewrap: some records were not rewrapped")

// Rewrap copies o.From to o.To with every record moved to the latest key
// versions, keeping partition (when the target has it), key and
// timestamp. Records that cannot be rewrapped are reported, never written
// half-done (and written to o.DLQ when set). It returns ErrCountMismatch
// (with the report) when the verification at the end fails, and
// ErrNotRewrapped when some records failed. The target topic should not
// receive other writes during the run.
func Rewrap(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o RewrapOptions) (*RewrapReport, error) {
	if o.From == "" || o.To == "" || o.From == o.To {
		return nil, fmt.Errorf("rewrap: want distinct source and target topics (got %q -> %q)", o.From, o.To)
	}
	if o.DLQ != "" && (o.DLQ == o.From || o.DLQ == o.To) {
		return nil, fmt.Errorf("rewrap: the dead-letter topic %q must differ from the source and the target", o.DLQ)
	}
	rw, err := eng.NewRewrapper(protect.RewrapOptions{To: o.To, Target: o.Target})
	if err != nil {
		return nil, err
	}
	rep := &RewrapReport{State: State{From: o.From, To: o.To, Next: map[int32]int64{}}, Versions: map[string]int{}}
	if o.Resume != nil {
		if o.Resume.From != o.From || o.Resume.To != o.To {
			return nil, fmt.Errorf("rewrap: the saved state is for %s -> %s, not %s -> %s", o.Resume.From, o.Resume.To, o.From, o.To)
		}
		maps.Copy(rep.Next, o.Resume.Next)
		rw.Remember(o.Resume.DEKs)
		rep.Read, rep.Written, rep.Failed = o.Resume.Read, o.Resume.Written, o.Resume.Failed
	}
	// The target may not exist yet: ask as the producer does, which creates
	// it where the broker allows auto-creation (reads never create topics).
	targetParts, err := kc.PartitionsForProduce(o.To)
	if err != nil {
		return nil, fmt.Errorf("rewrap target: %w", err)
	}
	before, err := highWatermarks(kc, o.To, targetParts)
	if err != nil {
		return nil, err
	}
	readNow, writtenNow := 0, 0
	err = scan(ctx, kc, o.From, maps.Clone(rep.Next), o.Batch, func(part int32, recs []kafka.Record) error {
		out, err := rw.Rewrap(ctx, recs)
		if err != nil {
			return fmt.Errorf("rewrap %s/%d from %d: %w", o.From, part, recs[0].Offset, err)
		}
		var msgs []kafka.Message
		var failed []int
		for i, r := range recs {
			if out[i].Err != nil {
				code := "failed"
				var pe *protect.Error
				if errors.As(out[i].Err, &pe) {
					code = pe.Code
				}
				rep.Failures = append(rep.Failures, Failure{Partition: part, Offset: r.Offset, Code: code, Error: out[i].Err.Error()})
				failed = append(failed, i)
				continue
			}
			m := kafka.Message{Topic: o.To, Partition: -1, Key: r.Key, Value: out[i].Value, Timestamp: r.Timestamp}
			if slices.Contains(targetParts, part) {
				m.Partition = part
			}
			m.Headers = append(m.Headers, out[i].Headers...)
			msgs = append(msgs, m)
			seen := map[protect.KeyUse]bool{}
			for _, u := range out[i].Uses {
				if !seen[u] {
					seen[u] = true
					rep.Versions[fmt.Sprintf("%s %s v%d", u.Kind, u.Key, u.Version)]++
				}
			}
		}
		if err := produceAll(ctx, kc, o.To, msgs); err != nil {
			return err
		}
		if o.DLQ != "" && len(failed) > 0 {
			fs := rep.Failures[len(rep.Failures)-len(failed):]
			dead, err := deadLetters(ctx, eng, o, recs, failed, fs)
			if err != nil {
				return err
			}
			if err := produceAll(ctx, kc, o.DLQ, dead); err != nil {
				return err
			}
			rep.DeadLettered += len(dead)
		}
		readNow += len(recs)
		writtenNow += len(msgs)
		rep.Read += len(recs)
		rep.Written += len(msgs)
		rep.Failed += len(recs) - len(msgs)
		rep.Next[part] = recs[len(recs)-1].Offset + 1
		if o.Checkpoint != nil {
			st := rep.State
			st.Next = maps.Clone(rep.Next)
			st.DEKs = rw.RememberedDEKs()
			if err := o.Checkpoint(st); err != nil {
				return fmt.Errorf("rewrap: save state: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	after, err := highWatermarks(kc, o.To, targetParts)
	if err != nil {
		return rep, err
	}
	for p, hi := range after {
		rep.TargetGrowth += hi - before[p]
	}
	rep.CountsMatch = rep.TargetGrowth == int64(writtenNow) && rep.Read == rep.Written+rep.Failed
	rep.Verified = rep.CountsMatch && rep.Failed == 0
	if !rep.CountsMatch {
		return rep, fmt.Errorf("%w: read %d (this run %d), written %d (this run %d), failed %d, target grew by %d",
			ErrCountMismatch, rep.Read, readNow, rep.Written, writtenNow, rep.Failed, rep.TargetGrowth)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d (%d dead-lettered)", ErrNotRewrapped, rep.Failed, rep.Read, rep.DeadLettered)
	}
	return rep, nil
}

// produceAll writes msgs to topic and waits for every acknowledgement.
func produceAll(ctx context.Context, kc *kafka.Client, topic string, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ds, err := kc.Produce(ctx, msgs)
	if err != nil {
		return fmt.Errorf("rewrap: write to %s: %w", topic, err)
	}
	for _, d := range ds {
		if d.Err != nil {
			return fmt.Errorf("rewrap: write to %s: %w", topic, d.Err)
		}
	}
	return nil
}

// deadLetters builds the DLQ records of recs[failed] (fs are their
// failures, marked dead-lettered here): the source record as it was,
// unencrypted ones sealed with the target's transit key (or left out).
func deadLetters(ctx context.Context, eng *protect.Engine, o RewrapOptions, recs []kafka.Record, failed []int, fs []Failure) ([]kafka.Message, error) {
	sealKey := ""
	if o.Target != nil && o.Target.Mode == policy.Fields {
		sealKey = o.Target.TransitKey
	}
	var inClear []int // indexes into failed
	for j := range failed {
		if fs[j].Code == protect.CodeUnencrypted && sealKey != "" {
			inClear = append(inClear, j)
		}
	}
	sealed := map[int]protect.Sealed{}
	if len(inClear) > 0 {
		vals := make([][]byte, len(inClear))
		for n, j := range inClear {
			vals[n] = recs[failed[j]].Value
			if vals[n] == nil {
				vals[n] = []byte{}
			}
		}
		res, err := eng.SealValues(ctx, sealKey, o.DLQ, vals)
		if err != nil {
			return nil, fmt.Errorf("rewrap: seal dead letters with %q: %w", sealKey, err)
		}
		for n, j := range inClear {
			if res[n].Err == nil {
				sealed[j] = res[n]
			}
		}
	}
	var msgs []kafka.Message
	for j, i := range failed {
		r := recs[i]
		m := kafka.Message{Topic: o.DLQ, Partition: -1, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		if fs[j].Code == protect.CodeUnencrypted {
			s, ok := sealed[j]
			if !ok {
				continue // never in clear
			}
			m.Value = s.Value
			m.Headers = append(m.Headers, r.Headers...)
			m.Headers = append(m.Headers, s.Headers...)
		} else {
			m.Headers = append(m.Headers, r.Headers...)
		}
		m.Headers = append(m.Headers,
			kafka.Header{Key: kafka.HeaderDLQCode, Value: []byte(fs[j].Code)},
			kafka.Header{Key: kafka.HeaderDLQReason, Value: []byte(fs[j].Error)},
			kafka.Header{Key: kafka.HeaderDLQSource, Value: []byte(kafka.SourceRef(r))},
		)
		fs[j].DeadLettered = true
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func highWatermarks(kc *kafka.Client, topic string, parts []int32) (map[int32]int64, error) {
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		_, hi, err := kc.Watermarks(topic, p)
		if err != nil {
			return nil, fmt.Errorf("rewrap: watermarks of %s: %w", topic, err)
		}
		out[p] = hi
	}
	return out, nil
}
