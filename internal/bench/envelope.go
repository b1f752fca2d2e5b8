package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// envelopeResult is one record size of the envelope sweep: producing
// records sealed whole under a cached DEK (engine.EncryptRecords in this
// process, the producing client, then produce) against producing the same
// plaintext records, same producer, same batches, same concurrency, the
// broker in a process of its own; best of alternating rounds for
// throughput, every round's CPU time for the per-record figures. Then it
// opens the sealed records again and counts the Vault unwrap calls the
// DEK cache let through.
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
	// Bytes per record on the wire: value plus header keys and values.
	PlainWireBytes  float64 `json:"plain_wire_bytes"`
	SealedWireBytes float64 `json:"sealed_wire_bytes"`
	// Each process's CPU per record, plain and sealed runs.
	PlainCPU  []ProcCPU `json:"plain_cpu"`
	SealedCPU []ProcCPU `json:"sealed_cpu"`
}

const envelopeBatch, envelopeWorkers = 500, 4

// EnvelopeSizes are the record sizes of the envelope sweep: Kroxylicious
// publishes its overhead on 1 KiB records.
var EnvelopeSizes = []int{100, 1 << 10, 10 << 10}

// envelopeBudget bounds one size's records × size, so the sweep's memory
// (values, sealed copies, the broker's in-memory log) stays bounded.
const envelopeBudget = 128 << 20

// sizedValue is a JSON record of about size bytes (never less than its
// fixed fields).
func sizedValue(i, size int) []byte {
	v := map[string]any{"id": i, "Name": sampleNames[i%len(sampleNames)], "note": ""}
	b, _ := json.Marshal(v)
	if pad := size - len(b); pad > 0 {
		v["note"] = strings.Repeat(string(rune('a'+i%26)), pad)
		b, _ = json.Marshal(v)
	}
	return b
}

func (e *env) envelopeSweep(ctx context.Context) ([]envelopeResult, error) {
	var out []envelopeResult
	for _, size := range EnvelopeSizes {
		n := min(e.cfg.EnvelopeRecords, envelopeBudget/size)
		r, err := e.envelopeOverhead(ctx, size, n)
		if err != nil {
			return nil, fmt.Errorf("envelope %d B: %w", size, err)
		}
		out = append(out, *r)
	}
	return out, nil
}

// cpuSum adds per-process CPU seconds of several runs.
type cpuSum map[string]float64

func (c cpuSum) add(cs []ProcCPU) {
	for _, p := range cs {
		c[p.Process] += p.CPUSec
	}
}

func (c cpuSum) per(records float64) []ProcCPU {
	var out []ProcCPU
	for _, name := range cpuProcs {
		if s, ok := c[name]; ok {
			out = append(out, ProcCPU{Process: name, CPUSec: s, USPerRecord: s * 1e6 / records})
		}
	}
	return out
}

func (e *env) envelopeOverhead(ctx context.Context, size, n int) (*envelopeResult, error) {
	gw, err := e.gateway(ctx)
	if err != nil {
		return nil, err
	}
	pol, ok := gw.Config.Policies.For(envelopeTopic)
	if !ok {
		return nil, fmt.Errorf("envelope: no policy for %s", envelopeTopic)
	}
	values := make([][]byte, n)
	for i := range values {
		values[i] = sizedValue(i, size)
	}
	res := &envelopeResult{Records: n, RecordBytes: len(values[0])}
	var (
		round  int
		keep   sync.Mutex
		sealed []protect.Sealed // the last round's sealed records, for the decrypt pass
	)
	// run produces all values in batches from envelopeWorkers goroutines,
	// sealing each batch first when seal is set.
	run := func(topic string, seal bool) (float64, []ProcCPU, error) {
		// Each run writes a fresh topic, deleted after it: kfake's
		// in-memory log costs more as it grows, which would favour
		// whichever side ran first.
		round++
		dest := fmt.Sprintf("%s-%d-%d", topic, size, round)
		defer e.deleteTopics(dest)
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, envelopeWorkers)
		meter := e.meter()
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
							msgs[i] = kafka.Message{Topic: dest, Partition: -1, Value: s.Value, Headers: s.Headers}
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
		cpu := meter.stop(float64(n), 0)
		for _, err := range errs {
			if err != nil {
				return 0, nil, fmt.Errorf("envelope section: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		return float64(n) / d.Seconds(), cpu, nil
	}
	plainCPU, sealedCPU := cpuSum{}, cpuSum{}
	sealBefore, _ := gw.Engine.DEKCacheStats()
	for range e.cfg.Rounds {
		p, pc, err := run("bench-plain", false)
		if err != nil {
			return nil, err
		}
		sealed = make([]protect.Sealed, n)
		s, sc, err := run(envelopeTopic, true)
		if err != nil {
			return nil, err
		}
		plainCPU.add(pc)
		sealedCPU.add(sc)
		res.PlainPerSec, res.EnvelopePerSec = max(res.PlainPerSec, p), max(res.EnvelopePerSec, s)
	}
	total := float64(n * e.cfg.Rounds)
	res.PlainCPU, res.SealedCPU = plainCPU.per(total), sealedCPU.per(total)
	res.OverheadPct = (res.PlainPerSec/res.EnvelopePerSec - 1) * 100
	sealAfter, _ := gw.Engine.DEKCacheStats()
	res.SealFetches = sealAfter.Fetches - sealBefore.Fetches
	for i, s := range sealed {
		res.PlainWireBytes += float64(len(values[i]))
		res.SealedWireBytes += float64(len(s.Value))
		for _, h := range s.Headers {
			res.SealedWireBytes += float64(len(h.Key) + len(h.Value))
		}
	}
	res.PlainWireBytes /= float64(n)
	res.SealedWireBytes /= float64(n)

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
	e.progress("envelope %d B: %.0f records/s vs plain %.0f (overhead %.1f%%), %.0f vs %.0f B on the wire; decrypt %.0f/s with %d unwrap calls",
		res.RecordBytes, res.EnvelopePerSec, res.PlainPerSec, res.OverheadPct, res.SealedWireBytes, res.PlainWireBytes, res.DecryptPerSec, res.UnwrapCalls)
	return res, nil
}
