package httpapi

// Streaming decrypting read: GET .../topics/{topic}/records:stream follows
// a topic and sends each record, decrypted, as a server-sent event (Accept:
// text/event-stream) or as one line of NDJSON. The events have the shape
// of the stateless GET's records, plus the topic. The blind index filter
// of the stateless GET (header Kafkagate-Index-Filter, indexfilter.go)
// applies too: only matching records are decrypted and sent; the others
// are still marked read for a group, and do not count towards max.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Error codes of the streaming endpoint (docs/errors.md).
const (
	CodeTooManyStreams = 42902 // the gateway already serves its maximum of concurrent streams
	CodePrincipalBusy  = 42903 // the principal already has its maximum of concurrent streams or uploads
	CodeNoStreaming    = 50123 // this gateway cannot open streams (no Streamer)
)

// Streamer opens live record streams; *kafka.Client implements it.
type Streamer interface {
	OpenStream(ctx context.Context, o kafka.StreamOptions) (kafka.RecordStream, error)
}

// StreamConfig configures GET .../records:stream.
type StreamConfig struct {
	// Streamer opens the streams; nil: Config.Kafka when it implements
	// Streamer, else the endpoint answers 501.
	Streamer   Streamer
	Heartbeat  time.Duration // SSE keep-alive comment when idle; default 15 s
	MaxStreams int           // concurrent streams; default 64
	// MaxPerPrincipal bounds one principal's concurrent streams; default 8.
	MaxPerPrincipal int
	MaxBatch        int // records per Vault call; default 500
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval tune
	// consumer groups (0: sarama's defaults); a request's session_timeout
	// and rebalance_timeout override the first two.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
}

// StreamRecord is one streamed record: the stateless read's record plus
// its topic.
type StreamRecord struct {
	Topic string `json:"topic"`
	ReadRecord
}

// streamHandler returns the handler of GET .../records:stream. Streams are
// bounded by MaxStreams; each owns its Kafka consumer, closed (committing
// a group's offsets) when the client goes away or max records were sent.
func (s *Server) streamHandler() http.HandlerFunc {
	sc := s.cfg.Stream
	if sc.Heartbeat <= 0 {
		sc.Heartbeat = 15 * time.Second
	}
	if sc.MaxStreams <= 0 {
		sc.MaxStreams = 64
	}
	if sc.MaxPerPrincipal <= 0 {
		sc.MaxPerPrincipal = 8
	}
	if sc.MaxBatch <= 0 {
		sc.MaxBatch = 500
	}
	if sc.Streamer == nil {
		sc.Streamer, _ = s.cfg.Kafka.(Streamer)
	}
	slots := make(chan struct{}, sc.MaxStreams)
	mine := newPrincipalSlots(sc.MaxPerPrincipal)
	return func(w http.ResponseWriter, r *http.Request) {
		if sc.Streamer == nil {
			writeErr(w, newErr(CodeNoStreaming, "this gateway cannot stream records"))
			return
		}
		o, max, apiErr := parseStreamQuery(r, chi.URLParam(r, "topic"))
		if apiErr != nil {
			writeErr(w, apiErr)
			return
		}
		ro, apiErr := renderOptions(r)
		if apiErr != nil {
			writeErr(w, apiErr)
			return
		}
		o.MaxBatch, o.HeartbeatInterval = sc.MaxBatch, sc.HeartbeatInterval
		o.SessionTimeout = cmp.Or(o.SessionTimeout, sc.SessionTimeout)
		o.RebalanceTimeout = cmp.Or(o.RebalanceTimeout, sc.RebalanceTimeout)
		// Check the index filter before opening the stream: a bad one is
		// 400 (a field without index=hmac), Vault refusing is 503.
		if _, ferr := s.indexFilter(r, o.Topic, nil); ferr != nil {
			writeErr(w, ferr)
			return
		}
		name := principalName(r)
		if o.Group != "" {
			o.Group = StreamGroup(name, o.Group)
			w.Header().Set("Kafkagate-Group", o.Group)
		}
		release, ok := mine.acquire(name)
		if !ok {
			writeBusy(w, CodePrincipalBusy, fmt.Sprintf("principal %s already has %d concurrent streams open; retry later", name, sc.MaxPerPrincipal))
			return
		}
		defer release()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			writeBusy(w, CodeTooManyStreams, "too many concurrent streams; retry later")
			return
		}
		st, err := sc.Streamer.OpenStream(r.Context(), o)
		if err != nil {
			if errors.Is(err, kafka.ErrConfig) {
				writeErr(w, &apiError{ErrorCode: CodeBadQuery, Message: err.Error()})
				return
			}
			writeErr(w, fromError(err))
			return
		}
		defer func() {
			if err := st.Close(); err != nil {
				s.log.Warn("closing a record stream", "topic", o.Topic, "error", err)
			}
		}()
		s.serveStream(w, r, st, o.Topic, max, sc.Heartbeat, ro)
	}
}

// StreamGroup is the Kafka consumer group of a stream's group parameter:
// each principal has its own namespace, kafkagate-stream.<principal>:<group>
// (':' is never part of a principal's name, so two principals never share
// a group), so a stream can never join the bridge's, receive-dir's or
// another application's group and move its offsets.
func StreamGroup(principal, group string) string {
	return "kafkagate-stream." + principal + ":" + group
}

// parseStreamQuery reads group, from_beginning, partition, offset and max.
func parseStreamQuery(r *http.Request, topic string) (kafka.StreamOptions, int, *apiError) {
	q := r.URL.Query()
	o := kafka.StreamOptions{Topic: topic, Group: q.Get("group"), Partition: -1, Offset: kafka.OffsetOldest}
	bad := func(name, want string) *apiError {
		return &apiError{ErrorCode: CodeBadQuery, Message: "query parameter " + name + " must be " + want, Field: name}
	}
	if o.Group != "" && (len(o.Group) > 249 || strings.ContainsFunc(o.Group, func(c rune) bool { return c < 0x21 || c > 0x7e })) {
		return o, 0, bad("group", "1 to 249 printable ASCII characters")
	}
	if v := q.Get("from_beginning"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || o.Group == "" {
			return o, 0, bad("from_beginning", "true or false, with group")
		}
		o.FromBeginning = b
	}
	if v := q.Get("partition"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 || o.Group != "" {
			return o, 0, bad("partition", "an integer >= 0, without group")
		}
		o.Partition = int32(n)
	}
	if v := q.Get("offset"); v != "" {
		if o.Group != "" {
			return o, 0, bad("offset", "absent with group (a group resumes from its committed offsets)")
		}
		switch v {
		case "oldest", "beginning":
			o.Offset = kafka.OffsetOldest
		case "newest", "end":
			o.Offset = kafka.OffsetNewest
		default:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || o.Partition < 0 {
				return o, 0, bad("offset", "oldest, newest, or an integer >= 0 with partition")
			}
			o.Offset = n
		}
	}
	if v := q.Get("instance_id"); v != "" {
		if o.Group == "" || len(v) > 249 || strings.ContainsFunc(v, func(c rune) bool { return !isInstanceIDChar(c) }) {
			return o, 0, bad("instance_id", "1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', with group")
		}
		o.InstanceID = v
	}
	for _, d := range []struct {
		name     string
		to       *time.Duration
		min, max time.Duration
	}{
		{"session_timeout", &o.SessionTimeout, time.Second, 5 * time.Minute},
		{"rebalance_timeout", &o.RebalanceTimeout, time.Second, 10 * time.Minute},
	} {
		v := q.Get(d.name)
		if v == "" {
			continue
		}
		t, err := time.ParseDuration(v)
		if err != nil || t < d.min || t > d.max || o.Group == "" {
			return o, 0, bad(d.name, fmt.Sprintf("a duration from %v to %v (e.g. 30s), with group", d.min, d.max))
		}
		*d.to = t
	}
	max := 0
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return o, 0, bad("max", "an integer >= 1")
		}
		max = n
	}
	return o, max, nil
}

// isInstanceIDChar reports a character Kafka allows in a
// group.instance.id.
func isInstanceIDChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// eventWriter writes records as server-sent events or NDJSON.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sse bool
}

func (e *eventWriter) record(rec StreamRecord) error {
	b, err := json.Marshal(rec) // one line: embedded JSON is compacted
	if err != nil {
		return err
	}
	if e.sse {
		_, err = e.w.Write([]byte("id: " + strconv.Itoa(int(rec.PartitionID)) + ":" + strconv.FormatInt(rec.Offset, 10) + "\ndata: "))
		if err == nil {
			_, err = e.w.Write(append(b, '\n', '\n'))
		}
		return err
	}
	_, err = e.w.Write(append(b, '\n'))
	return err
}

// event writes a named SSE event, or for NDJSON a line with the payload.
func (e *eventWriter) event(name string, v any) error {
	b, _ := json.Marshal(v)
	var err error
	if e.sse {
		_, err = e.w.Write([]byte("event: " + name + "\ndata: " + string(b) + "\n\n"))
	} else {
		_, err = e.w.Write(append(b, '\n'))
	}
	if err == nil {
		err = e.rc.Flush()
	}
	return err
}

func (e *eventWriter) heartbeat() error {
	if !e.sse {
		return nil
	}
	if _, err := e.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}

// serveStream sends batches until the client goes away, max records were
// sent, or decryption fails (an error event, then the end: records not
// sent are not marked, so a group re-reads them).
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, st kafka.RecordStream, topic string, max int, heartbeat time.Duration, ro RenderOptions) {
	ctx := r.Context()
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), sse: strings.Contains(r.Header.Get("Accept"), "text/event-stream")}
	if ew.sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := ew.rc.Flush(); err != nil {
		return
	}
	sent := 0
	for max == 0 || sent < max {
		nctx, cancel := context.WithTimeout(ctx, heartbeat)
		recs, err := st.Next(nctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return // the client went away, or the stream closed
			}
			if ew.heartbeat() != nil {
				return
			}
			continue
		}
		keep, ferr := s.indexFilter(r, topic, recs)
		if ferr != nil {
			if ctx.Err() == nil {
				s.log.Warn("record stream ended: index filter failed", "topic", topic, "error_code", ferr.ErrorCode, "request_id", middleware.GetReqID(ctx))
				_ = ew.event("error", ferr)
			}
			return
		}
		// sel: the records to send; recs is cut after the last one sent
		// when max is reached (the rest is neither sent nor marked).
		var sel []int
		for i := range recs {
			if keep != nil && !keep[i] {
				continue
			}
			if max > 0 && len(sel) == max-sent {
				recs = recs[:i]
				break
			}
			sel = append(sel, i)
		}
		sin := make([]protect.Record, len(sel))
		for j, i := range sel {
			sin[j] = recs[i]
		}
		opened, err := s.cfg.Engine.Decrypt(ctx, sin)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("record stream ended: decryption failed", "topic", topic, "error", err, "request_id", middleware.GetReqID(ctx))
				_ = ew.event("error", fromError(err))
			}
			return
		}
		for j, i := range sel {
			rec := recs[i]
			if err := ew.record(StreamRecord{Topic: rec.Topic, ReadRecord: RenderRecord(rec, opened[j], ro)}); err != nil {
				return
			}
		}
		if err := ew.rc.Flush(); err != nil {
			return
		}
		st.Done(recs)
		sent += len(sel)
	}
	if ew.sse {
		_ = ew.event("end", map[string]int{"records": sent})
	}
}

// timeout is chi's Timeout middleware for every route but the long-lived
// ones: records:stream, which lasts as long as its client (or max records),
// and the file upload, which lasts as long as its body and guards itself
// with an idle deadline per read (files.go).
func (s *Server) timeout(d time.Duration) func(http.Handler) http.Handler {
	limit := deadline(d)
	return func(next http.Handler) http.Handler {
		timed := limit(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.router != nil && longLived(r.Method, s.router.Find(chi.NewRouteContext(), r.Method, routePath(r))) {
				next.ServeHTTP(w, r)
				return
			}
			timed.ServeHTTP(w, r)
		})
	}
}

// longLived reports the routes the request timeout does not apply to.
func longLived(method, pattern string) bool {
	switch {
	case method == http.MethodGet && strings.HasSuffix(pattern, "/records:stream"):
		return true
	case method == http.MethodPost && strings.HasSuffix(pattern, "/topics/{topic}/files"):
		return true
	case method == http.MethodPost && strings.HasSuffix(pattern, "/topics/{topic}/records"):
		// A produce stream: bounded by its idle timeout, each batch by
		// the request timeout (produce_stream.go).
		return true
	}
	return false
}
