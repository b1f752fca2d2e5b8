package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestV2TopicPatternFindsNewTopics: a topic_pattern subscription that
// matches nothing yet picks up a matching topic created later, at a fetch
// after PatternRefresh, and returns its records.
func TestV2TopicPatternFindsNewTopics(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	ks := testkit.KafkaSettings(t, env.Brokers)
	kc := testkit.KafkaClient(t, ks)
	cfg := testkit.Config(t, "[policy:pat.one]\nmode = passthrough\n")
	eng, vc := testkit.Engine(t, env, cfg.Policies, 3*time.Second)
	api := httpapi.New(httpapi.Config{Engine: eng, Policies: cfg.Policies, Kafka: kc, Vault: vc, Logger: testkit.Quiet(),
		V2: httpapi.V2Config{PatternRefresh: 500 * time.Millisecond, SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond}})
	t.Cleanup(api.Close)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	call := func(method, url, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", httpapi.MediaV2)
		}
		return testkit.Call(t, nil, req)
	}
	base := srv.URL + "/consumers/pg/instances/i1"
	if resp, b := call(http.MethodPost, srv.URL+"/consumers/pg", `{"name":"i1","format":"string","auto.offset.reset":"earliest"}`); resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(http.MethodPost, base+"/subscription", `{"topic_pattern":"pat\\..*"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	if _, b := call(http.MethodGet, base+"/subscription", ""); string(b) != `{"topics":[]}`+"\n" {
		t.Fatalf("subscription before the topic exists: %s", b)
	}
	testkit.Produce(t, kc, kafka.Message{Topic: "pat.one", Partition: 0, Value: []byte("hello")})
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the new matching topic's record did not arrive within a minute")
		}
		resp, b := call(http.MethodGet, base+"/records?timeout=500", "")
		if resp.StatusCode != 200 {
			t.Fatalf("records: %d %s", resp.StatusCode, b)
		}
		var recs []struct {
			Topic string          `json:"topic"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(b, &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 {
			if len(recs) != 1 || recs[0].Topic != "pat.one" || string(recs[0].Value) != `"hello"` {
				t.Fatalf("records %s", b)
			}
			break
		}
	}
	if _, b := call(http.MethodGet, base+"/subscription", ""); string(b) != `{"topics":["pat.one"]}`+"\n" {
		t.Fatalf("subscription after the topic appeared: %s", b)
	}
}
