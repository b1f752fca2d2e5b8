// Package kafkaproxy is a Kafka protocol proxy that applies kafkagate's topic
// policies to Produce and Fetch. Unmodified Kafka clients point their
// bootstrap address at it; records they produce are encrypted by the protect
// engine before they reach the broker, and records they fetch are decrypted
// for principals with the consume right.
//
// Each client connection gets one upstream connection to the broker its
// port stands for (port per broker: the bootstrap port P, and P+1+N for the
// broker with node id N). Frames are forwarded at the client's version;
// only ApiVersions, Metadata, FindCoordinator, DescribeCluster, Produce,
// Fetch and the SASL requests are decoded (with franz-go's kmsg) and
// rewritten. docs/proxy.md describes the decisions.
package kafkaproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Authenticator terminates SASL at the proxy. A nil Authenticator means no
// SASL: every client is the anonymous principal with every right.
type Authenticator interface {
	// Mechanisms are the SASL mechanisms offered (e.g. "PLAIN").
	Mechanisms() []string
	// Start begins one authentication exchange with mechanism.
	Start(mechanism string) (SASLSession, error)
}

// SASLSession is one SASL exchange. Step takes the client's message and
// returns the server's; when done, principal names the authenticated
// caller. An error refuses the client.
type SASLSession interface {
	Step(clientMsg []byte) (serverMsg []byte, done bool, principal string, err error)
}

// Rights are what a principal may do, as in the HTTP API: Can("produce",
// topic), Can("consume", topic), Can("admin", "").
type Rights interface {
	Can(right, topic string) bool
}

// The rights the proxy checks.
const (
	RightProduce = "produce"
	RightConsume = "consume"
	RightAdmin   = "admin"
)

// Engine encrypts and decrypts records (*protect.Engine).
type Engine interface {
	EncryptRecords(ctx context.Context, p *policy.Policy, recs []protect.Record) ([]protect.Sealed, error)
	Decrypt(ctx context.Context, recs []protect.Record) ([]protect.Opened, error)
}

// Policies finds a topic's policy (*policy.Set).
type Policies interface {
	For(topic string) (*policy.Policy, bool)
}

// Upstream is how the proxy reaches the Kafka cluster, with its own
// credentials.
type Upstream struct {
	Bootstrap []string    // host:port of the upstream bootstrap servers
	TLS       *tls.Config // nil: plaintext
	// SASL, when set, authenticates every upstream connection (franz-go's
	// plain or scram mechanisms).
	SASL        sasl.Mechanism
	DialTimeout time.Duration // default 10s
}

// Config configures a Proxy.
type Config struct {
	// Addr is the bootstrap listen address (host:port). Broker N listens
	// on the same host at port+1+N. Port 0 picks a free block of ports.
	Addr string
	// AdvertisedHost is the host written into rewritten broker addresses;
	// default Addr's host ("localhost" when that is empty or unspecified).
	AdvertisedHost string
	// MaxNodeID is the largest broker node id the port scheme maps
	// (default 63): ports P+1 .. P+1+MaxNodeID are reserved for brokers.
	MaxNodeID int32
	Upstream  Upstream
	Engine    Engine
	Policies  Policies
	Auth      Authenticator
	// TLS, when set, serves clients over TLS on every port (the handshake
	// comes before anything is read or the upstream is dialled).
	TLS *tls.Config
	// CertPrincipal maps the verified client certificate of a TLS
	// connection to a principal and its rights; a connection it names
	// needs no SASL. nil rights: the certificate names no principal.
	CertPrincipal func(tls.ConnectionState) (principal string, r Rights)
	// Rights maps an authenticated principal to its rights; required with
	// Auth.
	Rights func(principal string) Rights
	Logger *slog.Logger
	// Observer, when set, counts requests (the metrics package
	// implements it). Records are counted by the engine's own observer.
	Observer Observer
	// VaultTimeout bounds one engine call (default 10s): when Vault does
	// not answer in time the request gets a retriable error.
	VaultTimeout time.Duration
	// MaxFrameBytes bounds one request or response (default 100 MiB, as
	// Kafka's socket.request.max.bytes).
	MaxFrameBytes int
}

// Observer counts the proxy's requests by API name and result (ok,
// refused, error). It must not block.
type Observer interface {
	KafkaRequest(api, result string)
}

// Proxy is a Kafka protocol proxy. New binds the bootstrap port; Serve
// accepts clients until its context ends.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	boot     net.Listener
	host     string // listen host
	basePort int
	adv      string

	mu        sync.Mutex
	ctx       context.Context // Serve's; nil before Serve and after it returns
	nodes     map[int32]string
	listeners map[int32]net.Listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// Errors of New.
var ErrConfig = errors.New("kafka proxy configuration")

// New validates cfg and binds the bootstrap listener.
func New(cfg Config) (*Proxy, error) {
	if cfg.Engine == nil || cfg.Policies == nil {
		return nil, fmt.Errorf("%w: engine and policies are required", ErrConfig)
	}
	if len(cfg.Upstream.Bootstrap) == 0 {
		return nil, fmt.Errorf("%w: no upstream bootstrap servers", ErrConfig)
	}
	if cfg.Auth != nil && cfg.Rights == nil {
		return nil, fmt.Errorf("%w: an authenticator needs a rights lookup", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxNodeID <= 0 {
		cfg.MaxNodeID = 63
	}
	if cfg.VaultTimeout <= 0 {
		cfg.VaultTimeout = 10 * time.Second
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = 100 << 20
	}
	if cfg.Upstream.DialTimeout <= 0 {
		cfg.Upstream.DialTimeout = 10 * time.Second
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen address %q: %v", ErrConfig, cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: listen address %q: bad port", ErrConfig, cfg.Addr)
	}
	if port != 0 && port+1+int(cfg.MaxNodeID) > 65535 {
		return nil, fmt.Errorf("%w: port %d leaves no room for %d broker ports above it", ErrConfig, port, cfg.MaxNodeID+1)
	}
	boot, port, err := listenBlock(host, port)
	if err != nil {
		return nil, err
	}
	adv := cfg.AdvertisedHost
	if adv == "" {
		adv = host
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			adv = "localhost"
		}
	}
	return &Proxy{cfg: cfg, log: cfg.Logger, boot: boot, host: host, basePort: port, adv: adv,
		nodes: map[int32]string{}, listeners: map[int32]net.Listener{}, conns: map[net.Conn]struct{}{}}, nil
}

// listenBlock listens on host:port; with port 0 it picks a port whose next
// few ports (the first brokers') are free too.
func listenBlock(host string, port int) (net.Listener, int, error) {
	if port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, 0, fmt.Errorf("kafka proxy: listen: %w", err)
		}
		return l, port, nil
	}
	var last error
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, 0, fmt.Errorf("kafka proxy: listen: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		ok := p+8 <= 65535
		for i := 1; ok && i <= 8; i++ {
			t, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+i)))
			if err != nil {
				ok, last = false, err
				break
			}
			_ = t.Close()
		}
		if ok {
			return l, p, nil
		}
		_ = l.Close()
	}
	return nil, 0, fmt.Errorf("kafka proxy: no free block of ports: %w", last)
}

// Addr is the bootstrap address clients connect to (advertised host).
func (p *Proxy) Addr() string { return net.JoinHostPort(p.adv, strconv.Itoa(p.basePort)) }

// BrokerPort is the proxy port of the upstream broker with node id node:
// the bootstrap port + 1 + node.
func (p *Proxy) BrokerPort(node int32) (int, bool) {
	if node < 0 || node > p.cfg.MaxNodeID {
		return 0, false
	}
	return p.basePort + 1 + int(node), true
}

// Serve accepts clients until ctx ends, then closes every listener and
// connection and waits for their goroutines. It returns nil after a
// shutdown by ctx.
func (p *Proxy) Serve(ctx context.Context) error {
	p.mu.Lock()
	if p.ctx != nil {
		p.mu.Unlock()
		return errors.New("kafka proxy: Serve called twice")
	}
	p.ctx = ctx
	p.mu.Unlock()
	p.log.Info("kafka proxy listening", "bootstrap", p.Addr(), "upstream", fmt.Sprint(p.cfg.Upstream.Bootstrap))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept(ctx, p.boot, -1)
	}()
	<-ctx.Done()
	p.mu.Lock()
	_ = p.boot.Close()
	for _, l := range p.listeners {
		_ = l.Close()
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// Close releases the bootstrap listener of a proxy that never served.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return p.boot.Close()
	}
	return nil
}

// accept serves one listener: node -1 is the bootstrap port.
func (p *Proxy) accept(ctx context.Context, l net.Listener, node int32) {
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("kafka proxy: accept failed; listener closed", "node", node, "error", err)
			}
			return
		}
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.serveConn(ctx, c, node)
		}()
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil || p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// learn records the upstream address of node and makes sure the node's
// proxy port listens. It reports the proxy port, or false when node is
// outside the port scheme.
func (p *Proxy) learn(node int32, host string, port int32) (int, bool) {
	pp, ok := p.BrokerPort(node)
	if !ok {
		p.log.Error("kafka proxy: broker node id outside the port scheme; raise the max node id", "node", node, "max", p.cfg.MaxNodeID)
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[node] = net.JoinHostPort(host, strconv.Itoa(int(port)))
	if _, ok := p.listeners[node]; ok || p.ctx == nil || p.ctx.Err() != nil {
		return pp, true
	}
	l, err := net.Listen("tcp", net.JoinHostPort(p.host, strconv.Itoa(pp)))
	if err != nil {
		p.log.Error("kafka proxy: cannot listen for broker", "node", node, "port", pp, "error", err)
		return pp, true // clients get a connection error: fail closed
	}
	p.listeners[node] = l
	ctx := p.ctx
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept(ctx, l, node)
	}()
	p.log.Info("kafka proxy: broker port", "node", node, "port", pp)
	return pp, true
}

// count reports one answered request to the observer.
func (p *Proxy) count(key int16, result string) {
	if p.cfg.Observer != nil {
		p.cfg.Observer.KafkaRequest(kmsg.NameForKey(key), result)
	}
}

// upstreamAddr is the upstream address of node (-1: bootstrap servers).
func (p *Proxy) upstreamAddr(node int32) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.nodes[node]
	return a, ok
}
