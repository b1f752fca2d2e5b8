// Package encrypted is demo 2 of the original: the encryptor, which copies
// the plaintext topic into the encrypted topic under the target topic's
// policy (kafkagate's bridge: Name and Address by Vault transit,
// credit_card by format-preserving encryption), and the consumer that
// prints the encrypted topic decrypted, with a status per record and per
// field and the key version of each field.
package encrypted

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kafkagate/kafkagate/demo/internal/follow"
	"github.com/kafkagate/kafkagate/demo/internal/plaintext"
	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// EncryptorOptions configure the encryptor.
type EncryptorOptions struct {
	Source, Target string
	// Policies must hold Target's policy: the encryptor refuses a target
	// without one.
	Policies *policy.Set
	Engine   *protect.Engine
	Kafka    *kafka.Settings
	// Reset deletes the encryptor's committed offsets once, before it
	// starts, so it encrypts the source again from the beginning.
	Reset  bool
	Logger *slog.Logger
	// SessionTimeout and HeartbeatInterval tune the consumer group
	// (0: the bridge's defaults).
	SessionTimeout, HeartbeatInterval time.Duration
}

// NewEncryptor returns the bridge from o.Source to o.Target, with its
// own consumer group (bridge.DefaultGroup).
func NewEncryptor(ctx context.Context, o EncryptorOptions) (*bridge.Bridge, error) {
	p, ok := o.Policies.For(o.Target)
	if !ok {
		return nil, fmt.Errorf("encryptor: topic %q has no [policy:%s]: refusing to write to it", o.Target, o.Target)
	}
	group := bridge.DefaultGroup(o.Target)
	if o.Reset {
		if err := follow.ResetGroup(ctx, o.Kafka, group); err != nil {
			return nil, err
		}
	}
	return bridge.New(bridge.Config{
		Source: o.Source, Target: o.Target, Group: group, Policy: p, Engine: o.Engine, Kafka: o.Kafka,
		Logger: o.Logger, BatchWait: 20 * time.Millisecond,
		SessionTimeout: o.SessionTimeout, HeartbeatInterval: o.HeartbeatInterval,
	})
}

// Decrypter decrypts records (*protect.Engine).
type Decrypter interface {
	Decrypt(ctx context.Context, recs []protect.Record) ([]protect.Opened, error)
}

// Line is what the decrypting consumer prints for each record: one JSON
// object per line. Value is the decrypted value where Status says so, and
// the value as stored otherwise.
type Line struct {
	Topic     string                `json:"topic"`
	Partition int32                 `json:"partition"`
	Offset    int64                 `json:"offset"`
	Key       *string               `json:"key"`
	Status    protect.Status        `json:"status"`
	Value     json.RawMessage       `json:"value"`
	Fields    []protect.FieldStatus `json:"fields,omitempty"`
	Error     string                `json:"error,omitempty"`
}

// Decrypt decrypts recs in one Vault round trip and renders each.
func Decrypt(ctx context.Context, d Decrypter, recs []kafka.Record) ([]Line, error) {
	opened, err := d.Decrypt(ctx, recs)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	out := make([]Line, len(recs))
	for i, r := range recs {
		pl := plaintext.NewLine(kafka.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: opened[i].Value})
		out[i] = Line{Topic: pl.Topic, Partition: pl.Partition, Offset: pl.Offset, Key: pl.Key, Value: pl.Value,
			Status: opened[i].Status, Fields: opened[i].Fields}
		if opened[i].Err != nil {
			out[i].Error = opened[i].Err.Error()
		}
	}
	return out, nil
}

// Consume prints the records of the encrypted topic decrypted, as JSON
// lines, until ctx ends or o.Max records were printed. If Vault cannot
// decrypt a batch at all (unavailable, or refusing the token) Consume
// stops with the error and the batch is not marked processed.
func Consume(ctx context.Context, s *kafka.Settings, d Decrypter, o follow.Options, out io.Writer) (int, error) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return follow.Run(ctx, s, o, func(ctx context.Context, recs []kafka.Record) error {
		lines, err := Decrypt(ctx, d, recs)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return fmt.Errorf("print: %w", err)
			}
		}
		return nil
	})
}
