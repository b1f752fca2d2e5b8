package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// The field values of every section: what a purchases record carries.
var (
	sampleNames     = []string{"Ann Example", "Bo Li", "Carla Mendes-Ortega", "Dmitri Ivanov", "Eve O'Neil", "Farah Haddad"}
	sampleAddresses = []string{"1 Main St, Springfield", "221B Baker Street, London", "Rua Augusta 100, Lisboa", "5 Rue de Rivoli, 75001 Paris"}
	sampleCards     = []string{"4111-1111-1111-1111", "5500-0000-0000-0004", "3400-000000-00009", "2516-2848-6785-9087"}
)

// vaultCeiling is Vault's own throughput: transit/encrypt with batch_input
// sent by a client that does nothing else (bodies encoded in advance,
// answers only counted), best of several batch sizes and concurrencies.
type vaultCeiling struct {
	FieldsPerSec float64      `json:"fields_per_sec"`
	Batch        int          `json:"batch"`
	InFlight     int          `json:"in_flight"`
	Points       []vaultPoint `json:"points"`
	// CPU is each process's CPU time at the best point, per field (and
	// per record of three fields): Vault's own cost of a field.
	CPU []ProcCPU `json:"cpu"`
}

type vaultPoint struct {
	Batch        int     `json:"batch"`
	InFlight     int     `json:"in_flight"`
	FieldsPerSec float64 `json:"fields_per_sec"`
}

const ceilingKey = "bench-ceiling"

func (e *env) transit() *transit.Client { return transit.New(e.vc, transit.Options{}) }

func (e *env) vaultCeiling(ctx context.Context) (*vaultCeiling, error) {
	if err := e.transit().EnsureKey(ctx, ceilingKey, transit.KeySpec{}); err != nil {
		return nil, err
	}
	batches, inflights := []int{100, 250, 500, 1000}, []int{1, 2, 3, 4}
	if e.cfg.Quick {
		batches, inflights = []int{100, 500}, []int{1, 2}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	url := e.vault.Addr + "/v1/transit/encrypt/" + ceilingKey
	res := &vaultCeiling{}
	for _, n := range batches {
		body, err := ceilingBody(n)
		if err != nil {
			return nil, err
		}
		call := func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("X-Vault-Token", e.vault.Token)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || bytes.Count(out, []byte(`"ciphertext"`)) != n {
				return fmt.Errorf("vault ceiling: HTTP %d, %d results for %d items", resp.StatusCode, bytes.Count(out, []byte(`"ciphertext"`)), n)
			}
			return nil
		}
		if err := call(); err != nil { // warm the connection and the key
			return nil, err
		}
		for _, inf := range inflights {
			meter := e.meter()
			ops, d, err := closedLoop(ctx, inf, e.cfg.Point, call)
			if err != nil {
				return nil, err
			}
			fields := float64(ops * int64(n))
			cpu := meter.stop(fields/3, fields)
			p := vaultPoint{Batch: n, InFlight: inf, FieldsPerSec: fields / d.Seconds()}
			res.Points = append(res.Points, p)
			if p.FieldsPerSec > res.FieldsPerSec {
				res.FieldsPerSec, res.Batch, res.InFlight, res.CPU = p.FieldsPerSec, n, inf, cpu
			}
		}
	}
	e.progress("vault ceiling %.0f fields/s (batch %d, %d in flight)", res.FieldsPerSec, res.Batch, res.InFlight)
	return res, nil
}

// ceilingBody is a batch_input request of n fields shaped like kafkagate's:
// purchase field values with topic+path associated data.
func ceilingBody(n int) ([]byte, error) {
	items := make([]map[string]string, n)
	paths := []string{"Name", "Address", "credit_card"}
	for i := range items {
		var v string
		switch i % 3 {
		case 0:
			v = sampleNames[i%len(sampleNames)]
		case 1:
			v = sampleAddresses[i%len(sampleAddresses)]
		default:
			v = sampleCards[i%len(sampleCards)]
		}
		items[i] = map[string]string{
			"plaintext":       base64.StdEncoding.EncodeToString([]byte(v)),
			"associated_data": base64.StdEncoding.EncodeToString(protect.AAD("purchases", paths[i%3])),
		}
	}
	b, err := json.Marshal(map[string]any{"batch_input": items, "partial_failure_response_code": 207})
	if err != nil {
		return nil, fmt.Errorf("vault ceiling body: %w", err)
	}
	return b, nil
}

// closedLoop runs fn in n goroutines for d and returns how many calls
// finished and the time they took.
func closedLoop(ctx context.Context, n int, d time.Duration, fn func() error) (int64, time.Duration, error) {
	var (
		ops   atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		ferr  error
		start = time.Now()
	)
	deadline := start.Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := fn(); err != nil {
					once.Do(func() { ferr = err })
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if ferr == nil {
		ferr = ctx.Err()
	}
	return ops.Load(), time.Since(start), ferr
}

// demoResult is the original demo's encryptor pattern: for each record,
// one synchronous transit call per field (two fields), then an
// asynchronous produce.
type demoResult struct {
	RecordsPerSec float64   `json:"records_per_sec"`
	FieldsPerSec  float64   `json:"fields_per_sec"`
	Records       int64     `json:"records"`
	CPU           []ProcCPU `json:"cpu"`
}

func (e *env) demoPattern(ctx context.Context) (*demoResult, error) {
	// The demo's key is named "transit" (not derived), its calls carry no
	// associated data; its card field went to Vault Transform (Enterprise),
	// here it is a second transit call, the same round trip.
	if err := e.transit().EnsureKey(ctx, "transit", transit.KeySpec{}); err != nil {
		return nil, err
	}
	ks, err := kafka.Configure(map[string]string{"bootstrap.servers": e.brokers[0]}, e.log)
	if err != nil {
		return nil, err
	}
	prod, err := sarama.NewAsyncProducer(ks.Brokers, ks.Sarama)
	if err != nil {
		return nil, fmt.Errorf("demo producer: %w", err)
	}
	acked := make(chan int64, 1)
	go func() { // ends when the producer is closed
		var n int64
		for range prod.Successes() {
			n++
		}
		acked <- n
	}()
	go func() { // ends when the producer is closed
		for range prod.Errors() {
		}
	}()
	encrypt := func(v string) (string, error) {
		d, err := e.vc.Write(ctx, "transit/encrypt/transit", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte(v))})
		if err != nil {
			return "", err
		}
		ct, _ := d["ciphertext"].(string)
		return ct, nil
	}
	var n int64
	var werr error
	meter := e.meter()
	start := time.Now()
	deadline := start.Add(e.cfg.Point)
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		addr, err := encrypt(sampleAddresses[i%len(sampleAddresses)])
		if err != nil {
			werr = err
			break
		}
		card, err := encrypt(sampleCards[i%len(sampleCards)])
		if err != nil {
			werr = err
			break
		}
		v, _ := json.Marshal(map[string]string{"Name": sampleNames[i%len(sampleNames)], "Address": addr, "credit_card": card})
		prod.Input() <- &sarama.ProducerMessage{Topic: "bench-demo", Value: sarama.ByteEncoder(v)}
		n++
	}
	prod.AsyncClose()
	if got := <-acked; werr == nil && got != n {
		werr = fmt.Errorf("demo: %d of %d records acknowledged", got, n)
	}
	d := time.Since(start) // until the last record is acknowledged
	if werr != nil {
		return nil, werr
	}
	r := &demoResult{Records: n, RecordsPerSec: float64(n) / d.Seconds(), CPU: meter.stop(float64(n), float64(2*n))}
	r.FieldsPerSec = 2 * r.RecordsPerSec
	e.progress("demo pattern %.0f records/s", r.RecordsPerSec)
	return r, nil
}
