// Package gateway assembles a running kafkagate from its configuration:
// the Vault and Kafka clients, the protect engine and the HTTP API, and it
// serves them with a graceful shutdown. The CLI and the demos use it.
package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/metrics"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Options configure a gateway.
type Options struct {
	Config *config.File
	Vault  vaultclient.Config
	Logger *slog.Logger
	// Brokers overrides bootstrap.servers when set.
	Brokers []string
	// FPE, when set, serves fpe fields instead of a keyring loaded from
	// Vault for the domains the policies name.
	FPE protect.FPE
}

// Gateway is an assembled kafkagate.
type Gateway struct {
	Config  *config.File
	Vault   *vaultclient.Client
	Transit *transit.Client
	Engine  *protect.Engine
	Kafka   *kafka.Client
	API     *httpapi.Server
	// FPEKeys is the FPE keyring (nil when no policy uses fpe).
	FPEKeys *vaultkeyring.Keyring
	fpeRef  *fpeRefresher
	// Settings are the [kafkagate] serving keys; Access is the parsed
	// access_file (nil: authentication off).
	Settings Settings
	Access   *httpapi.Access
	// Metrics is the gateway's own Prometheus registry and collectors,
	// served at /metrics.
	Metrics *metrics.Metrics
	// UI is the live viewer served under /ui (viewer.go); nil with
	// [kafkagate] ui = off.
	UI       http.Handler
	log      *slog.Logger
	draining atomic.Bool // set once Serve drains (drain.go)
}

// New connects to Kafka and prepares the Vault client (Vault is checked
// per request, failing closed, so a gateway can start before Vault).
func New(o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Vault.Logger == nil {
		o.Vault.Logger = o.Logger
	}
	set, access, err := loadServing(o.Config)
	if err != nil {
		return nil, err
	}
	vc, err := vaultclient.New(o.Vault)
	if err != nil {
		return nil, err
	}
	props := o.Config.Section("default")
	if props == nil {
		props = map[string]string{}
	}
	if len(o.Brokers) > 0 {
		props["bootstrap.servers"] = strings.Join(o.Brokers, ",")
	}
	ks, err := kafka.Configure(props, o.Logger)
	if err != nil {
		return nil, err
	}
	kc, err := kafka.Dial(ks)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Config: o.Config, Vault: vc, Kafka: kc, Settings: set, Access: access, Metrics: metrics.New(), log: o.Logger}
	g.Transit = transit.New(vc, transit.Options{Mount: o.Config.Get("kafkagate", "transit_mount", "transit"), Observer: g.Metrics})
	f := o.FPE
	if domains := o.Config.Policies.FPEDomains(); f == nil && len(domains) > 0 {
		if g.FPEKeys, g.fpeRef, err = startFPE(vc, o.Config, domains, o.Logger); err != nil {
			kc.Close()
			return nil, err
		}
		f = fpeAdapter{g.FPEKeys.Service()}
	}
	g.Engine = protect.New(g.Transit, protect.Options{FPE: f, Policies: o.Config.Policies, MaxDepth: set.engineDepth(), Observer: g.Metrics})
	if err := g.Metrics.WatchDEKCache(g.dekStats); err != nil {
		kc.Close()
		return nil, err
	}
	// The streaming file upload (POST .../topics/{topic}/files, docs/files.md).
	files, err := filetransfer.NewSender(filetransfer.SenderOptions{Keys: envelope.NewKMSKeys(g.Transit), Producer: kc,
		MaxMessageBytes: ks.MaxMessageBytes(), Logger: o.Logger})
	if err != nil {
		kc.Close()
		return nil, err
	}
	g.API = httpapi.New(set.apply(httpapi.Config{Engine: g.Engine, Policies: o.Config.Policies, Kafka: kc, Vault: vc, Logger: o.Logger, Access: access, Metrics: g.Metrics, Files: files, Admin: adminService{g}}))
	g.UI = g.newViewer()
	return g, nil
}

// dekStats adapts the engine's envelope DEK counters for the metrics.
func (g *Gateway) dekStats() metrics.DEKCacheStats {
	seal, open := g.Engine.DEKCacheStats()
	return metrics.DEKCacheStats{SealHits: seal.Hits, SealFetches: seal.Fetches, OpenHits: open.Hits,
		OpenMisses: open.Misses, UnwrapCalls: open.UnwrapCalls, Cached: open.Size}
}

// Close closes the API's v2 consumer instances, stops the FPE refresher
// and releases the Kafka client.
func (g *Gateway) Close() error {
	defer g.Vault.Close() // stops token renewal; revokes an AppRole/Kubernetes login token
	g.API.Close()         // v2 consumer instances leave their groups
	if g.fpeRef != nil {
		g.fpeRef.Close()
	}
	g.Engine.Close()
	return g.Kafka.Close()
}

// Listen opens the API's listener.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// DefaultIdleTimeout is how long an idle keep-alive connection is kept
// ([kafkagate] idle_timeout).
const DefaultIdleTimeout = 120 * time.Second

// NewHTTPServer is every HTTP server the product runs (the API, pprof,
// the bridge's metrics): headers within 10 s, idle keep-alive connections
// closed after idle (DefaultIdleTimeout when 0), so idle clients cannot
// hold connections for ever.
func NewHTTPServer(h http.Handler, idle time.Duration) *http.Server {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
}
