package kafkaproxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// plainAuth is a SASL PLAIN authenticator over a fixed user table, for
// giving test clients distinct principals.
type plainAuth map[string]string

func (plainAuth) Mechanisms() []string { return []string{"PLAIN"} }

func (a plainAuth) Start(string) (kafkaproxy.SASLSession, error) { return a, nil }

func (a plainAuth) Step(msg []byte) ([]byte, bool, string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || a[string(parts[1])] == "" || a[string(parts[1])] != string(parts[2]) {
		return nil, false, "", errors.New("bad credentials")
	}
	return nil, true, string(parts[1]), nil
}

// rightSet is "right:topic" entries.
type rightSet map[string]bool

func (r rightSet) Can(right, topic string) bool { return r[right+":"+topic] }

// TestNoConsumeRightNeverSeesPlaintext: a principal that may produce but
// not consume gets TOPIC_AUTHORIZATION_FAILED (fetch_denied = error, the
// default) or the ciphertext as stored (fetch_denied = stored), never
// the plaintext; a principal with the consume right gets the plaintext.
func TestNoConsumeRightNeverSeesPlaintext(t *testing.T) {
	rights := map[string]rightSet{
		"writer": {"produce:orders": true, "produce:vaulted": true},
		"reader": {"consume:orders": true, "consume:vaulted": true},
	}
	logs := &testkit.SyncBuffer{}
	f := setupLogged(t, server.ProxyOptions{
		Auth:   plainAuth{"writer": "w-secret", "reader": "r-secret"},
		Rights: func(p string) kafkaproxy.Rights { return rights[p] },
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	as := func(user, pass string, opts ...kgo.Opt) []kgo.Opt {
		return append([]kgo.Opt{kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism())}, opts...)
	}
	writer := kgoClient(t, f.proxy, as("writer", "w-secret", kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf(`{"id":%d,"name":"n%d","card":"6200-0000-%04d"}`, i, i, i))
	}
	for _, topic := range []string{"orders", "vaulted"} {
		for _, v := range want {
			if err := writer.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("writer produce %s: %v", topic, err)
			}
		}
	}

	// fetch_denied = error: the writer's fetch of orders is refused.
	wc := kgoClient(t, f.proxy, as("writer", "w-secret", kgo.ConsumeTopics("orders"), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	var denied error
	for denied == nil && ctx.Err() == nil {
		fs := wc.PollFetches(ctx)
		for _, r := range fs.Records() {
			t.Fatalf("writer got a record of orders without the consume right: %s", r.Value)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if denied == nil && ctx.Err() == nil {
				denied = err
			}
		})
	}
	if !errors.Is(denied, kerr.TopicAuthorizationFailed) {
		t.Fatalf("writer fetching orders: %v, want TOPIC_AUTHORIZATION_FAILED", denied)
	}
	wc.Close()

	// fetch_denied = stored: the writer gets the ciphertext.
	stored := consumeUntil(t, f.proxy, "vaulted", kgo.ReadCommitted(), func(r []*kgo.Record) bool { return len(r) >= len(want) },
		as("writer", "w-secret")...)
	for _, r := range stored {
		if strings.Contains(string(r.Value), "6200-0000") || !strings.Contains(string(r.Value), `"card":"vault:v1:`) {
			t.Fatalf("writer without the consume right got %s, want the ciphertext", r.Value)
		}
	}

	// The reader gets the plaintext of both.
	for _, topic := range []string{"orders", "vaulted"} {
		got := consumeUntil(t, f.proxy, topic, kgo.ReadCommitted(), func(r []*kgo.Record) bool { return len(r) >= len(want) },
			as("reader", "r-secret")...)
		for i, r := range got {
			if string(r.Value) != want[i] {
				t.Fatalf("reader %s record %d: %s, want %s", topic, i, r.Value, want[i])
			}
		}
	}

	// Metrics: requests by API and result, records by mode; the logs and
	// the metrics name no record content.
	rec := httptest.NewRecorder()
	f.gw.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	m := rec.Body.String()
	for _, want := range []string{
		`kafkagate_proxy_requests_total{api="Produce",result="ok"}`,
		`kafkagate_proxy_requests_total{api="Fetch",result="refused"}`,
		`kafkagate_proxy_requests_total{api="SASLAuthenticate",result="ok"}`,
		`kafkagate_records_total{mode="fields",op="encrypt",outcome="ok",topic="vaulted"} 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(logs.String(), "kafka proxy") {
		t.Fatal("no proxy log lines captured")
	}
	for _, s := range []string{"6200-0000", "w-secret", "r-secret"} {
		if strings.Contains(logs.String(), s) || strings.Contains(m, s) {
			t.Fatalf("%q in the logs or metrics", s)
		}
	}
}
