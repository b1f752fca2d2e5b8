package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/metrics"
	"github.com/kafkagate/kafkagate/internal/server"
)

func newBridge(g *globals) *cobra.Command {
	var (
		source, target, group, dlq string
		exactlyOnce                bool
		batch                      int
		statsEvery                 time.Duration
		metricsAddr, pprofAddr     string
		membership                 groupFlags
	)
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Encrypt a topic into another (the original demo's encryptor), with no record lost and no plaintext written",
		Long: `bridge reads plaintext records from the source topic as a Kafka consumer group,
encrypts them with the target topic's [policy:<target>] (Vault transit, in batches)
and writes them to the target topic with their key, headers and timestamp.

Topics come from [encryptor] sourcetopic and targettopic (--source, --target
override). The target must have a policy: without one the bridge refuses to start.
Records that cannot be encrypted (invalid JSON, a field of the wrong type, ...) go
to the dead-letter topic (default <target>.dlq), sealed with the target's transit
key, with kafkagate.dlq.* headers giving the reason. Incoming kafkagate.* headers
are dropped: a record that already carries them is treated as plaintext input.

Delivery is at-least-once (a source offset is committed after its encrypted record
is acknowledged); --exactly-once uses Kafka transactions, so read_committed
consumers see each record once. If Vault or Kafka is unavailable the bridge pauses,
retries with backoff and commits nothing. SIGINT/SIGTERM finish the in-flight batch,
commit and exit 0.

The consumer group defaults to [encryptor] group.id, else kafkagate-bridge-<target>.
It is deliberately not [consumer] group.id: the original demo shared that one group
between all its programs, which then stole each other's partitions.

--metrics-listen ADDR serves Prometheus metrics at http://ADDR/metrics: the bridge's
records consumed, produced and dead-lettered (kafkagate_bridge_records_total), its
retries, suspected duplicates (kafkagate_bridge_duplicates_suspected_total), the
consumer group's lag over the source partitions (kafkagate_bridge_consumer_lag,
refreshed every few seconds, absent until known), and the Vault calls and records
encrypted. Labels carry topic names only, never record content. The endpoint has
no authentication, so ADDR must be a loopback address (127.0.0.1, [::1] or
localhost); put an authenticating proxy in front to expose it.

Group membership: --instance-id makes the bridge a static member (KIP-345,
[encryptor] group.instance.id), so a restarted instance with the same id takes its
partitions back at once instead of after the session timeout; give each replica its
own stable id (in Kubernetes, the pod name). --session-timeout and
--rebalance-timeout override [encryptor] session.timeout.ms and
max.poll.interval.ms; heartbeat.interval.ms sets the heartbeat. Rebalances are
cooperative ([encryptor] partition.assignment.strategy = cooperative-sticky, the
default): when a bridge joins or leaves, only the partitions that change owner stop.
A group of older bridges (eager "sticky") moves to it in two rolling restarts, first
with "cooperative-sticky,sticky", then with the default.

Vault comes from VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, cfg, err := g.loggerAndConfig(os.Stderr)
			if err != nil {
				return err
			}
			bc, err := bridge.FromFile(cfg, bridge.Topics{Source: source, Target: target, DLQ: dlq, Group: group})
			if err != nil {
				return err
			}
			// Bind before anything starts, so a taken address is a
			// one-line error and not a bridge without its metrics.
			var metricsLn net.Listener
			if metricsAddr != "" && !server.IsLoopback(metricsAddr) {
				return fmt.Errorf("--metrics-listen %s: the bridge serves its metrics without authentication, so on a loopback address only (e.g. 127.0.0.1:9464); expose them through an authenticating proxy", metricsAddr)
			}
			if metricsAddr != "" {
				if metricsLn, err = net.Listen("tcp", metricsAddr); err != nil {
					return fmt.Errorf("--metrics-listen %s: %w", metricsAddr, err)
				}
				defer metricsLn.Close()
			}
			if pprofAddr != "" {
				stop, err := server.ServePprof(cmd.Context(), pprofAddr, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			vcfg := envVault(log)
			if vcfg.Timeout == 0 {
				vcfg.Timeout = 10 * time.Second
			}
			// The core gives the engine every mode the policies use
			// (transit, fpe keys loaded from Vault, envelope). Kafka
			// unreachable at start pauses the bridge like later outages.
			var gw *core.Core
			for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
				gw, err = core.Open(core.Options{Config: cfg, Vault: vcfg, Logger: log, Brokers: g.brokerList()})
				if err == nil {
					break
				}
				if !errors.Is(err, kafka.ErrUnavailable) {
					return err
				}
				log.Warn("bridge paused: cannot reach kafka, retrying", "error", err, "backoff", wait)
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(wait):
				}
			}
			defer gw.Close()
			bc.Engine, bc.Kafka, bc.Logger = gw.Engine, gw.Kafka.Settings(), log
			bc.ExactlyOnce, bc.BatchSize, bc.StatsInterval = exactlyOnce, batch, statsEvery
			membership.apply(&bc.InstanceID, &bc.SessionTimeout, &bc.RebalanceTimeout)
			b, err := bridge.New(bc)
			if err != nil {
				return err
			}
			if metricsLn != nil {
				stop, err := serveBridgeMetrics(metricsLn, gw, b, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			return b.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "plaintext source topic (default: [encryptor] sourcetopic)")
	cmd.Flags().StringVar(&target, "target", "", "encrypted target topic, which must have a [policy:<target>] (default: [encryptor] targettopic)")
	cmd.Flags().StringVar(&group, "group", "", "consumer group (default: [encryptor] group.id, else kafkagate-bridge-<target>; never the shared [consumer] group.id)")
	cmd.Flags().StringVar(&dlq, "dlq", "", "dead-letter topic (default: [encryptor] dlqtopic, else <target>.dlq)")
	cmd.Flags().BoolVar(&exactlyOnce, "exactly-once", false, "write each batch and its source offsets in one Kafka transaction")
	cmd.Flags().IntVar(&batch, "batch", 500, "records per batch (one Vault call and one produce each)")
	cmd.Flags().DurationVar(&statsEvery, "stats-interval", 30*time.Second, "how often counts are logged (they are also logged at exit)")
	membership.bind(cmd, "[encryptor] ")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, a loopback address (e.g. 127.0.0.1:9464; default: none)")
	return cmd
}

// bridgeLagEvery is how often --metrics-listen refreshes the consumer lag.
const bridgeLagEvery = 2 * time.Second

// serveBridgeMetrics serves gw's metrics registry, with b's counters and
// its consumer lag, on ln until the returned stop is called. stop shuts
// the server and the lag refresher down and unregisters b.
func serveBridgeMetrics(ln net.Listener, gw *core.Core, b *bridge.Bridge, log *slog.Logger) (stop func(), err error) {
	bc := b.Config()
	unwatch, err := gw.Metrics.WatchBridge(bc.Target, func() metrics.BridgeStats {
		s := b.Stats().Snapshot()
		return metrics.BridgeStats{Consumed: s.Consumed, Produced: s.Produced, DeadLettered: s.DeadLettered, Retries: s.Retries, Lag: b.Lag()}
	})
	if err != nil {
		return nil, fmt.Errorf("bridge metrics: %w", err)
	}
	dups := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "kafkagate", Subsystem: "bridge", Name: "duplicates_suspected_total",
		Help:        "Records the bridge processed again that a previous owner of their partition may already have written (an upper bound on at-least-once duplicates), by target topic.",
		ConstLabels: prometheus.Labels{"target": bc.Target},
	}, func() float64 { return float64(b.Stats().DuplicatesSuspected.Load()) })
	if err := gw.Metrics.Registry().Register(dups); err != nil {
		unwatch()
		return nil, fmt.Errorf("bridge metrics: %w", err)
	}
	stopHTTP := serveMetrics(ln, gw, log)
	ctx, cancel := context.WithCancel(context.Background())
	measured := make(chan struct{})
	go func() { // ends when stop cancels ctx
		defer close(measured)
		b.WatchLag(ctx, gw.Kafka, bridgeLagEvery)
	}()
	log.Info("bridge metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		cancel()
		stopHTTP()
		<-measured
		gw.Metrics.Registry().Unregister(dups)
		unwatch()
	}, nil
}

// groupFlags are the consumer-group membership flags of bridge and
// receive-dir.
type groupFlags struct {
	instanceID         string
	session, rebalance time.Duration
}

// bind declares --instance-id, --session-timeout and --rebalance-timeout;
// from names where the defaults come from, if anywhere.
func (f *groupFlags) bind(cmd *cobra.Command, from string) {
	def := "sarama's"
	if from != "" {
		def = from + "or sarama's"
	}
	cmd.Flags().StringVar(&f.instanceID, "instance-id", "", "static group membership (group.instance.id, KIP-345): a stable id per replica, e.g. the pod name; a restart with the same id takes its partitions back at once")
	cmd.Flags().DurationVar(&f.session, "session-timeout", 0, "consumer group session timeout (default: "+def+" 10s)")
	cmd.Flags().DurationVar(&f.rebalance, "rebalance-timeout", 0, "how long a rebalance waits for members to rejoin (default: "+def+" 60s)")
}

// apply overrides the settings with the flags given.
func (f *groupFlags) apply(instanceID *string, session, rebalance *time.Duration) {
	if f.instanceID != "" {
		*instanceID = f.instanceID
	}
	if f.session > 0 {
		*session = f.session
	}
	if f.rebalance > 0 {
		*rebalance = f.rebalance
	}
}
