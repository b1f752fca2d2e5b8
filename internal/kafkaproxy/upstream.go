package kafkaproxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// dialUpstream opens an authenticated connection to node's broker (node -1:
// the first bootstrap server that answers).
func (p *Proxy) dialUpstream(ctx context.Context, node int32) (net.Conn, error) {
	if node < 0 {
		var errs []error
		for _, a := range p.cfg.Upstream.Bootstrap {
			c, err := p.dialAddr(ctx, a)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	addr, ok := p.upstreamAddr(node)
	if !ok {
		if err := p.refreshNodes(ctx); err != nil {
			return nil, err
		}
		if addr, ok = p.upstreamAddr(node); !ok {
			return nil, fmt.Errorf("upstream has no broker with node id %d", node)
		}
	}
	return p.dialAddr(ctx, addr)
}

func (p *Proxy) dialAddr(ctx context.Context, addr string) (net.Conn, error) {
	u := p.cfg.Upstream
	ctx, cancel := context.WithTimeout(ctx, u.DialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", addr, err)
	}
	if u.TLS != nil {
		cfg := u.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("upstream %s: tls: %w", addr, err)
		}
		c = tc
	}
	if u.SASL != nil {
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		if err := p.authenticateUpstream(ctx, c, addr); err != nil {
			_ = c.Close()
			return nil, err
		}
		_ = c.SetDeadline(time.Time{})
	}
	return c, nil
}

// authenticateUpstream runs the proxy's own SASL exchange on c
// (SaslHandshake v1, then SaslAuthenticate).
func (p *Proxy) authenticateUpstream(ctx context.Context, c net.Conn, addr string) error {
	m := p.cfg.Upstream.SASL
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = m.Name()
	r, err := roundTrip(c, hs, p.cfg.MaxFrameBytes)
	if err != nil {
		return fmt.Errorf("upstream %s: sasl handshake: %w", addr, err)
	}
	if err := kerr.ErrorForCode(r.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return fmt.Errorf("upstream %s: sasl handshake %s: %w", addr, m.Name(), err)
	}
	host, _, _ := net.SplitHostPort(addr)
	sess, msg, err := m.Authenticate(ctx, host)
	if err != nil {
		return fmt.Errorf("upstream %s: sasl: %w", addr, err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version = 1
		req.SASLAuthBytes = msg
		r, err := roundTrip(c, req, p.cfg.MaxFrameBytes)
		if err != nil {
			return fmt.Errorf("upstream %s: sasl authenticate: %w", addr, err)
		}
		resp := r.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("upstream %s: sasl authenticate: %w", addr, err)
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return fmt.Errorf("upstream %s: sasl: %w", addr, err)
		}
		if done && next == nil {
			return nil
		}
		msg = next
		if done {
			// A last message without an answer to read is not used by
			// PLAIN or SCRAM; send it and stop.
			b := kmsg.NewRequestFormatter().AppendRequest(nil, &kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: msg}, 0)
			_, err := c.Write(b)
			return err
		}
	}
}

// refreshNodes learns the upstream brokers from a Metadata request on a
// bootstrap connection.
func (p *Proxy) refreshNodes(ctx context.Context) error {
	c, err := p.dialUpstream(ctx, -1)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	req.Topics = []kmsg.MetadataRequestTopic{}
	r, err := roundTrip(c, req, p.cfg.MaxFrameBytes)
	if err != nil {
		return fmt.Errorf("upstream metadata: %w", err)
	}
	for _, b := range r.(*kmsg.MetadataResponse).Brokers {
		p.learn(b.NodeID, b.Host, b.Port)
	}
	return nil
}

// roundTrip sends req on c and reads its response.
func roundTrip(c net.Conn, req kmsg.Request, max int) (kmsg.Response, error) {
	const corr = 1
	if _, err := c.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("kafkagate-proxy")).AppendRequest(nil, req, corr)); err != nil {
		return nil, err
	}
	frame, err := readFrame(c, max)
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	gotCorr, body, err := splitResponse(frame, resp)
	if err != nil {
		return nil, err
	}
	if gotCorr != corr {
		return nil, fmt.Errorf("response correlation id %d, want %d", gotCorr, corr)
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// readFrame reads one size-prefixed Kafka frame (without the size).
func readFrame(r io.Reader, max int) ([]byte, error) {
	b, err := readFrameInto(r, max, nil)
	if err != nil {
		return nil, err
	}
	return b[4:], nil
}

// readFrameInto reads one size-prefixed Kafka frame into buf, reused when
// it is large enough, and returns it with its 4-byte size.
func readFrameInto(r io.Reader, max int, buf []byte) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || int(n) > max {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, max)
	}
	if cap(buf) < 4+int(n) {
		buf = make([]byte, 4+int(n))
	}
	b := buf[:4+int(n)]
	copy(b, size[:])
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

// keepBuffer is the largest buffer a connection keeps for its next frame;
// a larger one is left to the garbage collector.
const keepBuffer = 8 << 20

// arena hands out the rewritten record bytes of one request or response
// from one buffer that is reused once that request or response is written.
// A partition that outgrows what is left gets a buffer of its own.
type arena struct{ buf []byte }

// reset empties a for the next request or response, with room for want
// bytes.
func (a *arena) reset(want int) {
	a.buf = reusable(a.buf)
	if cap(a.buf) < want {
		a.buf = make([]byte, 0, want)
	}
}

// next is an empty slice over a's free room: append to it, then keep it.
func (a *arena) next() []byte { return a.buf[len(a.buf):len(a.buf)] }

// keep marks b, appended to next(), as used when it still lies in a.
func (a *arena) keep(b []byte) {
	n := len(a.buf)
	if len(b) > 0 && n < cap(a.buf) && len(b) <= cap(a.buf)-n && &a.buf[:n+1][n] == &b[0] {
		a.buf = a.buf[:n+len(b)]
	}
}

// reusable returns b emptied for reuse, or nil when it is too large to keep.
func reusable(b []byte) []byte {
	if cap(b) > keepBuffer {
		return nil
	}
	return b[:0]
}

// splitResponse splits a response frame into its correlation id and body;
// resp (with its version set) says whether the header is flexible.
func splitResponse(frame []byte, resp kmsg.Response) (int32, []byte, error) {
	r := kbin.Reader{Src: frame}
	corr := r.Int32()
	if resp.IsFlexible() && resp.Key() != 18 { // ApiVersions keeps the v0 header
		kmsg.SkipTags(&r)
	}
	if err := r.Complete(); err != nil {
		return 0, nil, fmt.Errorf("short response header: %w", err)
	}
	return corr, r.Src, nil
}

// appendResponse encodes resp as a frame answering corr.
func appendResponse(dst []byte, resp kmsg.Response, corr int32) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
