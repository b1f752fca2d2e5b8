package server_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// The gateway's /metrics reflects what a produce did: the HTTP request,
// the merged Vault call, the records encrypted.
func TestMetricsAfterProduce(t *testing.T) {
	f := setup(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"value":{"type":"JSON","data":{"Name":"Ann","Address":"` + strings.Repeat("x", i) + `","credit_card":"4111"}}}`
			resp, err := http.Post(f.url("purchases"), "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("produce: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	_, b := testkit.Do(t, nil, http.MethodGet, f.srv.URL+"/metrics", "", "")
	out := string(b)
	for _, want := range []string{
		`kafkagate_http_requests_total{code="200",method="POST",route="/v3/clusters/{cluster_id}/topics/{topic}/records"} 20`,
		`kafkagate_records_total{mode="fields",op="encrypt",outcome="ok",topic="purchases"} 20`,
		`kafkagate_vault_batch_items_sum{op="encrypt"} 60`,
		`kafkagate_dek_cache_hits_total{op="seal"} 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(out, `kafkagate_vault_batch_calls_total{op="encrypt",outcome="ok"}`) {
		t.Error("no Vault calls counted")
	}
}
