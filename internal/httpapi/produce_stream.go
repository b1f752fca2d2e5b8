package httpapi

// Streaming produce: POST .../topics/{topic}/records takes one JSON object
// or a stream of them (REST Proxy v3's streaming mode, usually with
// chunked encoding) and answers each record as soon as Kafka acknowledged
// it, in order, for as long as the client keeps the connection open.
//
// Three goroutines share one request:
//   - the reader frames the body into top-level JSON values (frameReader),
//     decodes each strictly and prepares it (a record with an error is
//     reported, never produced);
//   - the processor takes what has arrived so far, up to
//     ProduceBatchRecords, encrypts it in one engine call and produces it;
//   - the handler writes each batch's reports and flushes.
//
// At most ProduceInFlight records are read but not yet reported
// (backpressure: the reader stops reading the body). There is no cap on a
// stream's length or duration; the stream ends when the client closes its
// body, after ProduceIdleTimeout without a byte, when a record is larger
// than MaxBodyBytes, or when the server drains (BeginDrain): it then stops
// reading, reports every record it has read, and ends the answer.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/policy"
)

// errFrameTooLarge: a top-level value is larger than the per-record limit.
var errFrameTooLarge = errors.New("record too large")

// errStreamStopped: the body is no longer read (drain or request end).
var errStreamStopped = errors.New("stream stopped")

// frameReader splits a body into its top-level JSON values without
// parsing them: an object or array ends where its brackets balance
// (outside strings), a string at its closing quote, any other token at
// whitespace or the start of the next value. A value that is not valid
// JSON inside balanced brackets is still one frame, so the stream resumes
// at the next value after it.
type frameReader struct {
	br  *bufio.Reader
	max int
}

// frameBufs holds the 64 KiB read buffers of finished streams: a new one
// per request was a large allocation (zeroed, and a GC trigger) on every
// single-record request.
var frameBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func newFrameReader(r io.Reader, max int) *frameReader {
	br := frameBufs.Get().(*bufio.Reader)
	br.Reset(r)
	return &frameReader{br: br, max: max}
}

// release returns the read buffer to frameBufs; f is not used after it.
func (f *frameReader) release() {
	f.br.Reset(nil)
	frameBufs.Put(f.br)
	f.br = nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next value's bytes; io.EOF at the end of the body;
// io.ErrUnexpectedEOF (with the bytes read) when the body ends inside a
// value; errFrameTooLarge over the limit; or the body's read error.
func (f *frameReader) next() ([]byte, error) {
	var c byte
	var err error
	for {
		if c, err = f.br.ReadByte(); err != nil {
			return nil, err
		}
		if !isSpace(c) {
			break
		}
	}
	buf := []byte{c}
	grow := func(c byte) error {
		if len(buf) >= f.max {
			return errFrameTooLarge
		}
		buf = append(buf, c)
		return nil
	}
	eof := func(err error) ([]byte, error) {
		if errors.Is(err, io.EOF) {
			return buf, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch c {
	case '{', '[':
		depth, inStr, esc := 1, false, false
		for depth > 0 {
			if c, err = f.br.ReadByte(); err != nil {
				return eof(err)
			}
			if err := grow(c); err != nil {
				return nil, err
			}
			switch {
			case inStr && esc:
				esc = false
			case inStr && c == '\\':
				esc = true
			case inStr && c == '"':
				inStr = false
			case inStr:
			case c == '"':
				inStr = true
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				depth--
			}
		}
	case '"':
		for esc := false; ; {
			if c, err = f.br.ReadByte(); err != nil {
				return eof(err)
			}
			if err := grow(c); err != nil {
				return nil, err
			}
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				break
			}
		}
	default:
		for {
			if c, err = f.br.ReadByte(); err != nil {
				if errors.Is(err, io.EOF) {
					return buf, nil
				}
				return nil, err
			}
			if isSpace(c) || c == '{' || c == '[' || c == '"' {
				_ = f.br.UnreadByte()
				return buf, nil
			}
			if err := grow(c); err != nil {
				return nil, err
			}
		}
	}
	return buf, nil
}

// frameRecord decodes one framed value into a prepared record; a value
// that is not a valid record object carries its error.
func (s *Server) frameRecord(topic string, raw []byte) prepared {
	if raw[0] != '{' {
		if json.Valid(raw) {
			return prepared{err: newErr(CodeBadRequestField, "each record must be a JSON object")}
		}
		return prepared{err: newErr(CodeBadJSON, "record is not valid JSON (each record must be a JSON object)"), malformed: true}
	}
	// JSON text must be UTF-8 (RFC 8259 §8.1); Go's decoder would otherwise
	// replace invalid bytes in header names and STRING data silently.
	if !utf8.Valid(raw) {
		return prepared{err: newErr(CodeBadJSON, fmt.Sprintf("record is not valid UTF-8 (at byte %d of the record); JSON text must be UTF-8", invalidUTF8At(raw))), malformed: true}
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return prepared{err: newErr(CodeBadJSON, fmt.Sprintf("record is not valid JSON: %v", err)), malformed: true}
	}
	req, ok := decodeRecordFast(raw)
	if !ok {
		var aerr *apiError
		if req, aerr = decodeRecord(raw); aerr != nil {
			return prepared{err: aerr}
		}
	}
	return s.prepare(topic, req)
}

// eofReader marks done when its reader reports the end of the body.
type eofReader struct {
	r    io.Reader
	done *atomic.Bool
}

func (e eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.done.Store(true)
	}
	return n, err
}

// framed is one frame of the body (raw or its read error), with its
// record when it was already decoded.
type framed struct {
	raw []byte
	err error
	rec *prepared
}

// streamBatch is one processed batch: its reports, in order.
type streamBatch struct {
	out []produceResponse
	// unavailable is the batch's error when nothing of it was produced
	// because Vault or Kafka was unavailable.
	unavailable *apiError
}

// BeginDrain makes open produce streams stop reading, report what they
// have read and end their answers. The gateway calls it when it starts
// to shut down (http.Server.RegisterOnShutdown).
func (s *Server) BeginDrain() { s.drainOnce.Do(func() { close(s.drainc) }) }

// produce handles POST .../records (see the file comment).
func (s *Server) produce(w http.ResponseWriter, r *http.Request) {
	if e := checkContentType(r.Header.Get(ContentTypeHeader), MediaJSON); e != nil {
		writeErr(w, e)
		return
	}
	topic := chi.URLParam(r, "topic")
	p, aerr := s.policyFor(topic)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	rc := http.NewResponseController(w)
	// stopping: the body is no longer read (the request ended early or
	// the server drains); draining: the server drains.
	var stopping, draining atomic.Bool
	body := &uploadBody{r: r.Body, rc: rc, idle: s.cfg.ProduceIdleTimeout, stop: stopping.Load}
	var bodyDone atomic.Bool
	fr := newFrameReader(eofReader{r: body, done: &bodyDone}, int(s.cfg.MaxBodyBytes))
	// Released once nothing reads it: at a return before the reader
	// starts, or after the reader has ended (wg.Wait below).
	defer fr.release()
	first, ferr := fr.next()
	switch {
	case errors.Is(ferr, io.EOF):
		writeErr(w, newErr(CodeBadJSON, "request body is empty"))
		return
	case errors.Is(ferr, errFrameTooLarge):
		writeErr(w, newErr(CodeBodyTooLarge, fmt.Sprintf("a record is larger than %d bytes", s.cfg.MaxBodyBytes)))
		return
	case ferr != nil && !errors.Is(ferr, io.ErrUnexpectedEOF):
		writeErr(w, newErr(CodeBadJSON, "request body could not be read"))
		return
	}

	// A body that is one value which is not valid JSON (or not UTF-8) is
	// a bad request as a whole (400), as for any other endpoint; in a
	// stream, such a value gets its own report and the stream goes on.
	var firstRec *prepared
	second, serr := []byte(nil), io.EOF
	if ferr == nil {
		rec := s.frameRecord(topic, first)
		firstRec = &rec
		if rec.malformed {
			if second, serr = fr.next(); second == nil && errors.Is(serr, io.EOF) {
				writeErr(w, rec.err)
				return
			}
		}
	} else {
		writeErr(w, newErr(CodeBadJSON, "request body is not valid JSON: it ends inside a record"))
		return
	}

	// Reports are written while the body is still being read. (Only now:
	// an answer before this point lets the server close a connection
	// whose body it did not read, as for any request.)
	_ = rc.EnableFullDuplex()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done, stopperDone := make(chan struct{}), make(chan struct{})
	// The stopper ends the body's reads when the request ends early or
	// the server drains.
	go func() {
		defer close(stopperDone)
		select {
		case <-ctx.Done():
		case <-s.drainc:
			draining.Store(true)
		case <-done:
			return
		}
		stopping.Store(true)
		// Interrupt a read waiting for the client. Once the body is read
		// to its end the server watches the connection itself, and a
		// deadline would end the connection under the records in flight.
		if !bodyDone.Load() {
			_ = rc.SetReadDeadline(time.Now())
		}
	}()

	tokens := make(chan struct{}, s.cfg.ProduceInFlight)
	// Pointers: a channel of ProduceInFlight records by value was a
	// large zeroed allocation on every request, however small.
	items := make(chan *prepared, s.cfg.ProduceInFlight)
	batches := make(chan streamBatch, 1)
	var ended atomic.Value // *apiError: why the stream ended early, reported last
	var wg sync.WaitGroup
	wg.Add(2)
	// Frames read ahead above, then the rest of the body.
	pre := []framed{{raw: first, err: ferr, rec: firstRec}}
	if second != nil || !errors.Is(serr, io.EOF) {
		pre = append(pre, framed{raw: second, err: serr})
	}
	go func() { // reader
		defer wg.Done()
		defer close(items)
		for {
			var f framed
			if len(pre) > 0 {
				f, pre = pre[0], pre[1:]
			} else {
				f.raw, f.err = fr.next()
			}
			var rec prepared
			switch {
			case f.rec != nil:
				rec = *f.rec
			case f.err == nil:
				rec = s.frameRecord(topic, f.raw)
			case errors.Is(f.err, io.ErrUnexpectedEOF):
				rec = prepared{err: newErr(CodeBadJSON, "the body ends inside a record")}
			case errors.Is(f.err, io.EOF):
				return
			case errors.Is(f.err, errFrameTooLarge):
				// As REST Proxy: a record over the size limit ends the stream.
				rec = prepared{err: newErr(CodeBodyTooLarge, fmt.Sprintf("a record is larger than %d bytes; the stream is closed", s.cfg.MaxBodyBytes))}
			default:
				var ne net.Error
				// A timeout the stopper did not cause is the idle timeout
				// (the server then cancels the request's context too).
				if !draining.Load() && errors.As(f.err, &ne) && ne.Timeout() {
					ended.Store(newErr(CodeStreamIdle, fmt.Sprintf("no data for %s; the stream is closed", s.cfg.ProduceIdleTimeout)))
				}
				return
			}
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			items <- &rec
			if f.err != nil {
				return
			}
		}
	}()
	go func() { // processor
		defer wg.Done()
		defer close(batches)
		for rec := range items {
			batch := []prepared{*rec}
		collect:
			for len(batch) < s.cfg.ProduceBatchRecords {
				select {
				case more, ok := <-items:
					if !ok {
						break collect
					}
					batch = append(batch, *more)
				default:
					break collect
				}
			}
			b := s.processStream(ctx, topic, p, batch)
			select {
			case batches <- b:
			case <-ctx.Done():
				// The answer can no longer be written: drop what was read.
				for range items {
				}
				return
			}
		}
	}()

	wrote := false
	// write sends reports (JSON lines, each ending in CRLF) and flushes.
	write := func(lines []byte) bool {
		if !wrote {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			wrote = true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.ProduceIdleTimeout))
		if _, err := w.Write(lines); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	ok := true
	for b := range batches {
		if !ok {
			continue
		}
		if !wrote && b.unavailable != nil {
			// Nothing of the first batch was produced because Vault or
			// Kafka was unavailable: 503 with Retry-After, so clients retry.
			// The rest of the body is not read: the connection closes after
			// the answer (stopping the body's reads ends the connection).
			w.Header().Set("Connection", "close")
			writeErr(w, b.unavailable)
			ok = false
			cancel()
			continue
		}
		bp := reportBufs.Get().(*[]byte)
		lines := (*bp)[:0]
		for i := range b.out {
			lines = appendReportLine(lines, &b.out[i])
		}
		ok = write(lines)
		if cap(lines) <= 1<<20 {
			*bp = lines[:0]
			reportBufs.Put(bp)
		}
		if !ok {
			cancel()
			continue
		}
		for range b.out {
			<-tokens
		}
	}
	wg.Wait()
	close(done)
	<-stopperDone
	if e, _ := ended.Load().(*apiError); e != nil && ok {
		write(reportLine(e))
	}
	if (stopping.Load() || !ok) && !bodyDone.Load() {
		// Ended early while the client may still be sending: the server
		// must not wait for the rest of the body.
		_ = rc.SetReadDeadline(time.Now())
	} else {
		_ = rc.SetReadDeadline(time.Time{})
	}
	_ = rc.SetWriteDeadline(time.Time{})
}

// processStream encrypts and produces one batch of a stream.
func (s *Server) processStream(ctx context.Context, topic string, p *policy.Policy, batch []prepared) streamBatch {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	out, aerr := s.process(bctx, topic, p, batch)
	if aerr == nil {
		return streamBatch{out: out, unavailable: unavailableAll(out)}
	}
	out = make([]produceResponse, len(batch))
	for i, rec := range batch {
		e := aerr
		if rec.err != nil {
			e = rec.err
		}
		out[i] = produceResponse{ErrorCode: e.ErrorCode, Message: e.Message, Field: e.Field}
	}
	return streamBatch{out: out, unavailable: unavailableAll(out)}
}

// reportLine is one report of a produce answer: its JSON and CRLF, as
// REST Proxy separates them.
func reportLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return append(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), '\r', '\n')
}
