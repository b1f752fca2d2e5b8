package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/bridge"
)

// bridgeResult is the encryptor bridge copying records with one transit
// and one FPE field from a plaintext topic to an encrypted one, timed
// from its first consumed record to the last acknowledged one.
type bridgeResult struct {
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	// TransitFieldsPerSec counts the fields that go to Vault (one per
	// record); the FPE field is encrypted locally.
	TransitFieldsPerSec float64 `json:"transit_fields_per_sec"`
	Batches             int64   `json:"batches"`
	Partitions          int     `json:"partitions"`
}

func bridgeValue(i int) []byte {
	v, _ := json.Marshal(map[string]any{
		"id": i, "Name": sampleNames[i%len(sampleNames)], "Address": sampleAddresses[i%len(sampleAddresses)],
		"credit_card": cardNumber(i), "amount": i % 1000,
	})
	return v
}

func (e *env) bridgeThroughput(ctx context.Context) (*bridgeResult, error) {
	gw, pol, err := e.gatewayFor(ctx, "bridge", bridgeTarget)
	if err != nil {
		return nil, err
	}
	n := e.cfg.BridgeRecords
	// Fill the source topic first (untimed), as fast as sarama goes.
	if err := e.fill(bridgeSource, n, bridgeValue); err != nil {
		return nil, err
	}
	ks := *gw.Kafka.Settings()
	b, err := bridge.New(bridge.Config{
		Source: bridgeSource, Target: bridgeTarget, Policy: pol, Engine: gw.Engine, Kafka: &ks,
		StatsInterval: -1, Logger: e.log,
	})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }() // ends with rctx
	defer func() { cancel(); <-done }()

	st := b.Stats()
	var start time.Time
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Minute)
	for st.Produced.Load()+st.DeadLettered.Load() < int64(n) {
		select {
		case <-tick.C:
		case err := <-done:
			done <- err
			return nil, fmt.Errorf("bridge stopped early: %w", err)
		case <-limit:
			return nil, fmt.Errorf("bridge: %d of %d records in 10 minutes", st.Produced.Load(), n)
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if start.IsZero() && st.Consumed.Load() > 0 {
			start = time.Now()
		}
	}
	d := time.Since(start)
	s := st.Snapshot()
	if s.DeadLettered != 0 {
		return nil, fmt.Errorf("bridge: %d records dead-lettered", s.DeadLettered)
	}
	r := &bridgeResult{Records: int64(n), RecordsPerSec: float64(n) / d.Seconds(), Batches: s.Batches, Partitions: 4}
	r.TransitFieldsPerSec = r.RecordsPerSec
	e.progress("bridge %.0f records/s (%d batches)", r.RecordsPerSec, s.Batches)
	return r, nil
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
