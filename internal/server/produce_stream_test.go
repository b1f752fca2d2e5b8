package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// streamReport is one report of a produce stream.
type streamReport struct {
	ErrorCode   int    `json:"error_code"`
	Message     string `json:"message"`
	PartitionID *int32 `json:"partition_id"`
	Offset      *int64 `json:"offset"`
}

// rawStream is a produce request written by hand over a TCP connection:
// HTTP/1.1 with a chunked body that stays open between writes.
type rawStream struct {
	conn    net.Conn
	resp    *http.Response
	reports chan streamReport
	done    chan error // the answer's end: nil at a clean end of the body
}

func openRawStream(t *testing.T, base, path string) *rawStream {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A generous bound so that a stalled stream fails the test instead
	// of hanging it.
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
	head := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return &rawStream{conn: conn, reports: make(chan streamReport, 10000), done: make(chan error, 1)}
}

// chunk sends data as one chunk of the body.
func (s *rawStream) chunk(t *testing.T, data string) {
	t.Helper()
	if _, err := fmt.Fprintf(s.conn, "%x\r\n%s\r\n", len(data), data); err != nil {
		t.Fatal(err)
	}
}

// end sends the body's last chunk.
func (s *rawStream) end(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(s.conn, "0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// readAnswer reads the answer's head, then each CRLF-separated report as
// it arrives, until the answer ends.
func (s *rawStream) readAnswer(t *testing.T) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.resp = resp
	go func() {
		defer close(s.reports)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sc.Split(splitCRLF)
		for sc.Scan() {
			var r streamReport
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			var full map[string]any
			if err := json.Unmarshal(sc.Bytes(), &full); err != nil {
				s.done <- fmt.Errorf("report %q: %w", sc.Bytes(), err)
				return
			}
			_ = json.Unmarshal(sc.Bytes(), &r)
			s.reports <- r
		}
		s.done <- sc.Err()
	}()
}

// splitCRLF splits reports at CRLF only (a report has no raw CR or LF).
func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
		return i + 2, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func (s *rawStream) next(t *testing.T, within time.Duration) streamReport {
	t.Helper()
	select {
	case r, ok := <-s.reports:
		if !ok {
			t.Fatalf("the answer ended early: %v", <-s.done)
		}
		return r
	case <-time.After(within):
		t.Fatalf("no report within %s", within)
	}
	return streamReport{}
}

func streamRecord(i int) (key, value, body string) {
	key = fmt.Sprintf("k-%05d", i)
	value = fmt.Sprintf(`{"Name":"Name %05d","Address":"%05d Main St","seq":%d}`, i, i, i)
	body = `{"key":{"type":"STRING","data":"` + key + `"},"value":{"type":"JSON","data":` + value + `}}`
	return key, value, body
}

// TestProduceStreamOverRawSocket: a client writes a chunked produce body
// by hand and keeps it open. The first record's report arrives while the
// body is open; 5,000 more follow over about 20 s on the same connection,
// with a malformed object in the middle that gets its own error report
// while the stream goes on. Every good record is in Kafka, encrypted, and
// decrypts to the bytes sent; each report names where its record is.
// The stream outlives the request timeout (5 s here) and the server's
// keep-alive idle timeout (2 s): neither ends it.
func TestProduceStreamOverRawSocket(t *testing.T) {
	env := testkit.Start(t)
	cfg := testConfig + "\n[kafkagate]\nrequest_timeout = 5s\nidle_timeout = 2s\n"
	gw := testkit.Gateway(t, env, server.Options{Config: testkit.Config(t, cfg), Vault: testkit.RootVault(env, 3*time.Second)})
	base := testkit.Serve(t, gw)
	cid := testkit.ClusterID(t, gw)
	st := openRawStream(t, base, "/v3/clusters/"+cid+"/topics/purchases/records")

	sent := map[string]string{} // key -> value bytes
	var order []string          // report order: a key, or "" for the malformed object
	k, v, b := streamRecord(0)
	sent[k], order = v, append(order, k)
	start := time.Now()
	st.chunk(t, b+"\n")
	st.readAnswer(t)
	if st.resp.StatusCode != 200 || st.resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer: %d %q", st.resp.StatusCode, st.resp.Header.Get("Content-Type"))
	}
	first := st.next(t, 2*time.Second)
	latency := time.Since(start)
	if first.ErrorCode != 200 || first.Offset == nil {
		t.Fatalf("first report: %+v", first)
	}
	t.Logf("first report %s after its record, body still open", latency.Round(time.Millisecond))

	// 5,000 more records in 200 chunks of 25, one every 100 ms (~20 s); a
	// malformed object (a syntax error inside balanced braces) after
	// record 2,500.
	const total, perChunk = 5000, 25
	const malformed = `{"value":{"type":"JSON","data":{"Name":}}}`
	sendStart := time.Now()
	for i := 1; i <= total; i += perChunk {
		var sb strings.Builder
		for j := i; j < i+perChunk && j <= total; j++ {
			k, v, b := streamRecord(j)
			sent[k], order = v, append(order, k)
			sb.WriteString(b)
			sb.WriteString("\r\n")
			if j == total/2 {
				sb.WriteString(malformed + "\n")
				order = append(order, "")
			}
		}
		st.chunk(t, sb.String())
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("sent %d records in %s", total, time.Since(sendStart).Round(time.Millisecond))

	// Every report arrives while the body is still open.
	var reports []streamReport
	reports = append(reports, first)
	for len(reports) < len(order) {
		reports = append(reports, st.next(t, 60*time.Second))
	}
	t.Logf("all %d reports received %s after the first record, body still open", len(reports), time.Since(start).Round(time.Millisecond))
	st.end(t)
	if r, ok := <-st.reports; ok {
		t.Fatalf("a report beyond the records sent: %+v", r)
	}
	if err := <-st.done; err != nil {
		t.Fatalf("answer did not end cleanly: %v", err)
	}

	type loc struct {
		part int32
		off  int64
	}
	where := map[string]loc{}
	bad := 0
	for i, r := range reports {
		if order[i] == "" {
			bad++
			if r.ErrorCode != httpapi.CodeBadJSON || r.Offset != nil || !strings.Contains(r.Message, "not valid JSON") {
				t.Fatalf("malformed object's report: %+v", r)
			}
			continue
		}
		if r.ErrorCode != 200 || r.Offset == nil || r.PartitionID == nil {
			t.Fatalf("report %d (%s): %+v", i, order[i], r)
		}
		where[order[i]] = loc{*r.PartitionID, *r.Offset}
	}
	if bad != 1 || len(where) != total+1 {
		t.Fatalf("%d malformed reports, %d records reported", bad, len(where))
	}

	stored := testkit.Stored(t, gw.Kafka, "purchases")
	if len(stored) != total+1 {
		t.Fatalf("topic holds %d records, want %d", len(stored), total+1)
	}
	recs := make([]protect.Record, len(stored))
	copy(recs, stored)
	opened, err := gw.Engine.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range stored {
		key := string(rec.Key)
		want, ok := sent[key]
		if !ok {
			t.Fatalf("unexpected record key %q", key)
		}
		if l := where[key]; l.part != rec.Partition || l.off != rec.Offset {
			t.Fatalf("record %s at %d/%d, its report said %d/%d", key, rec.Partition, rec.Offset, l.part, l.off)
		}
		name := "Name " + strings.TrimPrefix(key, "k-")
		if bytes.Contains(rec.Value, []byte(name)) {
			t.Fatalf("record %s stored with its plaintext name", key)
		}
		if opened[i].Status != protect.StatusDecrypted || string(opened[i].Value) != want {
			t.Fatalf("record %s: status %s, value %s, want %s", key, opened[i].Status, opened[i].Value, want)
		}
		delete(sent, key)
	}
}

// TestProduceStreamEndsCleanlyOnDrain: when the server drains, an open
// produce stream stops reading, reports every record it read and ends its
// answer (a clean end of the chunked body); the drain does not wait for
// the client to close its body.
func TestProduceStreamEndsCleanlyOnDrain(t *testing.T) {
	env := testkit.Start(t)
	gw := testkit.Gateway(t, env, server.Options{Config: testkit.Config(t, testConfig), Vault: testkit.RootVault(env, 3*time.Second)})
	l, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.ServeDrain(ctx, l, server.Drain{Timeout: 20 * time.Second}) }()
	st := openRawStream(t, "http://"+l.Addr().String(), "/v3/clusters/"+testkit.ClusterID(t, gw)+"/topics/purchases/records")
	_, _, b := streamRecord(0)
	st.chunk(t, b)
	st.readAnswer(t)
	const n = 10
	for i := 1; i < n; i++ {
		_, _, b := streamRecord(i)
		st.chunk(t, b)
	}
	for i := 0; i < n; i++ {
		if r := st.next(t, 30*time.Second); r.ErrorCode != 200 {
			t.Fatalf("report %d: %+v", i, r)
		}
	}
	start := time.Now()
	stop()
	if r, ok := <-st.reports; ok {
		t.Fatalf("a report after the drain began: %+v", r)
	}
	if err := <-st.done; err != nil {
		t.Fatalf("the answer did not end cleanly: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Logf("stream ended and server stopped %s after the drain began", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the drain waited %s for the open stream", d)
	}
	if got := len(testkit.Stored(t, gw.Kafka, "purchases")); got != n {
		t.Fatalf("topic holds %d records, want %d", got, n)
	}
}

// TestProduceStreamIdleTimeout: a stream that sends nothing for
// produce_idle_timeout gets a last report (error_code 408) and its answer
// ends; what it sent before is produced.
func TestProduceStreamIdleTimeout(t *testing.T) {
	env := testkit.Start(t)
	gw := testkit.Gateway(t, env, server.Options{Config: testkit.Config(t, testConfig+"\n[kafkagate]\nproduce_idle_timeout = 1s\n"), Vault: testkit.RootVault(env, 3*time.Second)})
	base := testkit.Serve(t, gw)
	st := openRawStream(t, base, "/v3/clusters/"+testkit.ClusterID(t, gw)+"/topics/purchases/records")
	_, _, b := streamRecord(0)
	st.chunk(t, b)
	st.readAnswer(t)
	if r := st.next(t, 30*time.Second); r.ErrorCode != 200 {
		t.Fatalf("report: %+v", r)
	}
	last := st.next(t, 30*time.Second)
	if last.ErrorCode != httpapi.CodeStreamIdle || !strings.Contains(last.Message, "no data for 1s") {
		t.Fatalf("last report: %+v", last)
	}
	if r, ok := <-st.reports; ok {
		t.Fatalf("a report after the idle end: %+v", r)
	}
	if err := <-st.done; err != nil {
		t.Fatalf("the answer did not end cleanly: %v", err)
	}
	if got := len(testkit.Stored(t, gw.Kafka, "purchases")); got != 1 {
		t.Fatalf("topic holds %d records, want 1", got)
	}
}

// TestProduceStreamBackpressure: a client that sends without reading its
// reports is slowed down, not buffered without bound: once the reports it
// does not read fill the connection, the gateway stops reading the body
// (at most its in-flight bound of records are read but not reported), so
// the client's writes block and the topic stops growing. When the client
// reads again, the stream resumes and every record is produced and
// reported. (Passthrough topic: no Vault in the loop.)
func TestProduceStreamBackpressure(t *testing.T) {
	env := testkit.Start(t)
	gw := testkit.Gateway(t, env, server.Options{Config: testkit.Config(t, testConfig), Vault: testkit.RootVault(env, 3*time.Second)})
	base := testkit.Serve(t, gw)
	st := openRawStream(t, base, "/v3/clusters/"+testkit.ClusterID(t, gw)+"/topics/raw/records")
	rec := `{"value":{"type":"STRING","data":"` + strings.Repeat("v", 400) + `"}}` + "\n"
	const perChunk, most = 500, 1_000_000
	chunk := fmt.Sprintf("%x\r\n%s\r\n", len(rec)*perChunk, strings.Repeat(rec, perChunk))
	var written atomic.Int64
	var stop atomic.Bool
	wrote := make(chan error, 1)
	go func() { // the client's writer: never reads; ends once told to
		for !stop.Load() && written.Load() < most {
			if _, err := io.WriteString(st.conn, chunk); err != nil {
				wrote <- err
				return
			}
			written.Add(perChunk)
		}
		_, err := io.WriteString(st.conn, "0\r\n\r\n")
		wrote <- err
	}()
	stored := func() int64 { return testkit.HighWatermarks(t, gw.Kafka, "raw") }
	// Wait until neither the client's writes nor the topic move.
	var lastW, lastS int64 = -1, -1
	for deadline := time.Now().Add(90 * time.Second); ; {
		time.Sleep(2 * time.Second)
		w, n := written.Load(), stored()
		if w == lastW && n == lastS {
			break
		}
		if w >= most || time.Now().After(deadline) {
			t.Fatalf("no backpressure: the client wrote %d records, %d produced, without reading a report", w, n)
		}
		lastW, lastS = w, n
	}
	t.Logf("without reading, the client's writes blocked after %d records; %d produced", lastW, lastS)
	if lastS > lastW {
		t.Fatalf("%d produced of %d written", lastS, lastW)
	}
	// Reading again resumes the stream to its end: the blocked write
	// completes, then the client ends its body.
	stop.Store(true)
	st.readAnswer(t)
	got := 0
	for r := range st.reports {
		if r.ErrorCode != 200 || r.Offset == nil {
			t.Fatalf("report %d: %+v", got, r)
		}
		got++
	}
	if err := <-st.done; err != nil {
		t.Fatalf("the answer did not end cleanly: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("client write: %v", err)
	}
	total := int(written.Load())
	if n := stored(); got != total || n != int64(total) {
		t.Fatalf("%d reports, %d records produced, want %d", got, n, total)
	}
}
