// Package kgclient lets Go programs that use IBM/sarama directly write and
// read kafkagate-protected records without going through the HTTP gateway,
// like KafkaCrypto's serializers do for Python: Producer encrypts each
// record with its topic's policy before a sarama SyncProducer sends it, and
// Decoder decrypts consumed messages, reporting a status per record. The
// records are the same as the gateway's, so either side may be the gateway.
package kgclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
)

// ErrNoPolicy means the topic has no policy: Producer refuses to write to
// it (fail closed; a passthrough policy opts out explicitly).
var ErrNoPolicy = errors.New("topic has no encryption policy")

// ErrReservedHeader means a header name starts with "kafkagate.", which
// only kafkagate writes.
var ErrReservedHeader = errors.New("header names starting with kafkagate. are reserved")

// Producer encrypts records by policy and sends them with a sarama
// SyncProducer (which should be idempotent with acks=all; kafka.Configure
// makes such settings). It is safe for concurrent use.
type Producer struct {
	sp       sarama.SyncProducer
	engine   *protect.Engine
	policies *policy.Set
}

// NewProducer wraps sp. The engine holds the Vault clients; policies
// name, per topic, what to encrypt.
func NewProducer(sp sarama.SyncProducer, engine *protect.Engine, policies *policy.Set) *Producer {
	return &Producer{sp: sp, engine: engine, policies: policies}
}

// Send encrypts value with topic's policy and sends it with key (nil: no
// key) and headers, waiting for the acknowledgement. It returns the
// record's partition and offset. Errors: ErrNoPolicy, ErrReservedHeader, a
// *protect.Error when the value cannot be encrypted (it never contains the
// value), a vaultclient error when Vault is unavailable (nothing was sent),
// or the producer's error (kafka.ErrUnavailable, kafka.ErrTooLarge, ...).
func (p *Producer) Send(ctx context.Context, topic string, key, value []byte, headers []sarama.RecordHeader) (int32, int64, error) {
	pol, ok := p.policies.For(topic)
	if !ok {
		return 0, 0, fmt.Errorf("topic %q: %w", topic, ErrNoPolicy)
	}
	rec := protect.Record{Topic: topic, Key: key, Value: value}
	for _, h := range headers {
		if strings.HasPrefix(strings.ToLower(string(h.Key)), record.HeaderPrefix) {
			return 0, 0, fmt.Errorf("header %q: %w", h.Key, ErrReservedHeader)
		}
		rec.Headers = append(rec.Headers, protect.Header{Key: string(h.Key), Value: h.Value})
	}
	sealed, err := p.engine.EncryptRecords(ctx, pol, []protect.Record{rec})
	if err != nil {
		return 0, 0, fmt.Errorf("encrypt for %s: %w", topic, err)
	}
	if sealed[0].Err != nil {
		return 0, 0, sealed[0].Err
	}
	msg := &sarama.ProducerMessage{Topic: topic, Headers: append([]sarama.RecordHeader(nil), headers...)}
	if key != nil {
		msg.Key = sarama.ByteEncoder(key)
	}
	if sealed[0].Value != nil {
		msg.Value = sarama.ByteEncoder(sealed[0].Value)
	}
	for _, h := range sealed[0].Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	type result struct {
		partition int32
		offset    int64
		err       error
	}
	done := make(chan result, 1)
	go func() { // ends when sarama answers (within its producer timeout)
		part, off, err := p.sp.SendMessage(msg)
		done <- result{part, off, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return 0, 0, fmt.Errorf("produce to %s: %w", topic, kafka.Classify(r.err))
		}
		return r.partition, r.offset, nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("produce to %s: outcome unknown: %w", topic, ctx.Err())
	}
}

// Message is a Kafka record as kafkagate reads and writes it.
type Message = record.Record

// Header is a record header.
type Header = record.Header

// Record is a consumed message, decrypted where kafkagate encrypted it.
// Its Value is the plaintext when Status is decrypted, and as stored
// otherwise (for partial, the fields that failed stay encrypted).
type Record struct {
	Message
	// Status: decrypted, partial, failed, or unencrypted (a record
	// kafkagate did not write, returned as stored, never passed off as
	// decrypted).
	Status protect.Status
	Fields []protect.FieldStatus
	Err    error // the record-level cause when Status is failed
}

// Decoder decrypts consumed messages. It is safe for concurrent use.
type Decoder struct{ engine *protect.Engine }

// NewDecoder returns a decoder; it needs no policy (records name their
// keys in their kafkagate headers).
func NewDecoder(engine *protect.Engine) *Decoder { return &Decoder{engine: engine} }

// Decode decrypts msgs with one Vault batch per key. The error is non-nil
// only when Vault is unavailable (then nothing is decrypted); problems of
// single records are in their Status.
func (d *Decoder) Decode(ctx context.Context, msgs []*sarama.ConsumerMessage) ([]Record, error) {
	in := make([]protect.Record, len(msgs))
	for i, m := range msgs {
		in[i] = kafka.FromConsumerMessage(m)
	}
	opened, err := d.engine.Decrypt(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	out := make([]Record, len(msgs))
	for i, o := range opened {
		out[i] = Record{Message: in[i], Status: o.Status, Fields: o.Fields, Err: o.Err}
		out[i].Value = o.Value
	}
	return out, nil
}
