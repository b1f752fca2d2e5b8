package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// restResult is REST produce in transit mode through the built gateway
// (`gateway serve`, a process of its own) over loopback HTTP, the bench
// process generating the load: requests of 10 records, then of one record
// (as a plain REST Proxy client posts), against the same Vault.
type restResult struct {
	Batched *restMode `json:"batched"`
	Single  *restMode `json:"single"`
}

// restMode is one request shape: the saturating throughput of closed-loop
// clients with each process's CPU time and the Vault calls over the whole
// sweep, then the latency of an open-loop load.
type restMode struct {
	Clients       int         `json:"clients"`
	RecordsPerReq int         `json:"records_per_request"`
	FieldsPerRec  int         `json:"fields_per_record"`
	RecordsPerSec float64     `json:"records_per_sec"`
	FieldsPerSec  float64     `json:"fields_per_sec"`
	Points        []restPoint `json:"points"`
	// CPU is each process's CPU time over the saturation sweep, per
	// record and per transit field.
	CPU []ProcCPU `json:"cpu"`
	// VaultCallsPer1k is the gateway's transit encrypt calls per 1,000
	// records over the sweep (its /metrics), ItemsPerCall their mean size.
	VaultCallsPer1k float64 `json:"vault_calls_per_1k_records"`
	ItemsPerCall    float64 `json:"vault_items_per_call"`
	// The open loop: requests/s, p50, p99, starts behind schedule.
	LoadReqSec float64 `json:"latency_requests_per_sec"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Late       int     `json:"late_starts"`
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

// restSingleRate is the open-loop rate of single-record requests.
func (c Config) restSingleRate() float64 {
	if c.Quick {
		return 200
	}
	return 1000
}

func (e *env) restProduce(ctx context.Context) (*restResult, error) {
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	base := "http://" + addr
	args, pprofBase, err := e.withPprof([]string{"serve", "--listen", addr})
	if err != nil {
		return nil, err
	}
	if err := e.startGateway(ctx, base+"/metrics", args...); err != nil {
		return nil, err
	}
	defer func() { _ = e.stopGateway() }()

	maxClients := 2 * slices.Max(e.cfg.RESTClients)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * maxClients, MaxIdleConns: 2 * maxClients}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	cid, err := clusterID(ctx, hc, base)
	if err != nil {
		return nil, err
	}
	url := base + "/v3/clusters/" + cid + "/topics/" + restTopic + "/records"
	res := &restResult{}
	if res.Batched, err = e.restMode(ctx, hc, url, base+"/metrics", pprofBase, e.cfg.RESTRecordsPerRequest, e.cfg.RESTClients, 0); err != nil {
		return nil, err
	}
	// One record per request: twice the clients, so as many requests are
	// in flight for the batcher to merge; then a fixed request rate.
	single := make([]int, len(e.cfg.RESTClients))
	for i, n := range e.cfg.RESTClients {
		single[i] = 2 * n
	}
	if res.Single, err = e.restMode(ctx, hc, url, base+"/metrics", pprofBase, 1, single, e.cfg.restSingleRate()); err != nil {
		return nil, err
	}
	return res, e.stopGateway()
}

// withPprof adds --pprof to the gateway's args when gateway profiles are
// asked for, and returns the base URL of its pprof server ("" if not).
func (e *env) withPprof(args []string) ([]string, string, error) {
	if e.cfg.GatewayProfileDir == "" {
		return args, "", nil
	}
	pa, err := loopbackAddr()
	if err != nil {
		return nil, "", err
	}
	return append(args, "--pprof", pa), "http://" + pa, nil
}

// gatewayProfile fetches a CPU profile of d from the gateway process's
// pprof server into GatewayProfileDir/name; the channel gets its outcome.
func (e *env) gatewayProfile(ctx context.Context, pprofBase string, d time.Duration, name string) <-chan error {
	done := make(chan error, 1)
	secs := max(1, int(d.Round(time.Second)/time.Second))
	go func() { // ends when the profile (d long) is written
		done <- func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", pprofBase, secs), nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("gateway profile: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("gateway profile: HTTP %d", resp.StatusCode)
			}
			if err := os.MkdirAll(e.cfg.GatewayProfileDir, 0o755); err != nil {
				return fmt.Errorf("gateway profile: %w", err)
			}
			f, err := os.Create(filepath.Join(e.cfg.GatewayProfileDir, name))
			if err != nil {
				return fmt.Errorf("gateway profile: %w", err)
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return fmt.Errorf("gateway profile: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("gateway profile: %w", err)
			}
			e.progress("gateway CPU profile written to %s", f.Name())
			return nil
		}()
	}()
	return done
}

// clusterID is the gateway's one cluster.
func clusterID(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v3/clusters", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("rest clusters: %w", err)
	}
	defer resp.Body.Close()
	var v struct {
		Data []struct {
			ClusterID string `json:"cluster_id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Data) == 0 {
		return "", fmt.Errorf("rest clusters: HTTP %d: %v", resp.StatusCode, err)
	}
	return v.Data[0].ClusterID, nil
}

// restMode measures one request shape: perReq records per request,
// saturation over clients, then an open loop at rate requests/s (0: half
// the saturating request rate). With pprofBase, the gateway process's CPU
// profile of the saturation sweep is written to GatewayProfileDir.
func (e *env) restMode(ctx context.Context, hc *http.Client, url, metricsURL, pprofBase string, perReq int, clients []int, rate float64) (*restMode, error) {
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = restBody(perReq, i)
	}
	var next atomic.Int64
	post := func() error {
		b := bodies[next.Add(1)%int64(len(bodies))]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
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
	m := &restMode{RecordsPerReq: perReq, FieldsPerRec: 3}
	before, err := scrape(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	var profiled <-chan error
	if pprofBase != "" {
		sweep := time.Duration(len(clients)) * e.cfg.Point
		profiled = e.gatewayProfile(ctx, pprofBase, sweep, fmt.Sprintf("gateway-rest-%d-per-request.pprof", perReq))
	}
	meter := e.meter()
	var total int64
	for _, n := range clients {
		ops, d, err := closedLoop(ctx, n, e.cfg.Point, post)
		if err != nil {
			return nil, err
		}
		total += ops * int64(perReq)
		p := restPoint{Clients: n, RecordsPerSec: float64(ops*int64(perReq)) / d.Seconds()}
		m.Points = append(m.Points, p)
		e.progress("rest %d×%d records: %.0f records/s", n, perReq, p.RecordsPerSec)
		if p.RecordsPerSec > m.RecordsPerSec {
			m.RecordsPerSec, m.Clients = p.RecordsPerSec, n
		}
	}
	m.CPU = meter.stop(float64(total), float64(total*int64(m.FieldsPerRec)))
	if profiled != nil {
		if err := <-profiled; err != nil {
			return nil, err
		}
	}
	after, err := scrape(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	calls := metricSum(after, "kafkagate_vault_batch_calls_total", `op="encrypt"`) - metricSum(before, "kafkagate_vault_batch_calls_total", `op="encrypt"`)
	items := metricSum(after, "kafkagate_vault_batch_items_sum", `op="encrypt"`) - metricSum(before, "kafkagate_vault_batch_items_sum", `op="encrypt"`)
	if total > 0 {
		m.VaultCallsPer1k = calls * 1000 / float64(total)
	}
	if calls > 0 {
		m.ItemsPerCall = items / calls
	}
	m.FieldsPerSec = m.RecordsPerSec * float64(m.FieldsPerRec)

	// Open loop: requests started on a fixed schedule, each timed from
	// its scheduled start, so queueing delay counts.
	m.LoadReqSec = rate
	if rate <= 0 {
		m.LoadReqSec = m.RecordsPerSec / float64(perReq) / 2
	}
	lat, late, err := openLoop(ctx, m.LoadReqSec, 2*e.cfg.Point, post)
	if err != nil {
		return nil, err
	}
	m.Late = late
	m.P50ms, m.P99ms = percentile(lat, 0.50), percentile(lat, 0.99)
	e.progress("rest %d record(s)/request: saturation %.0f records/s (%d clients), %.1f Vault calls per 1,000 records (%.0f items each); %.0f req/s: p50 %.1f ms, p99 %.1f ms",
		perReq, m.RecordsPerSec, m.Clients, m.VaultCallsPer1k, m.ItemsPerCall, m.LoadReqSec, m.P50ms, m.P99ms)
	return m, nil
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
