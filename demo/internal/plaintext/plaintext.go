// Package plaintext is demo 1 of the original: a producer that writes fake
// purchases to a topic in plaintext, as an application does without
// kafkagate (the "before" picture), and a consumer that prints them.
//
// Unlike the original producer it needs no terminal, gives every record a
// key (a customer id, never personal data), waits for each record's
// acknowledgement and reports failures instead of dropping them.
package plaintext

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kafkagate/kafkagate/demo/internal/follow"
	"github.com/kafkagate/kafkagate/demo/internal/purchase"
	"github.com/kafkagate/kafkagate/internal/kafka"
)

// Producer sends records and waits for their acknowledgement
// (*kafka.Client).
type Producer interface {
	Produce(ctx context.Context, msgs []kafka.Message) ([]kafka.Delivery, error)
}

// ProduceOptions configure Produce.
type ProduceOptions struct {
	Topic     string
	Count     int                 // records to write
	Sleep     time.Duration       // pause between two records
	Generator *purchase.Generator // default: randomly seeded
	Out       io.Writer           // one line per record written; nil: silent
}

// Produced is one record written.
type Produced struct {
	Key       string
	Purchase  purchase.Purchase
	Partition int32
	Offset    int64
}

// Produce writes o.Count fake purchases to o.Topic, one at a time, pausing
// o.Sleep between two. It stops at the first failed record, or when ctx
// ends (returning the records written so far and ctx's error).
func Produce(ctx context.Context, p Producer, o ProduceOptions) ([]Produced, error) {
	gen := o.Generator
	if gen == nil {
		gen = purchase.NewGenerator(0)
	}
	out := make([]Produced, 0, o.Count)
	for i := 0; i < o.Count; i++ {
		if i > 0 && o.Sleep > 0 {
			t := time.NewTimer(o.Sleep)
			select {
			case <-ctx.Done():
				t.Stop()
				return out, ctx.Err()
			case <-t.C:
			}
		}
		key, pu := gen.Next()
		ds, err := p.Produce(ctx, []kafka.Message{{Topic: o.Topic, Partition: -1, Key: []byte(key), Value: pu.JSON()}})
		if err != nil {
			return out, err
		}
		if ds[0].Err != nil {
			return out, fmt.Errorf("produce record %d to %s: %w", i+1, o.Topic, ds[0].Err)
		}
		rec := Produced{Key: key, Purchase: pu, Partition: ds[0].Partition, Offset: ds[0].Offset}
		out = append(out, rec)
		if o.Out != nil {
			fmt.Fprintf(o.Out, "produced %s/%d@%d key=%s %s\n", o.Topic, rec.Partition, rec.Offset, key, pu.JSON())
		}
	}
	return out, nil
}

// Line is what the consumer prints for each record: one JSON object per
// line.
type Line struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       *string         `json:"key"`
	Value     json.RawMessage `json:"value"`
}

// NewLine renders a record; a value that is not JSON is given as a JSON
// string.
func NewLine(r kafka.Record) Line {
	l := Line{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: JSONValue(r.Value)}
	if r.Key != nil {
		k := string(r.Key)
		l.Key = &k
	}
	return l
}

// JSONValue is v when it is JSON, else v as a JSON string (null for nil).
func JSONValue(v []byte) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	if json.Valid(v) {
		return v
	}
	b, _ := json.Marshal(string(v))
	return b
}

// Consume prints the records of a topic as JSON lines, as consumer.py did,
// until ctx ends or o.Max records were printed.
func Consume(ctx context.Context, s *kafka.Settings, o follow.Options, out io.Writer) (int, error) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return follow.Run(ctx, s, o, func(_ context.Context, recs []kafka.Record) error {
		for _, r := range recs {
			if err := enc.Encode(NewLine(r)); err != nil {
				return fmt.Errorf("print: %w", err)
			}
		}
		return nil
	})
}
