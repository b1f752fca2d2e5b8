package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// bridgeResult is the encryptor bridge (`gateway bridge`, a process of
// its own) copying records with one transit and one FPE field from a
// plaintext topic to an encrypted one, timed from its first consumed
// record to the last produced one, as its /metrics count them.
type bridgeResult struct {
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	// TransitFieldsPerSec counts the fields that go to Vault (one per
	// record); the FPE field is encrypted locally.
	TransitFieldsPerSec float64 `json:"transit_fields_per_sec"`
	Partitions          int     `json:"partitions"`
	// CPU is each process's CPU time over the timed interval, per record
	// and per field (two: one transit, one FPE).
	CPU             []ProcCPU `json:"cpu"`
	VaultCallsPer1k float64   `json:"vault_calls_per_1k_records"`
}

func bridgeValue(i int) []byte {
	v, _ := json.Marshal(map[string]any{
		"id": i, "Name": sampleNames[i%len(sampleNames)], "Address": sampleAddresses[i%len(sampleAddresses)],
		"credit_card": cardNumber(i), "amount": i % 1000,
	})
	return v
}

func (e *env) bridgeThroughput(ctx context.Context) (*bridgeResult, error) {
	n := e.cfg.BridgeRecords
	// Fill the source topic first (untimed), as fast as sarama goes.
	if err := e.fill(bridgeSource, n, bridgeValue); err != nil {
		return nil, err
	}
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	metricsURL := "http://" + addr + "/metrics"
	args, pprofBase, err := e.withPprof([]string{"bridge", "--source", bridgeSource, "--target", bridgeTarget, "--stats-interval", "1h", "--metrics-listen", addr})
	if err != nil {
		return nil, err
	}
	if err := e.startGateway(ctx, metricsURL, args...); err != nil {
		return nil, err
	}
	defer func() { _ = e.stopGateway() }()

	count := func(m map[string]float64, event string) int64 {
		return int64(metricSum(m, "kafkagate_bridge_records_total", `event="`+event+`"`, `target="`+bridgeTarget+`"`))
	}
	var (
		start    time.Time
		meter    *cpuMeter
		before   map[string]float64
		last     map[string]float64
		profiled <-chan error
	)
	// Each poll costs the gateway a metrics scrape: often enough for a
	// timing within 1% of a run of seconds, no more.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Minute)
	for {
		m, err := scrape(ctx, metricsURL)
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		last = m
		if meter == nil && count(m, "consumed") > 0 {
			start, meter, before = time.Now(), e.meter(), m
			if pprofBase != "" {
				// A fixed window from the first record: the copy's own
				// length is not known in advance.
				profiled = e.gatewayProfile(ctx, pprofBase, 2*e.cfg.Point, "gateway-bridge.pprof")
			}
		}
		if count(m, "produced")+count(m, "dead_lettered") >= int64(n) {
			break
		}
		select {
		case <-tick.C:
		case <-e.gwProc.done:
			return nil, fmt.Errorf("bridge stopped early: %w", e.gwProc.exited())
		case <-limit:
			return nil, fmt.Errorf("bridge: %d of %d records in 10 minutes", count(m, "produced"), n)
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	if meter == nil { // done within one poll
		return nil, fmt.Errorf("bridge: all %d records copied before the first poll; raise BridgeRecords", n)
	}
	d := time.Since(start)
	cpu := meter.stop(float64(n), float64(2*n))
	if profiled != nil {
		if err := <-profiled; err != nil {
			return nil, err
		}
	}
	if dl := count(last, "dead_lettered"); dl != 0 {
		return nil, fmt.Errorf("bridge: %d records dead-lettered", dl)
	}
	calls := metricSum(last, "kafkagate_vault_batch_calls_total", `op="encrypt"`) - metricSum(before, "kafkagate_vault_batch_calls_total", `op="encrypt"`)
	r := &bridgeResult{Records: int64(n), RecordsPerSec: float64(n) / d.Seconds(), Partitions: brokerPartitions, CPU: cpu,
		VaultCallsPer1k: calls * 1000 / float64(n)}
	r.TransitFieldsPerSec = r.RecordsPerSec
	e.progress("bridge %.0f records/s (%.1f Vault calls per 1,000 records)", r.RecordsPerSec, r.VaultCallsPer1k)
	return r, e.stopGateway()
}

// fill produces n records value(i) to topic with an async producer and
// waits for every acknowledgement.
func (e *env) fill(topic string, n int, value func(int) []byte) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = 500
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.MaxMessageBytes = 8 << 20
	p, err := sarama.NewAsyncProducer(e.brokers, cfg)
	if err != nil {
		return fmt.Errorf("fill %s: %w", topic, err)
	}
	errc := make(chan error, 1)
	go func() { // ends when every record is answered
		var ferr error
		for range n {
			select {
			case <-p.Successes():
			case pe := <-p.Errors():
				if ferr == nil {
					ferr = pe.Err
				}
			}
		}
		errc <- ferr
	}()
	for i := range n {
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.ByteEncoder(value(i))}
	}
	err = <-errc
	if cerr := p.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fill %s: %w", topic, err)
	}
	return nil
}

// cardNumber is a Luhn-valid 16-digit card number made from i.
func cardNumber(i int) string {
	d := []byte(fmt.Sprintf("4%014d", i%100_000_000_000_000))
	sum := 0
	for j := len(d) - 1; j >= 0; j-- { // the check digit goes right of d
		v := int(d[j] - '0')
		if (len(d)-j)%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return string(append(d, byte('0'+(10-sum%10)%10)))
}
