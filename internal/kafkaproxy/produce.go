package kafkaproxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Error codes of refused produce partitions.
var (
	// codeNoRight and codeNoPolicy: a principal without the produce right,
	// and a topic without a kafkagate policy (never forwarded in clear).
	codeNoRight  = kerr.TopicAuthorizationFailed.Code
	codeNoPolicy = kerr.TopicAuthorizationFailed.Code
	// codeVaultDown: the engine could not encrypt (Vault unavailable or
	// slow); every client retries NOT_ENOUGH_REPLICAS, and it says the
	// batch was not written.
	codeVaultDown = kerr.NotEnoughReplicas.Code
	// codeBadRecord: a record the policy refuses (not JSON, a field of the
	// wrong type, a reserved header); not retriable.
	codeBadRecord = kerr.InvalidRecord.Code
	codeCorrupt   = kerr.CorruptMessage.Code
)

// refusal is one partition the proxy answers itself.
type refusal struct {
	topic     string
	partition int32
	code      int16
	msg       string
	records   []kmsg.ProduceResponseTopicPartitionErrorRecord
}

// produce encrypts the request's batches by their topics' policies and
// forwards what may be written; refused partitions are answered by the
// proxy, merged into the upstream's response.
func (s *session) produce(h reqHeader) error {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(h.body); err != nil {
		return fmt.Errorf("decode produce: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.p.cfg.VaultTimeout)
	defer cancel()
	// Sealed records grow by the ciphertext's overhead and headers.
	s.sealed.reset(len(h.frame) + len(h.frame)/2 + 4096)
	var refused []refusal
	keep := req.Topics[:0]
	for _, t := range req.Topics {
		refuse := func(code int16, msg string) {
			for _, pt := range t.Partitions {
				refused = append(refused, refusal{topic: t.Topic, partition: pt.Partition, code: code, msg: msg})
			}
		}
		pol, ok := s.p.cfg.Policies.For(t.Topic)
		switch {
		case !s.rights.Can(RightProduce, t.Topic):
			refuse(codeNoRight, "the principal may not produce to this topic")
			continue
		case !ok:
			refuse(codeNoPolicy, "the topic has no kafkagate policy; the proxy writes only to topics with one")
			continue
		case pol.Mode == policy.Passthrough:
			keep = append(keep, t)
			continue
		}
		parts := t.Partitions[:0]
		for _, pt := range t.Partitions {
			out, ref := s.seal(ctx, pol, t.Topic, pt.Partition, pt.Records)
			if ref != nil {
				refused = append(refused, *ref)
				continue
			}
			pt.Records = out
			parts = append(parts, pt)
		}
		if len(parts) > 0 {
			t.Partitions = parts
			keep = append(keep, t)
		}
	}
	req.Topics = keep
	for _, r := range refused {
		s.log.Warn("kafka proxy: produce refused", "topic", r.topic, "partition", r.partition, "code", kerr.ErrorForCode(r.code), "reason", r.msg)
	}
	if req.Acks == 0 {
		// No answer is expected; refused partitions are dropped, as a
		// broker drops what it cannot write with acks=0.
		if len(req.Topics) == 0 {
			return nil
		}
		return s.forwardRequest(h, req, nil)
	}
	result := "ok"
	if len(refused) > 0 {
		result = "refused"
	}
	if len(req.Topics) == 0 {
		resp := kmsg.NewPtrProduceResponse()
		mergeRefused(resp, refused)
		return s.answer(h, resp, result, false)
	}
	pd := &pending{key: h.key, version: h.version, corr: h.corr, result: result,
		fix: func(_ *pending, r kmsg.Response) error {
			resp := r.(*kmsg.ProduceResponse)
			s.p.fixProduceBrokers(resp)
			mergeRefused(resp, refused)
			return nil
		}}
	return s.forwardRequest(h, req, pd)
}

// mergeRefused adds the refused partitions to resp.
func mergeRefused(resp *kmsg.ProduceResponse, refused []refusal) {
	for _, r := range refused {
		i := topicSlot(&resp.Topics, r.topic, func(t *kmsg.ProduceResponseTopic) string { return t.Topic },
			func() kmsg.ProduceResponseTopic {
				t := kmsg.NewProduceResponseTopic()
				t.Topic = r.topic
				return t
			})
		pr := kmsg.NewProduceResponseTopicPartition()
		pr.Partition, pr.ErrorCode, pr.BaseOffset, pr.LogAppendTime, pr.LogStartOffset = r.partition, r.code, -1, -1, -1
		msg := r.msg
		pr.ErrorMessage = &msg
		pr.ErrorRecords = r.records
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, pr)
	}
}

// seal encrypts one partition's record batches with one engine call per
// batch. It returns the new bytes, or why the partition is refused.
func (s *session) seal(ctx context.Context, pol *policy.Policy, topic string, partition int32, records []byte) ([]byte, *refusal) {
	refuse := func(code int16, msg string) *refusal {
		return &refusal{topic: topic, partition: partition, code: code, msg: msg}
	}
	raws, tail := splitBatches(records)
	if len(tail) > 0 {
		return nil, refuse(codeCorrupt, "record batch truncated")
	}
	out := s.sealed.next()
	for _, raw := range raws {
		if isControl(raw) {
			out = append(out, raw...)
			continue
		}
		b, err := s.codecs.decode(raw)
		if err != nil {
			return nil, refuse(codeCorrupt, err.Error())
		}
		var recs []protect.Record
		var idx []int
		var bad []kmsg.ProduceResponseTopicPartitionErrorRecord
		for i := range b.recs {
			for _, hd := range b.recs[i].Headers {
				if record.Reserved(hd.Key) {
					msg := fmt.Sprintf("header %q is reserved (the kafkagate. prefix, X-encryptionkey and X-filename)", hd.Key)
					bad = append(bad, kmsg.ProduceResponseTopicPartitionErrorRecord{RelativeOffset: int32(i), ErrorMessage: &msg})
					break
				}
			}
			if b.recs[i].Value == nil {
				continue // a tombstone has nothing to encrypt
			}
			recs = append(recs, b.protectRecord(topic, partition, i))
			idx = append(idx, i)
		}
		if len(bad) > 0 {
			r := refuse(codeBadRecord, "a record carries a reserved header")
			r.records = bad
			return nil, r
		}
		if len(recs) > 0 {
			sealed, err := s.p.cfg.Engine.EncryptRecords(ctx, pol, recs)
			if err != nil {
				s.log.Warn("kafka proxy: encryption unavailable; produce refused with a retriable error", "topic", topic, "error", err)
				return nil, refuse(codeVaultDown, "encryption is unavailable (Vault); retry")
			}
			for j, sl := range sealed {
				if sl.Err == nil {
					continue
				}
				msg := "record refused by the topic's policy"
				var pe *protect.Error
				if errors.As(sl.Err, &pe) {
					msg = pe.Code + ": " + pe.Error()
				}
				bad = append(bad, kmsg.ProduceResponseTopicPartitionErrorRecord{RelativeOffset: int32(idx[j]), ErrorMessage: &msg})
			}
			if len(bad) > 0 {
				r := refuse(codeBadRecord, "a record does not meet the topic's policy")
				r.records = bad
				return nil, r
			}
			for j, sl := range sealed {
				rec := &b.recs[idx[j]]
				rec.Value = sl.Value
				rec.Headers = append(rec.Headers, kmsgHeaders(sl.Headers)...)
			}
		}
		enc, err := s.codecs.appendBatch(out, b)
		if err != nil {
			return nil, refuse(codeCorrupt, err.Error())
		}
		out = enc
	}
	if len(out) == 0 {
		return nil, nil
	}
	s.sealed.keep(out)
	return out, nil
}
