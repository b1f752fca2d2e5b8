package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics of the proxy section: one per policy mode, and the plain topic
// the direct runs write.
const (
	proxyFieldsTopic   = "bench-proxy-fields"
	proxyEnvelopeTopic = "bench-proxy-envelope"
	proxyDirectTopic   = "bench-proxy-direct"
	proxyRecordBytes   = 1 << 10
	proxyMaxRecords    = 50_000
	// proxyProfileTime is the length of the proxy's CPU profile with
	// -gateway-cpuprofile: one proxied round (produce and fetch).
	proxyProfileTime = 8 * time.Second
)

// proxyConfig are the proxy section's policies, part of benchConfig.
const proxyConfig = `
[policy:` + proxyFieldsTopic + `]
fields = Name transit

[policy:` + proxyEnvelopeTopic + `]
mode = envelope
dek = cached
`

// proxyRun is one mode's produce and fetch through the proxy against the
// same client direct to the broker: best of alternating rounds for
// throughput, every round's CPU time per record (the proxy is the gateway
// process).
type proxyRun struct {
	Mode    string `json:"mode"`
	Records int    `json:"records"`
	// Records per second, best round.
	ProduceDirect float64 `json:"produce_direct_per_sec"`
	ProduceProxy  float64 `json:"produce_proxy_per_sec"`
	FetchDirect   float64 `json:"fetch_direct_per_sec"`
	FetchProxy    float64 `json:"fetch_proxy_per_sec"`
	// Each process's CPU per record, over every round.
	ProduceDirectCPU []ProcCPU `json:"produce_direct_cpu"`
	ProduceProxyCPU  []ProcCPU `json:"produce_proxy_cpu"`
	FetchDirectCPU   []ProcCPU `json:"fetch_direct_cpu"`
	FetchProxyCPU    []ProcCPU `json:"fetch_proxy_cpu"`
}

// proxyResult is the proxy section: fields and envelope mode.
type proxyResult struct {
	Runs []proxyRun `json:"runs"`
}

// proxyThroughput runs the built `gateway proxy` as a process of its own
// and measures, for a fields and an envelope topic, a franz-go client
// producing 1 KiB records through it and fetching them back (decrypted),
// against the same client producing the same plaintext straight to the
// broker and fetching it.
func (e *env) proxyThroughput(ctx context.Context) (*proxyResult, error) {
	listen, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	maddr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	args, pprofBase, err := e.withPprof([]string{"proxy", "--listen", listen, "--metrics-listen", maddr})
	if err != nil {
		return nil, err
	}
	if err := e.startGateway(ctx, "http://"+maddr+"/metrics", args...); err != nil {
		return nil, err
	}
	defer func() { _ = e.stopGateway() }()
	n := min(e.cfg.EnvelopeRecords, proxyMaxRecords)
	values := make([][]byte, n)
	for i := range values {
		values[i] = sizedValue(i, proxyRecordBytes)
	}
	res := &proxyResult{}
	for _, mode := range []struct{ name, topic string }{{"fields", proxyFieldsTopic}, {"envelope", proxyEnvelopeTopic}} {
		run := proxyRun{Mode: mode.name, Records: n}
		sums := [4]cpuSum{{}, {}, {}, {}}
		for round := 0; round < e.cfg.Rounds; round++ {
			// Alternate which side goes first; each writes a fresh topic
			// (deleted after) so the broker's log size favours neither.
			sides := []bool{false, true}
			if round%2 == 1 {
				sides = []bool{true, false}
			}
			for _, proxied := range sides {
				addr, topic := e.brokers[0], proxyDirectTopic
				if proxied {
					addr, topic = listen, mode.topic
				}
				var profiled <-chan error
				if proxied && round == 0 && pprofBase != "" {
					// The first proxied round of each mode, produce and fetch.
					profiled = e.gatewayProfile(ctx, pprofBase, proxyProfileTime, "gateway-proxy-"+mode.name+".pprof")
				}
				prod, prodCPU, fetch, fetchCPU, err := e.proxyRound(ctx, addr, topic, values)
				if profiled != nil {
					if perr := <-profiled; perr != nil && err == nil {
						err = perr
					}
				}
				e.deleteTopics(topic)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", mode.name, map[bool]string{true: "proxy", false: "direct"}[proxied], err)
				}
				if proxied {
					run.ProduceProxy, run.FetchProxy = max(run.ProduceProxy, prod), max(run.FetchProxy, fetch)
					sums[1].add(prodCPU)
					sums[3].add(fetchCPU)
				} else {
					run.ProduceDirect, run.FetchDirect = max(run.ProduceDirect, prod), max(run.FetchDirect, fetch)
					sums[0].add(prodCPU)
					sums[2].add(fetchCPU)
				}
				time.Sleep(200 * time.Millisecond) // let the topic deletion settle
			}
		}
		total := float64(n * e.cfg.Rounds)
		run.ProduceDirectCPU, run.ProduceProxyCPU = sums[0].per(total), sums[1].per(total)
		run.FetchDirectCPU, run.FetchProxyCPU = sums[2].per(total), sums[3].per(total)
		e.progress("proxy %s: produce %.0f/s through the proxy vs %.0f/s direct; fetch %.0f/s vs %.0f/s (%d × 1 KiB, best of %d)",
			mode.name, run.ProduceProxy, run.ProduceDirect, run.FetchProxy, run.FetchDirect, n, e.cfg.Rounds)
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

// proxyRound produces values to topic through addr with one franz-go
// client (acks all, idempotent, 5 ms linger, no compression), then fetches them back with
// another, and returns both rates in records/s and the CPU of each phase.
func (e *env) proxyRound(ctx context.Context, addr, topic string, values [][]byte) (prod float64, prodCPU []ProcCPU, fetch float64, fetchCPU []ProcCPU, err error) {
	// No compression: franz-go's default (snappy) would let the direct
	// side send the padded test values a hundredfold smaller, while
	// ciphertext does not compress.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond),
		kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(20_000), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return 0, nil, 0, nil, err
	}
	defer cl.Close()
	// Create the topic first, so the measured produce has no metadata wait.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: values[0]}).FirstErr(); err != nil {
		return 0, nil, 0, nil, fmt.Errorf("first record: %w", err)
	}
	var firstErr error
	errc := make(chan error, 1)
	meter := e.meter()
	start := time.Now()
	for _, v := range values[1:] {
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, nil, 0, nil, err
	}
	took := time.Since(start)
	prodCPU = meter.stop(float64(len(values)-1), 0)
	select {
	case firstErr = <-errc:
	default:
	}
	if firstErr != nil {
		return 0, nil, 0, nil, fmt.Errorf("produce: %w", firstErr)
	}
	prod = float64(len(values)-1) / took.Seconds()

	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return 0, nil, 0, nil, err
	}
	defer cons.Close()
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	meter = e.meter()
	start = time.Now()
	got := 0
	for got < len(values) {
		fs := cons.PollFetches(fctx)
		if err := fctx.Err(); err != nil {
			return 0, nil, 0, nil, fmt.Errorf("fetch: %d of %d records: %w", got, len(values), err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return 0, nil, 0, nil, fmt.Errorf("fetch: %w", ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) < proxyRecordBytes-16 || r.Value[0] != '{' {
				ferr = fmt.Errorf("record %d/%d is not the plaintext", r.Partition, r.Offset)
			}
			got++
		})
		if ferr != nil {
			return 0, nil, 0, nil, ferr
		}
	}
	took = time.Since(start)
	fetchCPU = meter.stop(float64(got), 0)
	return prod, prodCPU, float64(got) / took.Seconds(), fetchCPU, nil
}

// proxyLines are the proxy section's lines: the throughput overhead of
// produce and fetch through the proxy against direct, per mode, with the
// CPU of each process per record through the proxy (the gateway column
// is the proxy process).
func (r *results) proxyLines(missing string) []Line {
	var out []Line
	if r.proxy == nil {
		for _, id := range proxyLineIDs {
			out = append(out, Line{ID: id, Name: "8 " + id, Missing: missing})
		}
		return out
	}
	for _, run := range r.proxy.Runs {
		for _, op := range []struct {
			name              string
			direct, proxy     float64
			directCPU, proxCP []ProcCPU
		}{
			{"produce", run.ProduceDirect, run.ProduceProxy, run.ProduceDirectCPU, run.ProduceProxyCPU},
			{"fetch", run.FetchDirect, run.FetchProxy, run.FetchDirectCPU, run.FetchProxyCPU},
		} {
			l := Line{ID: "proxy_" + op.name + "_" + run.Mode, Name: fmt.Sprintf("8 proxy %s %s 1 KiB", op.name, run.Mode), Unit: "% overhead",
				Reference: "same client direct to the broker"}
			if op.direct <= 0 {
				l.Missing = "no direct figure"
				out = append(out, l)
				continue
			}
			l.Value = 100 * (1 - op.proxy/op.direct)
			l.Ratio, l.RatioText = op.proxy/op.direct, fmt.Sprintf("%.0f%%", 100*op.proxy/op.direct)
			l.Detail = fmt.Sprintf("%.0f vs %.0f records/s, %d records", op.proxy, op.direct, run.Records)
			if c, d := cpuOf(op.proxCP, procClient), cpuOf(op.directCPU, procClient); c != nil && d != nil {
				l.Detail += fmt.Sprintf("; client %.1f vs %.1f µs/record", c.USPerRecord, d.USPerRecord)
			}
			if b, d := cpuOf(op.proxCP, procBroker), cpuOf(op.directCPU, procBroker); b != nil && d != nil {
				l.Detail += fmt.Sprintf("; broker %.1f vs %.1f µs/record", b.USPerRecord, d.USPerRecord)
			}
			if run.Mode == "envelope" {
				l.Target = fmt.Sprintf("≤ %.0f%%", targetEnvelopePct)
				l.Met = boolp(l.Value <= targetEnvelopePct)
			}
			withCPU(&l, op.proxCP, false)
			out = append(out, l)
		}
	}
	return out
}

// proxyLineIDs are the proxy section's line ids, in table order.
var proxyLineIDs = []string{"proxy_produce_fields", "proxy_fetch_fields", "proxy_produce_envelope", "proxy_fetch_envelope"}
