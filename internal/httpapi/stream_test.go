package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/kgclient"
)

// countingStreamer counts the streams open, to see them closed, and keeps
// the options of the last one.
type countingStreamer struct {
	kc   *kafka.Client
	open atomic.Int32
	last atomic.Pointer[kafka.StreamOptions]
}

func (c *countingStreamer) OpenStream(ctx context.Context, o kafka.StreamOptions) (kafka.RecordStream, error) {
	c.last.Store(&o)
	st, err := c.kc.OpenStream(ctx, o)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countedStream{RecordStream: st, c: c}, nil
}

type countedStream struct {
	kafka.RecordStream
	c *countingStreamer
}

func (s *countedStream) Close() error {
	err := s.RecordStream.Close()
	s.c.open.Add(-1)
	return err
}

type streamFixture struct {
	// client bounds every request with its body, so that a stream that
	// should have been refused fails the test instead of hanging it.
	client *http.Client
	env    *testkit.Env
	srv    *httptest.Server
	base   string
	prod   *kgclient.Producer
	st     *countingStreamer
}

func setupStream(t *testing.T, maxStreams int) *streamFixture {
	t.Helper()
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	quiet := testkit.Quiet()
	ks := testkit.KafkaSettings(t, env.Brokers)
	ks.Sarama.Consumer.MaxWaitTime = 50 * time.Millisecond
	kc := testkit.KafkaClient(t, ks)
	cfg := testkit.Config(t, "[policy:purchases]\nfields = Name transit, Address transit\n")
	eng, vc := testkit.Engine(t, env, cfg.Policies, 3*time.Second)
	st := &countingStreamer{kc: kc}
	api := httpapi.New(httpapi.Config{Engine: eng, Policies: cfg.Policies, Kafka: kc, Vault: vc, Logger: quiet,
		Stream: httpapi.StreamConfig{Streamer: st, Heartbeat: 100 * time.Millisecond, MaxStreams: maxStreams,
			SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cid, err := kc.ClusterID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sp := testkit.SyncProducer(t, ks)
	return &streamFixture{client: &http.Client{Timeout: 60 * time.Second}, env: env, srv: srv, base: srv.URL + "/v3/clusters/" + cid + "/topics/purchases/records:stream",
		prod: kgclient.NewProducer(sp, eng, cfg.Policies), st: st}
}

func (f *streamFixture) send(t *testing.T, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		v := fmt.Appendf(nil, `{"n":%d,"Name":"Ann %d","Address":"%d Main St"}`, i, i, i)
		if _, _, err := f.prod.Send(context.Background(), "purchases", fmt.Appendf(nil, "k%d", i), v, nil); err != nil {
			t.Fatal(err)
		}
	}
}

type event struct {
	Topic      string                        `json:"topic"`
	Offset     int64                         `json:"offset"`
	Value      struct{ Data map[string]any } `json:"value"`
	Decryption struct{ Status string }       `json:"decryption"`
}

// checkEvent decodes one record event and checks it is record n, decrypted.
func checkEvent(t *testing.T, data string, n int) {
	t.Helper()
	var e event
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		t.Fatalf("event %q: %v", data, err)
	}
	if e.Topic != "purchases" || e.Decryption.Status != "decrypted" || e.Value.Data["Name"] != fmt.Sprintf("Ann %d", n) || e.Offset != int64(n) {
		t.Fatalf("event %d: %s", n, data)
	}
}

func (f *streamFixture) waitClosed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.st.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still open after the client left", f.st.open.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamSSE follows a partition as server-sent events: records
// written before and during the stream arrive decrypted, heartbeats come
// when idle, and the stream is closed when the client goes away.
func TestStreamSSE(t *testing.T) {
	f := setupStream(t, 0)
	f.send(t, 0, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"?partition=0&offset=0", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string)
	go func() { // ends when the body is closed
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := 0
	heartbeats := 0
	sentMore := false
	timeout := time.After(30 * time.Second)
	for next < 6 || heartbeats == 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended early")
			}
			switch {
			case strings.HasPrefix(l, "data: "):
				checkEvent(t, strings.TrimPrefix(l, "data: "), next)
				next++
			case l == ": keep-alive":
				heartbeats++
				if !sentMore {
					sentMore = true
					f.send(t, 3, 3) // records written while the stream is open
				}
			case strings.HasPrefix(l, "id: "):
				if l != fmt.Sprintf("id: 0:%d", next) {
					t.Fatalf("event id %q before record %d", l, next)
				}
			}
		case <-timeout:
			t.Fatalf("got %d records and %d heartbeats", next, heartbeats)
		}
	}
	if f.st.open.Load() != 1 {
		t.Fatalf("%d streams open", f.st.open.Load())
	}
	cancel()
	for range lines {
	}
	f.waitClosed(t)
}

// TestStreamNDJSONGroup streams as a consumer group: max ends the stream,
// and the group resumes after what it was sent.
func TestStreamNDJSONGroup(t *testing.T) {
	f := setupStream(t, 0)
	f.send(t, 0, 5)
	read := func(query string, want ...int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+query, nil)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		b, err := io.ReadAll(resp.Body) // the stream ends by itself after max
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", query, len(got), len(want), b)
		}
		for i, n := range want {
			checkEvent(t, got[i], n)
		}
	}
	read("?group=g1&from_beginning=true&max=3", 0, 1, 2)
	f.waitClosed(t)
	read("?group=g1&max=2", 3, 4)
	f.waitClosed(t)
	// A new group starts at the end by default: it sees only new records.
	done := make(chan struct{})
	go func() {
		defer close(done)
		read("?group=g2&max=1", 5)
	}()
	waitGroupStable(t, f.env.Brokers, httpapi.StreamGroup("anonymous", "g2"))
	f.send(t, 5, 1)
	<-done
	f.waitClosed(t)
}

func waitGroupStable(t *testing.T, brokers []string, group string) {
	t.Helper()
	admin := testkit.Admin(t, brokers)
	deadline := time.Now().Add(20 * time.Second)
	for {
		gs, err := admin.DescribeConsumerGroups([]string{group})
		if err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) > 0 {
			time.Sleep(300 * time.Millisecond) // the member fetches its start offset after joining
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never became stable", group)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStreamRefusals checks bad queries, unknown topics and the stream
// limit.
func TestStreamRefusals(t *testing.T) {
	f := setupStream(t, 1)
	f.send(t, 0, 1)
	short := &http.Client{Timeout: 15 * time.Second}
	retryAfter := ""
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := short.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		retryAfter = resp.Header.Get("Retry-After")
		return resp.StatusCode, string(b)
	}
	for _, q := range []string{"?group=g&partition=0", "?offset=5", "?max=0", "?partition=x", "?group=g&offset=0", "?from_beginning=true"} {
		if code, body := get(f.base + q); code != 400 || !strings.Contains(body, `"error_code":40003`) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	for _, q := range []string{"?partition=0", "", "?group=g"} {
		if code, body := get(strings.Replace(f.base, "/purchases/", "/nope/", 1) + q); code != 404 || !strings.Contains(body, fmt.Sprintf(`"error_code":%d`, httpapi.CodeTopicNotFound)) {
			t.Errorf("unknown topic%s: %d %s", q, code, body)
		}
	}
	// Asking for a stream never creates the topic (brokers auto-create
	// on metadata requests that allow it).
	if topicExists(t, f.env.Brokers, "nope") {
		t.Error("a stream request created the unknown topic")
	}
	// One stream open: a second is refused with 429.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base, nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("first stream: %d %s", resp.StatusCode, b)
	}
	if code, body := get(f.base); code != 429 || !strings.Contains(body, `"error_code":42902`) || retryAfter == "" {
		t.Errorf("second stream: %d %s (Retry-After %q)", code, body, retryAfter)
	}
	cancel()
	resp.Body.Close()
	f.waitClosed(t)
}

func topicExists(t *testing.T, brokers []string, topic string) bool {
	t.Helper()
	topics, err := testkit.Admin(t, brokers).ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	_, ok := topics[topic]
	return ok
}

// TestStreamGroupMembership: a group stream takes instance_id,
// session_timeout and rebalance_timeout from its query (the gateway's
// settings otherwise): the member is static in Kafka under that instance
// id, and a stream reopened with the same id resumes at the committed
// offset. Bad values are 400 naming the parameter.
func TestStreamGroupMembership(t *testing.T) {
	f := setupStream(t, 0)
	f.send(t, 0, 3)
	group := httpapi.StreamGroup("anonymous", "gm")
	open := func(query string) (lines *bufio.Scanner, stop func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+query, nil)
		resp, err := f.client.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			cancel()
			t.Fatalf("%s: %d %s", query, resp.StatusCode, b)
		}
		return bufio.NewScanner(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	next := func(sc *bufio.Scanner, n int) {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended before record %d: %v", n, sc.Err())
		}
		checkEvent(t, sc.Text(), n)
	}

	sc, stop := open("?group=gm&from_beginning=true&instance_id=pod-0&session_timeout=7s&rebalance_timeout=20s")
	for n := range 3 {
		next(sc, n)
	}
	if o := f.st.last.Load(); o.InstanceID != "pod-0" || o.SessionTimeout != 7*time.Second || o.RebalanceTimeout != 20*time.Second || o.HeartbeatInterval != 100*time.Millisecond {
		t.Fatalf("stream options %+v: want instance pod-0, session 7s, rebalance 20s and the configured heartbeat", *o)
	}
	gi := f.env.Kafka.GroupInfo(group)
	if gi == nil || len(gi.Members) != 1 || gi.Members[0].InstanceID == nil || *gi.Members[0].InstanceID != "pod-0" {
		t.Fatalf("group %s in kafka: %+v, want one static member pod-0", group, gi)
	}
	stop()
	f.waitClosed(t)

	f.send(t, 3, 1)
	reopened := time.Now()
	sc, stop = open("?group=gm&instance_id=pod-0&max=1")
	next(sc, 3)
	took := time.Since(reopened)
	stop()
	f.waitClosed(t)
	if o := f.st.last.Load(); o.SessionTimeout != time.Second || o.RebalanceTimeout != 0 {
		t.Fatalf("without parameters the stream took %+v, want the configured session timeout (1s) and sarama's rebalance timeout", *o)
	}
	t.Logf("a stream reopened with instance_id pod-0 resumed at the committed offset and sent its first record %v after the request", took.Round(time.Millisecond))

	for q, field := range map[string]string{
		"?instance_id=pod-0":              "instance_id",
		"?group=gm&instance_id=pod%200":   "instance_id",
		"?group=gm&session_timeout=soon":  "session_timeout",
		"?group=gm&session_timeout=10ms":  "session_timeout",
		"?session_timeout=10s":            "session_timeout",
		"?group=gm&rebalance_timeout=1h":  "rebalance_timeout",
		"?group=gm&rebalance_timeout=-5s": "rebalance_timeout",
	} {
		resp, err := f.client.Get(f.base + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		var e struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(b, &e) != nil || e.ErrorCode != 40003 || !strings.Contains(e.Message, field) {
			t.Errorf("%s: %d %s, want 400 40003 naming %s", q, resp.StatusCode, b, field)
		}
	}
}
