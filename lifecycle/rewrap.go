package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/policy"
	"github.com/kafkagate/kafkagate/protect"
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
}

// Failure is a source record Rewrap did not copy.
type Failure struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Code      string `json:"code"`
	Error     string `json:"error"`
}

// RewrapReport is the outcome of Rewrap.
type RewrapReport struct {
	State
	Failures []Failure `json:"failures,omitempty"`
	// Versions counts the key versions the written records refer to.
	Versions map[string]int `json:"versions"`
	// TargetGrowth is how many records the target topic gained while Rewrap
	// wrote (sum over partitions of the high watermark increase); Verified
	// says it equals the records written in this run and that every record
	// read was either written or reported as a failure.
	TargetGrowth int64 `json:"target_growth"`
	Verified     bool  `json:"verified"`
}

// ErrCountMismatch: the counts did not add up at the end of a rewrap (the
// target topic gained a different number of records than were written:
// another producer wrote to it at the same time, or records were lost).
var ErrCountMismatch = errors.New("rewrap: counts do not match")

// Rewrap copies o.From to o.To with every record moved to the latest key
// versions, keeping partition (when the target has it), key and
// timestamp. Records that cannot be rewrapped are reported, never written
// half-done. It returns ErrCountMismatch (with the report) when the
// verification at the end fails. The target topic should not receive
// other writes during the run.
func Rewrap(ctx context.Context, kc *kafka.Client, eng *protect.Engine, o RewrapOptions) (*RewrapReport, error) {
	if o.From == "" || o.To == "" || o.From == o.To {
		return nil, fmt.Errorf("rewrap: want distinct source and target topics (got %q -> %q)", o.From, o.To)
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
	targetParts, err := kc.Partitions(o.To)
	if err != nil {
		return nil, fmt.Errorf("rewrap target: %w", err)
	}
	before, err := highWatermarks(kc, o.To, targetParts)
	if err != nil {
		return nil, err
	}
	readNow, writtenNow := 0, 0
	err = scan(ctx, kc, o.From, maps.Clone(rep.Next), o.Batch, func(part int32, recs []kafka.Record) error {
		out, err := rw.Rewrap(ctx, toProtect(recs))
		if err != nil {
			return fmt.Errorf("rewrap %s/%d from %d: %w", o.From, part, recs[0].Offset, err)
		}
		var msgs []kafka.Message
		for i, r := range recs {
			if out[i].Err != nil {
				code := "failed"
				var pe *protect.Error
				if errors.As(out[i].Err, &pe) {
					code = pe.Code
				}
				rep.Failures = append(rep.Failures, Failure{Partition: part, Offset: r.Offset, Code: code, Error: out[i].Err.Error()})
				continue
			}
			m := kafka.Message{Topic: o.To, Partition: -1, Key: r.Key, Value: out[i].Value, Timestamp: r.Timestamp}
			if slices.Contains(targetParts, part) {
				m.Partition = part
			}
			for _, h := range out[i].Headers {
				m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
			}
			msgs = append(msgs, m)
			seen := map[protect.KeyUse]bool{}
			for _, u := range out[i].Uses {
				if !seen[u] {
					seen[u] = true
					rep.Versions[fmt.Sprintf("%s %s v%d", u.Kind, u.Key, u.Version)]++
				}
			}
		}
		if len(msgs) > 0 {
			ds, err := kc.Produce(ctx, msgs)
			if err != nil {
				return fmt.Errorf("rewrap: write to %s: %w", o.To, err)
			}
			for _, d := range ds {
				if d.Err != nil {
					return fmt.Errorf("rewrap: write to %s: %w", o.To, d.Err)
				}
			}
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
	rep.Verified = rep.TargetGrowth == int64(writtenNow) && rep.Read == rep.Written+rep.Failed
	if !rep.Verified {
		return rep, fmt.Errorf("%w: read %d (this run %d), written %d (this run %d), failed %d, target grew by %d",
			ErrCountMismatch, rep.Read, readNow, rep.Written, writtenNow, rep.Failed, rep.TargetGrowth)
	}
	return rep, nil
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
