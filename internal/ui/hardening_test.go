package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/ui"
)

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}

// TestViewerPageHoldsNoData: without credentials the page names no topic
// but the one in its own address, no cluster id, key or policy detail;
// they come from /ui/api, which lists only the topics a principal holds a
// right on (every topic for admin) and gives the policy and cluster id
// with the records.
func TestViewerPageHoldsNoData(t *testing.T) {
	const topic = "purchases_encrypted"
	admin, adminLine := token(t, "operator", "admin")
	producer, producerLine := token(t, "app", "produce:"+topic)
	s := serve(t, adminLine, producerLine)
	s.produce(t, producer, topic, newPurchase())
	for _, path := range []string{"/ui/", "/ui/?topic=" + topic, "/ui/?topic=purchases"} {
		code, page := s.get(t, "", path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		for _, secret := range []string{s.cid, "purchases_large_encrypted", "kafka-purchases", "kafkagate-envelope", "payments.card_number", "transit key", "policy: "} {
			if bytes.Contains(page, []byte(secret)) {
				t.Errorf("GET %s without credentials shows %q:\n%s", path, secret, page)
			}
		}
	}
	var mine struct {
		Topics []string `json:"topics"`
	}
	getJSON(t, s, producer, "/ui/api/topics", &mine)
	if !slices.Equal(mine.Topics, []string{topic}) {
		t.Errorf("topics for produce:%s: %v, want only that topic", topic, mine.Topics)
	}
	var all struct {
		Topics []string `json:"topics"`
	}
	getJSON(t, s, admin, "/ui/api/topics", &all)
	for _, want := range []string{"purchases", topic, "purchases_large_encrypted"} {
		if !slices.Contains(all.Topics, want) {
			t.Errorf("admin's topics %v lack %s", all.Topics, want)
		}
	}
	var recs ui.RecordsResponse
	getJSON(t, s, admin, "/ui/api/records?topic="+topic, &recs)
	if recs.ClusterID != s.cid || recs.Policy == nil || recs.Policy.Mode != "fields" || recs.Policy.Key != "kafka-"+topic || len(recs.Policy.Fields) != 3 {
		t.Errorf("records answer: cluster %q, policy %+v; want the cluster id and the fields policy", recs.ClusterID, recs.Policy)
	}
}

// TestViewerAdminSeesNothingInClear: an admin without consume:<topic>
// gets no byte stored in clear: not the record key, not a header value,
// not a field the policy leaves in clear; only the transit ciphertexts,
// header names, key names and versions, offsets and sizes.
func TestViewerAdminSeesNothingInClear(t *testing.T) {
	const topic = "purchases_encrypted"
	admin, adminLine := token(t, "operator", "admin")
	producer, producerLine := token(t, "app", "produce:"+topic)
	s := serve(t, adminLine, producerLine)
	p := newPurchase()
	clear := []string{"key-secret-7731", "header-secret-7731", "note-secret-7731", "987654321"}
	s.produceRecord(t, producer, topic, map[string]any{
		"key":     map[string]any{"type": "STRING", "data": clear[0]},
		"headers": []map[string]any{{"name": "trace", "value": b64(clear[1])}},
		"value": map[string]any{"type": "JSON", "data": map[string]any{
			"Name": p.Name, "Address": p.Address, "credit_card": p.CreditCard, "note": clear[2], "amount": 987654321, "nested": map[string]any{"flag": true},
		}},
	})
	code, raw := s.get(t, admin, "/ui/api/records?topic="+topic)
	if code != http.StatusOK {
		t.Fatalf("admin: %d %s", code, raw)
	}
	assertNoPlaintext(t, "admin view", raw, p)
	for _, c := range clear {
		if bytes.Contains(raw, []byte(c)) {
			t.Errorf("admin view holds %q, stored in clear:\n%s", c, raw)
		}
	}
	var v ui.RecordsResponse
	if err := json.Unmarshal(raw, &v); err != nil || len(v.Records) != 1 {
		t.Fatalf("admin view: %v %s", err, raw)
	}
	st := v.Records[0].Stored
	if st.Value == nil || strings.Count(*st.Value, "vault:v1:") != 2 || !strings.Contains(*st.Value, `"note"`) || !st.KeyWithheld || st.Key != nil || st.ValueSize == 0 {
		t.Errorf("stored form for admin: %+v; want the two transit ciphertexts, field names, the key withheld and the size", st)
	}
	var sawFields, sawTrace bool
	for _, h := range st.Headers {
		switch h.Name {
		case "kafkagate.fields":
			sawFields = h.Value != "" && !h.Withheld
		case "trace":
			sawTrace = h.Withheld && h.Value == ""
		}
	}
	if !sawFields || !sawTrace {
		t.Errorf("headers for admin: %+v; want kafkagate.fields shown and trace withheld", st.Headers)
	}
	if len(st.Keys) == 0 {
		t.Errorf("admin sees no key versions: %+v", st)
	}
}

// TestViewerAPIRateLimited: /ui/api calls count against the principal's
// rate limit, shared with the REST API: over it, 429 (error_code 429) with
// Retry-After from both.
func TestViewerAPIRateLimited(t *testing.T) {
	reader, readerLine := token(t, "reader", "consume:purchases_encrypted")
	s := serveWith(t, "rate_limit = 0.2\nrate_burst = 2", readerLine)
	for i := range 2 {
		if code, body := s.get(t, reader, "/ui/api/topics"); code != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, code, body)
		}
	}
	for _, path := range []string{"/ui/api/topics", "/ui/api/records?topic=purchases_encrypted", "/v3/clusters"} {
		req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			ErrorCode int `json:"error_code"`
		}
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != http.StatusTooManyRequests || e.ErrorCode != httpapi.CodeRateLimited || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s over the limit: %d %s (Retry-After %q), want 429 %d", path, resp.StatusCode, b, resp.Header.Get("Retry-After"), httpapi.CodeRateLimited)
		}
	}
}

// TestViewerTopicListThrottled: page polls do not each refresh Kafka's
// metadata: within TopicsTTL the viewer lists the cluster's topics once,
// however many /ui/api calls arrive.
func TestViewerTopicListThrottled(t *testing.T) {
	s := serve(t)
	s.produce(t, "", "purchases_encrypted", newPurchase())
	var refreshes atomic.Int32
	h := ui.New(ui.Config{Kafka: s.gw.Kafka, Engine: s.gw.Engine, Policies: s.gw.Config.Policies, TopicsTTL: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Topics: func(ctx context.Context) ([]string, error) {
			refreshes.Add(1)
			cl := s.gw.Kafka.Sarama()
			if err := cl.RefreshMetadata(); err != nil {
				return nil, err
			}
			return cl.Topics()
		}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for i := range 50 {
		for _, path := range []string{"/ui/api/topics", "/ui/api/records?topic=purchases_encrypted"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (i == 0 && strings.Contains(path, "records") && !strings.Contains(string(b), `"exists":true`)) {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
			}
		}
	}
	if n := refreshes.Load(); n != 1 {
		t.Errorf("100 viewer calls refreshed the topic list %d times, want 1", n)
	}
}
