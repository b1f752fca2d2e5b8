package kafkaproxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys the proxy handles itself.
const (
	keyProduce          = 0
	keyFetch            = 1
	keyMetadata         = 3
	keyFindCoordinator  = 10
	keySASLHandshake    = 17
	keyAPIVersions      = 18
	keySASLAuthenticate = 36
	keyDescribeCluster  = 60
)

// Version bounds of Produce and Fetch: from the first with record batches
// (magic 2) to the last that names topics (later ones use topic ids).
const (
	produceMin, produceMax = 3, 12
	fetchMin, fetchMax     = 4, 12
)

// blocked are APIs that would move records past the policies (share
// groups fetch records without a Fetch request): never advertised, and a
// client that sends one is disconnected.
var blocked = map[int16]bool{76: true, 77: true, 78: true, 79: true}

// adminAPIs change the cluster; with an authenticator they need the admin
// right.
var adminAPIs = map[int16]bool{19: true, 20: true, 21: true, 30: true, 31: true, 33: true, 34: true, 37: true,
	42: true, 43: true, 44: true, 45: true, 47: true, 49: true, 51: true, 57: true}

// allRights is the anonymous principal's: authentication is off.
type allRights struct{}

func (allRights) Can(string, string) bool { return true }

// session is one client connection and its upstream connection.
type session struct {
	p      *Proxy
	ctx    context.Context
	client net.Conn
	up     net.Conn
	log    *slog.Logger
	queue  chan *pending
	done   chan struct{} // closed when the writer stops
	codecs *codecs

	// Buffers reused from one frame to the next: inFrame and reqBuf by
	// the reader (a request is forwarded before the next is read),
	// upFrame and respBuf by the writer.
	inFrame, reqBuf  []byte
	upFrame, respBuf []byte
	// sealed and opened hold the rewritten partitions of the request
	// being forwarded (reader) and the response being answered (writer).
	sealed, opened arena

	// Authentication state, owned by the reader.
	authed    bool
	sasl      SASLSession
	principal string
	rights    Rights
}

// pending is one request awaiting its answer, in request order.
type pending struct {
	key, version int16
	corr         int32
	local        []byte // the proxy's own response frame; nil: the upstream's
	close        bool   // close the connection after writing local
	result       string // metrics: ok, refused, error
	// fix rewrites the decoded upstream response; nil forwards it raw.
	fix func(pd *pending, resp kmsg.Response) error
}

// reqHeader is a decoded request header.
type reqHeader struct {
	key, version int16
	corr         int32
	clientID     *string
	body         []byte
	frame        []byte
	sized        []byte // frame with its 4-byte size, as read
}

func (p *Proxy) serveConn(ctx context.Context, c net.Conn, node int32) {
	log := p.log.With("client", c.RemoteAddr().String(), "node", node)
	var tc *tls.Conn
	if p.cfg.TLS != nil {
		tc = tls.Server(c, p.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Warn("kafka proxy: TLS handshake failed; client disconnected", "error", err)
			return
		}
		c = tc
	}
	up, err := p.dialUpstream(ctx, node)
	if err != nil {
		log.Warn("kafka proxy: upstream unreachable; client disconnected", "error", err)
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.untrack(up)
	codecs, err := newCodecs()
	if err != nil {
		log.Error("kafka proxy: codecs", "error", err)
		return
	}
	s := &session{p: p, ctx: ctx, client: c, up: up, log: log, queue: make(chan *pending, 64), done: make(chan struct{}), codecs: codecs}
	if p.cfg.Auth == nil {
		s.authed, s.principal, s.rights = true, "anonymous", allRights{}
	}
	if tc != nil && p.cfg.CertPrincipal != nil {
		if name, r := p.cfg.CertPrincipal(tc.ConnectionState()); r != nil {
			s.authed, s.principal, s.rights = true, name, r
			s.log = s.log.With("principal", name)
		}
	}
	go func() {
		defer close(s.done)
		defer c.Close()
		defer up.Close()
		if err := s.writeLoop(); err != nil && ctx.Err() == nil {
			log.Debug("kafka proxy: connection closed", "error", err)
		}
	}()
	if err := s.readLoop(); err != nil && ctx.Err() == nil {
		log.Debug("kafka proxy: connection closed", "error", err)
	}
	close(s.queue)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	_ = c.Close()
	_ = up.Close()
	<-s.done
}

// readLoop reads client requests, handles them in order and queues what
// the writer must answer.
func (s *session) readLoop() error {
	for {
		full, err := readFrameInto(s.client, s.p.cfg.MaxFrameBytes, s.inFrame)
		if err != nil {
			return err
		}
		// A SASL exchange may keep the bytes it is given; any other
		// request is done with its frame once handle returns.
		s.inFrame = nil
		h, err := parseHeader(full[4:])
		h.sized = full
		if err != nil {
			return err
		}
		stop, err := s.handle(h)
		if err != nil {
			s.p.count(h.key, "error")
			s.log.Warn("kafka proxy: request refused; client disconnected", "api", kmsg.NameForKey(h.key), "version", h.version, "error", err)
			return err
		}
		if stop {
			return nil
		}
		if h.key != keySASLAuthenticate && h.key != keySASLHandshake {
			s.inFrame = reusable(full)
		}
	}
}

func parseHeader(frame []byte) (reqHeader, error) {
	r := kbin.Reader{Src: frame}
	h := reqHeader{key: r.Int16(), version: r.Int16(), corr: r.Int32(), frame: frame}
	h.clientID = r.NullableString()
	if req := kmsg.RequestForKey(h.key); req != nil {
		req.SetVersion(h.version)
		if req.IsFlexible() {
			kmsg.SkipTags(&r)
		}
	}
	if err := r.Complete(); err != nil {
		return h, fmt.Errorf("request header: %w", err)
	}
	h.body = r.Src
	return h, nil
}

// handle serves one request. stop ends the connection after what is
// queued has been written.
func (s *session) handle(h reqHeader) (stop bool, err error) {
	if !s.authed && h.key != keyAPIVersions && h.key != keySASLHandshake && h.key != keySASLAuthenticate {
		return false, errors.New("request before SASL authentication")
	}
	switch {
	case h.key == keySASLHandshake:
		return false, s.saslHandshake(h)
	case h.key == keySASLAuthenticate:
		return s.saslAuthenticate(h)
	case h.key == keyAPIVersions:
		return false, s.forward(h, fixAPIVersions(s.p.cfg.Auth != nil))
	case h.key == keyMetadata:
		return false, s.forward(h, s.p.fixMetadata)
	case h.key == keyFindCoordinator:
		return false, s.forward(h, s.p.fixFindCoordinator)
	case h.key == keyDescribeCluster:
		return false, s.forward(h, s.p.fixDescribeCluster)
	case h.key == keyProduce:
		if h.version < produceMin || h.version > produceMax {
			return false, fmt.Errorf("produce v%d is outside the versions the proxy advertises (%d-%d)", h.version, produceMin, produceMax)
		}
		return false, s.produce(h)
	case h.key == keyFetch:
		if h.version < fetchMin || h.version > fetchMax {
			return false, fmt.Errorf("fetch v%d is outside the versions the proxy advertises (%d-%d)", h.version, fetchMin, fetchMax)
		}
		return false, s.fetch(h)
	case blocked[h.key]:
		return false, errors.New("this API is not served by the proxy")
	case adminAPIs[h.key] && !s.rights.Can(RightAdmin, ""):
		return false, fmt.Errorf("principal %q lacks the admin right", s.principal)
	}
	return false, s.forward(h, nil)
}

// forward sends the request frame upstream unchanged and queues its answer.
func (s *session) forward(h reqHeader, fix func(*pending, kmsg.Response) error) error {
	if err := s.enqueue(&pending{key: h.key, version: h.version, corr: h.corr, fix: fix, result: "ok"}); err != nil {
		return err
	}
	_, err := s.up.Write(h.sized)
	return err
}

// forwardRequest sends a rewritten request upstream and queues its answer.
func (s *session) forwardRequest(h reqHeader, req kmsg.Request, pd *pending) error {
	var opts []kmsg.RequestFormatterOpt
	if h.clientID != nil {
		opts = append(opts, kmsg.FormatterClientID(*h.clientID))
	}
	// Room for the rewritten request (encryption grows records), so
	// appending it does not copy it again and again.
	b := kmsg.NewRequestFormatter(opts...).AppendRequest(slices.Grow(s.reqBuf[:0], len(h.frame)+len(h.frame)/2+4096), req, h.corr)
	s.reqBuf = reusable(b)
	if pd != nil {
		if err := s.enqueue(pd); err != nil {
			return err
		}
	}
	_, err := s.up.Write(b)
	return err
}

// answer queues the proxy's own response.
func (s *session) answer(h reqHeader, resp kmsg.Response, result string, closeAfter bool) error {
	resp.SetVersion(h.version)
	return s.enqueue(&pending{key: h.key, version: h.version, corr: h.corr, local: appendResponse(nil, resp, h.corr), result: result, close: closeAfter})
}

func (s *session) enqueue(pd *pending) error {
	select {
	case s.queue <- pd:
		return nil
	case <-s.done:
		return errors.New("connection closed")
	}
}

// writeLoop answers the queued requests in order: the proxy's own answers
// as they are, the upstream's read, rewritten where needed, and copied.
func (s *session) writeLoop() error {
	for pd := range s.queue {
		if pd.local != nil {
			if _, err := s.client.Write(pd.local); err != nil {
				return err
			}
			s.p.count(pd.key, pd.result)
			if pd.close {
				return nil
			}
			continue
		}
		full, err := readFrameInto(s.up, s.p.cfg.MaxFrameBytes, s.upFrame)
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		out, err := s.rewrite(pd, full)
		if err != nil {
			s.p.count(pd.key, "error")
			return err
		}
		if _, err := s.client.Write(out); err != nil {
			return err
		}
		s.p.count(pd.key, pd.result)
		// Nothing refers to either buffer once the answer is written.
		s.upFrame = reusable(full)
		if len(out) > 0 && &out[0] != &full[0] {
			s.respBuf = reusable(out)
		}
	}
	return nil
}

// rewrite checks the response's correlation id and applies pd.fix. full
// is the upstream's frame with its size; it is returned as it is when
// nothing is rewritten.
func (s *session) rewrite(pd *pending, full []byte) ([]byte, error) {
	frame := full[4:]
	if len(frame) < 4 || int32(binary.BigEndian.Uint32(frame)) != pd.corr {
		return nil, fmt.Errorf("upstream answered out of order (%s)", kmsg.NameForKey(pd.key))
	}
	if pd.fix == nil {
		return full, nil
	}
	resp := kmsg.ResponseForKey(pd.key)
	resp.SetVersion(pd.version)
	_, body, err := splitResponse(frame, resp)
	if err == nil {
		err = resp.ReadFrom(body)
	}
	if err != nil {
		if pd.key == keyAPIVersions {
			// An ApiVersions error answer (unsupported version) is
			// written in v0 form; the client retries with v0.
			return full, nil
		}
		return nil, fmt.Errorf("decode %s response: %w", kmsg.NameForKey(pd.key), err)
	}
	if err := pd.fix(pd, resp); err != nil {
		return nil, err
	}
	return appendResponse(s.respBuf[:0], resp, pd.corr), nil
}

// saslHandshake answers SaslHandshake with the authenticator's mechanisms.
func (s *session) saslHandshake(h reqHeader) error {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(h.body); err != nil {
		return fmt.Errorf("decode sasl handshake: %w", err)
	}
	resp := kmsg.NewPtrSASLHandshakeResponse()
	auth := s.p.cfg.Auth
	switch {
	case auth == nil:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	default:
		resp.SupportedMechanisms = auth.Mechanisms()
		switch {
		case s.authed || s.sasl != nil:
			resp.ErrorCode = kerr.IllegalSaslState.Code
		case h.version < 1:
			// v0 sends the SASL tokens without Kafka framing; clients
			// since Kafka 1.0 use v1 and SaslAuthenticate.
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		case !slices.Contains(resp.SupportedMechanisms, req.Mechanism):
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		default:
			sess, err := auth.Start(req.Mechanism)
			if err != nil {
				resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
				break
			}
			s.sasl = sess
		}
	}
	result := "ok"
	if resp.ErrorCode != 0 {
		result = "refused"
	}
	return s.answer(h, resp, result, false)
}

// saslAuthenticate runs one step of the exchange begun by SaslHandshake.
func (s *session) saslAuthenticate(h reqHeader) (stop bool, err error) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(h.body); err != nil {
		return false, fmt.Errorf("decode sasl authenticate: %w", err)
	}
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	if s.sasl == nil || s.authed {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return true, s.answer(h, resp, "refused", true)
	}
	out, done, principal, err := s.sasl.Step(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "authentication failed"
		resp.ErrorMessage = &msg
		s.log.Warn("kafka proxy: sasl authentication failed", "error", err)
		return true, s.answer(h, resp, "refused", true)
	}
	resp.SASLAuthBytes = out
	if done {
		r := s.p.cfg.Rights(principal)
		if r == nil {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "authentication failed"
			resp.ErrorMessage = &msg
			s.log.Warn("kafka proxy: authenticated principal has no rights entry", "principal", principal)
			return true, s.answer(h, resp, "refused", true)
		}
		s.authed, s.principal, s.rights, s.sasl = true, principal, r, nil
		s.log = s.log.With("principal", principal)
	}
	return false, s.answer(h, resp, "ok", false)
}
