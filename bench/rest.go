package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/gateway"
)

// restResult is REST produce in transit mode through the real gateway
// handler over loopback HTTP: the saturating throughput of closed-loop
// clients, then the latency of an open-loop load at half that rate.
type restResult struct {
	Clients        int         `json:"clients"`
	RecordsPerReq  int         `json:"records_per_request"`
	FieldsPerRec   int         `json:"fields_per_record"`
	RecordsPerSec  float64     `json:"records_per_sec"`
	FieldsPerSec   float64     `json:"fields_per_sec"`
	Points         []restPoint `json:"points"`
	HalfLoadReqSec float64     `json:"half_load_requests_per_sec"`
	P50ms          float64     `json:"p50_ms"`
	P99ms          float64     `json:"p99_ms"`
	Late           int         `json:"late_starts"` // half-load requests that started behind schedule
}

type restPoint struct {
	Clients       int     `json:"clients"`
	RecordsPerSec float64 `json:"records_per_sec"`
}

// restBody is one streaming-mode request: n purchase records with three
// transit fields each, concatenated JSON objects.
func restBody(n, seed int) []byte {
	var b bytes.Buffer
	for i := range n {
		j := seed*n + i
		v := map[string]any{"partition_id": j % 4, "value": map[string]any{"type": "JSON", "data": map[string]any{
			"Name": sampleNames[j%len(sampleNames)], "Address": sampleAddresses[j%len(sampleAddresses)],
			"credit_card": sampleCards[j%len(sampleCards)], "amount": j % 1000, "currency": "EUR",
		}}}
		_ = json.NewEncoder(&b).Encode(v)
	}
	return b.Bytes()
}

func (e *env) restProduce(ctx context.Context) (*restResult, error) {
	gw, err := e.gateway(ctx)
	if err != nil {
		return nil, err
	}
	cid, err := gw.Kafka.ClusterID(ctx)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rest listener: %w", err)
	}
	srv := gateway.NewHTTPServer(gw.Handler(), 0)
	served := make(chan struct{})
	go func() { // ends when srv is closed below
		defer close(served)
		_ = srv.Serve(l)
	}()
	defer func() { _ = srv.Close(); <-served }()

	maxClients := slices.Max(e.cfg.RESTClients)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * maxClients, MaxIdleConns: 4 * maxClients}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	url := "http://" + l.Addr().String() + "/v3/clusters/" + cid + "/topics/" + restTopic + "/records"
	perReq := e.cfg.RESTRecordsPerRequest
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = restBody(perReq, i)
	}
	var seq sync.Mutex
	next := 0
	body := func() []byte {
		seq.Lock()
		defer seq.Unlock()
		next++
		return bodies[next%len(bodies)]
	}
	post := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("rest produce: %w", err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("rest produce: %w", err)
		}
		// Every record must be acknowledged with its fields encrypted.
		if resp.StatusCode != http.StatusOK || bytes.Count(out, []byte(`"error_code":200`)) != perReq {
			return fmt.Errorf("rest produce: HTTP %d: %.300s", resp.StatusCode, out)
		}
		return nil
	}
	if err := post(); err != nil { // warm up: key, topic, connections
		return nil, err
	}
	res := &restResult{RecordsPerReq: perReq, FieldsPerRec: 3}
	for _, n := range e.cfg.RESTClients {
		ops, d, err := closedLoop(ctx, n, e.cfg.Point, post)
		if err != nil {
			return nil, err
		}
		p := restPoint{Clients: n, RecordsPerSec: float64(ops*int64(perReq)) / d.Seconds()}
		res.Points = append(res.Points, p)
		e.progress("rest %d clients: %.0f records/s", n, p.RecordsPerSec)
		if p.RecordsPerSec > res.RecordsPerSec {
			res.RecordsPerSec, res.Clients = p.RecordsPerSec, n
		}
	}
	res.FieldsPerSec = res.RecordsPerSec * float64(res.FieldsPerRec)

	// Half load: requests started on a fixed schedule (open loop), each
	// timed from its scheduled start, so queueing delay counts.
	res.HalfLoadReqSec = res.RecordsPerSec / float64(perReq) / 2
	lat, late, err := openLoop(ctx, res.HalfLoadReqSec, 2*e.cfg.Point, post)
	if err != nil {
		return nil, err
	}
	res.Late = late
	res.P50ms, res.P99ms = percentile(lat, 0.50), percentile(lat, 0.99)
	e.progress("rest saturation %.0f records/s (%d clients); half load %.0f req/s: p50 %.1f ms, p99 %.1f ms",
		res.RecordsPerSec, res.Clients, res.HalfLoadReqSec, res.P50ms, res.P99ms)
	return res, nil
}

// openLoop starts fn rate times a second for d, each call in a goroutine
// of its own, and returns each call's latency measured from its scheduled
// start, and how many started late by more than one interval.
func openLoop(ctx context.Context, rate float64, d time.Duration, fn func() error) ([]time.Duration, int, error) {
	if rate <= 0 {
		return nil, 0, fmt.Errorf("open loop: rate %.2f", rate)
	}
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	var (
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, n)
		ferr error
		wg   sync.WaitGroup
		late int
	)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
			}
		} else if -w > interval {
			late++
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn()
			took := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && ferr == nil {
				ferr = err
			}
			lat = append(lat, took)
		}()
	}
	wg.Wait()
	if ferr == nil {
		ferr = ctx.Err()
	}
	return lat, late, ferr
}

// percentile is the q quantile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}
