package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/protect"
)

// envelopeResult compares producing records sealed whole under a cached
// DEK (engine.EncryptRecords, then produce) with producing the same
// plaintext records, same producer, same batches, same concurrency; best
// of alternating rounds. Then it opens the sealed records again and counts
// the Vault unwrap calls the DEK cache let through.
type envelopeResult struct {
	Records        int     `json:"records"`
	RecordBytes    int     `json:"record_bytes"`
	PlainPerSec    float64 `json:"plain_records_per_sec"`
	EnvelopePerSec float64 `json:"envelope_records_per_sec"`
	OverheadPct    float64 `json:"overhead_pct"`
	DecryptPerSec  float64 `json:"decrypt_records_per_sec"`
	Decrypted      int     `json:"decrypted"`
	UnwrapCalls    int64   `json:"unwrap_calls"`
	SealFetches    int64   `json:"seal_dek_fetches"`
}

const envelopeBatch, envelopeWorkers = 500, 4

func (e *env) envelopeOverhead(ctx context.Context) (*envelopeResult, error) {
	gw, pol, err := e.gatewayFor(ctx, "envelope", envelopeTopic)
	if err != nil {
		return nil, err
	}
	n := e.cfg.EnvelopeRecords
	values := make([][]byte, n)
	for i := range values {
		values[i] = bridgeValue(i)
	}
	res := &envelopeResult{Records: n, RecordBytes: len(values[0])}
	var (
		round  int
		keep   sync.Mutex
		sealed []protect.Sealed // the last round's sealed records, for the decrypt pass
	)
	// run produces all values in batches from envelopeWorkers goroutines,
	// sealing each batch first when seal is set.
	run := func(topic string, seal bool) (float64, error) {
		// Each run writes a fresh topic: kfake's in-memory log costs more
		// as it grows, which would favour whichever side ran first.
		round++
		dest := fmt.Sprintf("%s-%d", topic, round)
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, envelopeWorkers)
		start := time.Now()
		for w := range envelopeWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					lo := int(next.Add(envelopeBatch)) - envelopeBatch
					if lo >= n {
						return
					}
					hi := min(lo+envelopeBatch, n)
					msgs := make([]kafka.Message, hi-lo)
					if seal {
						recs := make([]protect.Record, hi-lo)
						for i := range recs {
							recs[i] = protect.Record{Topic: topic, Value: values[lo+i]}
						}
						out, err := gw.Engine.EncryptRecords(ctx, pol, recs)
						if err != nil {
							errs[w] = err
							return
						}
						for i, s := range out {
							if s.Err != nil {
								errs[w] = s.Err
								return
							}
							msgs[i] = kafka.Message{Topic: dest, Partition: -1, Value: s.Value, Headers: kafkaHeaders(s.Headers)}
						}
						keep.Lock()
						for i, s := range out {
							sealed[lo+i] = s
						}
						keep.Unlock()
					} else {
						for i := range msgs {
							msgs[i] = kafka.Message{Topic: dest, Partition: -1, Value: values[lo+i]}
						}
					}
					dels, err := gw.Kafka.Produce(ctx, msgs)
					if err == nil {
						for _, d := range dels {
							if d.Err != nil {
								err = d.Err
								break
							}
						}
					}
					if err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		for _, err := range errs {
			if err != nil {
				return 0, fmt.Errorf("envelope section: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return float64(n) / d.Seconds(), nil
	}
	sealBefore, _ := gw.Engine.DEKCacheStats()
	for range e.cfg.Rounds {
		p, err := run("bench-plain", false)
		if err != nil {
			return nil, err
		}
		sealed = make([]protect.Sealed, n)
		s, err := run(envelopeTopic, true)
		if err != nil {
			return nil, err
		}
		res.PlainPerSec, res.EnvelopePerSec = max(res.PlainPerSec, p), max(res.EnvelopePerSec, s)
	}
	res.OverheadPct = (res.PlainPerSec/res.EnvelopePerSec - 1) * 100
	sealAfter, _ := gw.Engine.DEKCacheStats()
	res.SealFetches = sealAfter.Fetches - sealBefore.Fetches

	// Decrypt side: the engine opens the sealed records in batches, the
	// DEK unwrapped once and then served from the cache.
	_, openBefore := gw.Engine.DEKCacheStats()
	start := time.Now()
	for lo := 0; lo < n; lo += envelopeBatch {
		hi := min(lo+envelopeBatch, n)
		recs := make([]protect.Record, hi-lo)
		for i := range recs {
			recs[i] = protect.Record{Topic: envelopeTopic, Value: sealed[lo+i].Value, Headers: sealed[lo+i].Headers}
		}
		out, err := gw.Engine.Decrypt(ctx, recs)
		if err != nil {
			return nil, err
		}
		for i, o := range out {
			if o.Err != nil || string(o.Value) != string(values[lo+i]) {
				return nil, fmt.Errorf("envelope: record %d did not open to its plaintext: %v", lo+i, o.Err)
			}
		}
		res.Decrypted += len(out)
	}
	res.DecryptPerSec = float64(res.Decrypted) / time.Since(start).Seconds()
	_, openAfter := gw.Engine.DEKCacheStats()
	res.UnwrapCalls = openAfter.UnwrapCalls - openBefore.UnwrapCalls
	e.progress("envelope %.0f records/s vs plain %.0f (overhead %.1f%%); decrypt %.0f/s with %d unwrap calls",
		res.EnvelopePerSec, res.PlainPerSec, res.OverheadPct, res.DecryptPerSec, res.UnwrapCalls)
	return res, nil
}

func kafkaHeaders(hs []protect.Header) []kafka.Header {
	out := make([]kafka.Header, len(hs))
	for i, h := range hs {
		out[i] = kafka.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
