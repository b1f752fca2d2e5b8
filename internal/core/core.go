// Package core connects a kafkagate process to its Vault and its Kafka
// cluster: the Vault client, the coalescing transit client, the FPE
// keyring, the protect engine, the Kafka client and the process's metrics
// registry. Every command that encrypts or decrypts starts from a Core
// (the bridge, the key commands, the demos, the bench, kgclient); the HTTP
// server (package server) adds the API and the viewer on top of one.
package core

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/metrics"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Options configure a Core.
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

// Core is a process's connection to Vault and Kafka and the engine built
// on them. Its fields are set by Open and not changed afterwards.
type Core struct {
	Config  *config.File
	Vault   *vaultclient.Client
	Transit *transit.Client
	Engine  *protect.Engine
	Kafka   *kafka.Client
	// FPEKeys is the FPE keyring (nil when no policy uses fpe or
	// Options.FPE was set).
	FPEKeys *vaultkeyring.Keyring
	// Metrics is the process's Prometheus registry and collectors; the
	// transit client and the engine report into it.
	Metrics *metrics.Metrics

	fpeRef *fpeRefresher
	log    *slog.Logger
}

// Open connects to Kafka and prepares the Vault client. Vault is checked
// per call, failing closed, so a process can start before Vault; only an
// FPE keyring that can never load (its token is denied) fails Open.
func Open(o Options) (*Core, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Vault.Logger == nil {
		o.Vault.Logger = o.Logger
	}
	depth, err := MaxJSONDepth(o.Config)
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
		vc.Close()
		return nil, err
	}
	kc, err := kafka.Dial(ks)
	if err != nil {
		vc.Close()
		return nil, err
	}
	c := &Core{Config: o.Config, Vault: vc, Kafka: kc, Metrics: metrics.New(), log: o.Logger}
	c.Transit = transit.New(vc, transit.Options{Mount: o.Config.Get("kafkagate", "transit_mount", "transit"), Observer: c.Metrics})
	f := o.FPE
	if domains := o.Config.Policies.FPEDomains(); f == nil && len(domains) > 0 {
		if c.FPEKeys, c.fpeRef, err = startFPE(vc, o.Config, domains, o.Logger); err != nil {
			kc.Close()
			vc.Close()
			return nil, err
		}
		f = fpeAdapter{c.FPEKeys.Service()}
	}
	c.Engine = protect.New(c.Transit, protect.Options{FPE: f, Policies: o.Config.Policies, MaxDepth: depth, Observer: c.Metrics})
	if err := c.Metrics.WatchDEKCache(c.dekStats); err != nil {
		c.Close()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return c, nil
}

// dekStats adapts the engine's envelope DEK counters for the metrics.
func (c *Core) dekStats() metrics.DEKCacheStats {
	seal, open := c.Engine.DEKCacheStats()
	return metrics.DEKCacheStats{SealHits: seal.Hits, SealFetches: seal.Fetches, OpenHits: open.Hits,
		OpenMisses: open.Misses, UnwrapCalls: open.UnwrapCalls, Cached: open.Size}
}

// Close stops the FPE refresher, the engine and the Kafka client, then
// the Vault client (which stops token renewal and revokes a login token).
func (c *Core) Close() error {
	defer c.Vault.Close()
	if c.fpeRef != nil {
		c.fpeRef.Close()
	}
	c.Engine.Close()
	return c.Kafka.Close()
}

// MaxJSONDepth reads [kafkagate] max_json_depth, the deepest JSON nesting
// of a record value the engine reads (1–10000; protect.DefaultMaxDepth
// when unset).
func MaxJSONDepth(f *config.File) (int, error) {
	v := f.Get("kafkagate", "max_json_depth", "")
	if v == "" {
		return protect.DefaultMaxDepth, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10_000 {
		return 0, fmt.Errorf("%w: [kafkagate] max_json_depth = %q: want an integer from 1 to 10000", config.ErrConfig, v)
	}
	return n, nil
}
