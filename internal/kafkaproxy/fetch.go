package kafkaproxy

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// HeaderStatus is added by the proxy to a fetched record it returns as
// stored although the topic's policy says it is encrypted: its value is
// the engine's status (failed, partial, unencrypted).
const HeaderStatus = "kafkagate.proxy.status"

// Error codes of fetched partitions.
var (
	// codeFetchVault: the engine could not decrypt (Vault unavailable);
	// retriable, so consumers fetch again.
	codeFetchVault = kerr.KafkaStorageError.Code
	// codeFetchFailed: fetch_failed = error and the next record cannot be
	// decrypted; the consumer stops at it.
	codeFetchFailed = kerr.CorruptMessage.Code
)

// fetchAction is what the proxy does with a topic's fetched records.
type fetchAction int

const (
	fetchAsStored fetchAction = iota // passthrough policy, or no right with fetch_denied = stored
	fetchDecrypt
)

type fetchTopic struct {
	action  fetchAction
	policy  *policy.Policy
	offsets map[int32]int64 // partition -> fetch offset
}

type fetchRefusal struct {
	topic     string
	partition int32
	code      int16
}

// fetch forces a full fetch (no fetch session: the proxy may drop
// partitions from the request), refuses topics by policy and right, and
// decrypts the response.
func (s *session) fetch(h reqHeader) error {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(h.body); err != nil {
		return err
	}
	req.SessionID, req.SessionEpoch, req.ForgottenTopics = 0, -1, nil
	topics := map[string]*fetchTopic{}
	var refused []fetchRefusal
	keep := req.Topics[:0]
	for _, t := range req.Topics {
		pol, ok := s.p.cfg.Policies.For(t.Topic)
		ft := &fetchTopic{action: fetchDecrypt, policy: pol, offsets: map[int32]int64{}}
		code := int16(0)
		switch {
		case !ok:
			code = codeNoPolicy
		case !s.rights.Can(RightConsume, t.Topic) && pol.FetchDenied != policy.FetchStored:
			code = codeNoRight
		case !s.rights.Can(RightConsume, t.Topic), pol.Mode == policy.Passthrough:
			ft.action = fetchAsStored
		}
		if code != 0 {
			for _, pt := range t.Partitions {
				refused = append(refused, fetchRefusal{topic: t.Topic, partition: pt.Partition, code: code})
			}
			continue
		}
		for _, pt := range t.Partitions {
			ft.offsets[pt.Partition] = pt.FetchOffset
		}
		topics[t.Topic] = ft
		keep = append(keep, t)
	}
	req.Topics = keep
	result := "ok"
	if len(refused) > 0 {
		result = "refused"
	}
	if len(req.Topics) == 0 {
		resp := kmsg.NewPtrFetchResponse()
		mergeFetchRefused(resp, refused)
		return s.answer(h, resp, result, false)
	}
	pd := &pending{key: h.key, version: h.version, corr: h.corr, result: result,
		fix: func(pd *pending, r kmsg.Response) error {
			resp := r.(*kmsg.FetchResponse)
			resp.Brokers = keepBrokers(s.p, resp.Brokers, func(b *kmsg.FetchResponseBroker) (int32, *string, *int32) {
				return b.NodeID, &b.Host, &b.Port
			})
			size := 0
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					size += len(p.RecordBatches)
				}
			}
			s.opened.reset(size + 4096)
			for i := range resp.Topics {
				t := &resp.Topics[i]
				ft := topics[t.Topic]
				if ft == nil || ft.action != fetchDecrypt {
					continue // as stored
				}
				for j := range t.Partitions {
					if !s.open(ft, t.Topic, &t.Partitions[j]) {
						pd.result = "error"
					}
				}
			}
			mergeFetchRefused(resp, refused)
			return nil
		}}
	return s.forwardRequest(h, req, pd)
}

func mergeFetchRefused(resp *kmsg.FetchResponse, refused []fetchRefusal) {
	for _, r := range refused {
		i := topicSlot(&resp.Topics, r.topic, func(t *kmsg.FetchResponseTopic) string { return t.Topic },
			func() kmsg.FetchResponseTopic {
				t := kmsg.NewFetchResponseTopic()
				t.Topic = r.topic
				return t
			})
		pr := kmsg.NewFetchResponseTopicPartition()
		pr.Partition, pr.ErrorCode, pr.HighWatermark, pr.LastStableOffset, pr.LogStartOffset = r.partition, r.code, -1, -1, -1
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, pr)
	}
}

// open decrypts one fetched partition in place, with one engine call for
// its records. A record that fails is returned as stored with a
// HeaderStatus header (fetch_failed = stored), or ends the partition's
// records before it (fetch_failed = error; a partition error when it is the
// first the consumer asked for). It reports false when the engine failed
// as a whole (the partition then carries a retriable error and no records)
// or the records could not be parsed.
func (s *session) open(ft *fetchTopic, topic string, pt *kmsg.FetchResponseTopicPartition) bool {
	if pt.ErrorCode != 0 || len(pt.RecordBatches) == 0 {
		return true
	}
	raws, _ := splitBatches(pt.RecordBatches) // a cut-off last batch is dropped: clients ignore it
	type at struct{ batch, rec int }
	batches := make([]*batch, len(raws))
	var recs []protect.Record
	var where []at
	for i, raw := range raws {
		if isControl(raw) || magic(raw) != 2 {
			continue // control batches and old message sets pass as stored
		}
		b, err := s.codecs.decode(raw)
		if err != nil {
			s.log.Warn("kafka proxy: fetched batch cannot be decoded; partition answered with an error", "topic", topic, "partition", pt.Partition, "error", err)
			pt.ErrorCode, pt.RecordBatches = codeCorrupt, nil
			return false
		}
		batches[i] = b
		for j := range b.recs {
			if b.recs[j].Value == nil {
				continue // tombstone
			}
			recs = append(recs, b.protectRecord(topic, pt.Partition, j))
			where = append(where, at{i, j})
		}
	}
	if len(recs) == 0 {
		pt.RecordBatches = joinBatches(raws)
		return true
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.p.cfg.VaultTimeout)
	defer cancel()
	opened, err := s.p.cfg.Engine.Decrypt(ctx, recs)
	if err != nil {
		s.log.Warn("kafka proxy: decryption unavailable; fetch answered with a retriable error", "topic", topic, "partition", pt.Partition, "error", err)
		pt.ErrorCode, pt.RecordBatches = codeFetchVault, nil
		return false
	}
	fetchOffset := ft.offsets[pt.Partition]
	cut := at{-1, -1} // fetch_failed = error: records from here on are left out
	for k, o := range opened {
		w := where[k]
		rec := &batches[w.batch].recs[w.rec]
		switch o.Status {
		case protect.StatusDecrypted:
			rec.Value = o.Value
			continue
		case protect.StatusFileChunk:
			continue // file chunks are reassembled by receive-dir, as stored
		}
		if ft.policy.FetchFailed == policy.FetchError && recs[k].Offset >= fetchOffset {
			cut = w
			break
		}
		rec.Headers = append(rec.Headers, kmsg.Header{Key: HeaderStatus, Value: []byte(o.Status)})
	}
	// Decrypted records are smaller than stored ones: the response's
	// arena has room for them.
	out := s.opened.next()
	delivered := false // a record at or after the fetch offset is returned
	for i, raw := range raws {
		b := batches[i]
		if cut.batch >= 0 && i > cut.batch {
			break
		}
		if b == nil {
			out = append(out, raw...)
			delivered = delivered || lastOffset(raw) >= fetchOffset
			continue
		}
		if i == cut.batch {
			b.recs = b.recs[:cut.rec]
			if len(b.recs) == 0 {
				break
			}
			// the consumer resumes at the first record left out
			b.hdr.LastOffsetDelta = b.recs[len(b.recs)-1].OffsetDelta
		}
		enc, err := s.codecs.appendBatch(out, b)
		if err != nil {
			pt.ErrorCode, pt.RecordBatches = codeCorrupt, nil
			return false
		}
		out = enc
		delivered = delivered || b.hdr.FirstOffset+int64(b.recs[len(b.recs)-1].OffsetDelta) >= fetchOffset
	}
	if cut.batch >= 0 && !delivered {
		s.log.Warn("kafka proxy: record cannot be decrypted; fetch_failed = error stops the consumer at it", "topic", topic, "partition", pt.Partition, "offset", recs[indexOf(where, cut)].Offset)
		pt.ErrorCode, pt.RecordBatches = codeFetchFailed, nil
		return true
	}
	if len(out) == 0 {
		out = nil // no records
	}
	s.opened.keep(out)
	pt.RecordBatches = out
	return true
}

func indexOf[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

// lastOffset is the offset of a raw batch's last record.
func lastOffset(raw []byte) int64 {
	var h kmsg.RecordBatch
	if len(raw) < batchHeaderBytes || h.ReadFrom(raw) != nil {
		return -1
	}
	return h.FirstOffset + int64(h.LastOffsetDelta)
}

func joinBatches(raws [][]byte) []byte {
	var out []byte
	for _, r := range raws {
		out = append(out, r...)
	}
	return out
}
