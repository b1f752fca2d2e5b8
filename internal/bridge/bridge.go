// Package bridge is kafkagate's encryptor bridge: it reads plaintext
// records from a source topic as a Kafka consumer group, encrypts them with
// the target topic's policy (one Vault batch for many records) and writes
// them to the target topic, without losing a record and without writing
// plaintext anywhere. Records that cannot be encrypted go, sealed whole
// with Vault transit, to a dead-letter topic with headers that say why.
//
// Delivery is at-least-once by default (idempotent producer, acks=all, a
// source offset is committed only after its output is acknowledged) and
// exactly-once with Config.ExactlyOnce (Kafka transactions that carry the
// source offsets). Vault or Kafka being unavailable pauses the bridge: it
// backs off and retries and commits nothing meanwhile. See docs/bridge.md.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Headers the bridge writes (defined in package kafka, which rewrap's
// dead letters share). Incoming headers named kafkagate.* are dropped
// before these are added, so none can be forged through the source.
const (
	// HeaderSource on target records: "topic/partition/offset" of the
	// source record, so a consumer can discard at-least-once duplicates.
	HeaderSource = kafka.HeaderSource
	// HeaderDLQSource is HeaderSource on dead-letter records.
	HeaderDLQSource = kafka.HeaderDLQSource
	// HeaderDLQCode is the stable reason code (protect's codes, or
	// CodeTooLarge).
	HeaderDLQCode = kafka.HeaderDLQCode
	// HeaderDLQReason is the human-readable reason.
	HeaderDLQReason = kafka.HeaderDLQReason
	// HeaderDLQField names the field at fault, when there is one.
	HeaderDLQField = kafka.HeaderDLQField
	// HeaderDLQValue is "omitted" when even the sealed value was too large
	// for the dead-letter topic.
	HeaderDLQValue = kafka.HeaderDLQValue
)

// CodeTooLarge: the encrypted record exceeds the target's size limit.
const CodeTooLarge = "record_too_large"

// Offset commit metadata: "kgb1" when the committed offset is clean,
// "kgb1 inflight=N" while records up to offset N have been handed to the
// producer and are not yet acknowledged.
const (
	metaClean    = "kgb1"
	metaInflight = "kgb1 inflight="
)

// Config configures a bridge.
type Config struct {
	Source string // plaintext topic
	Target string // encrypted topic
	DLQ    string // dead-letter topic; default Target + ".dlq"
	// Group is the consumer group; default "kafkagate-bridge-" + Target.
	Group string
	// Policy is the target topic's policy (required): the bridge fails
	// closed, it never writes to a topic without one.
	Policy *policy.Policy
	Engine *protect.Engine
	Kafka  *kafka.Settings
	// ExactlyOnce runs each batch in a Kafka transaction that also
	// commits the source offsets (one transactional producer per claimed
	// partition).
	ExactlyOnce bool

	BatchSize     int           // records per batch; default 500
	BatchWait     time.Duration // how long a batch waits to fill; default 20 ms
	BackoffMin    time.Duration // first wait after a failure; default 100 ms
	BackoffMax    time.Duration // longest wait; default 5 s
	DrainTimeout  time.Duration // how long an in-flight batch may finish after a stop or rebalance; default 10 s
	StatsInterval time.Duration // periodic stats log; default 30 s, < 0 disables

	SessionTimeout    time.Duration // group session timeout; 0: sarama's 10 s
	RebalanceTimeout  time.Duration // how long a rebalance waits for members; 0: sarama's 60 s
	HeartbeatInterval time.Duration // group heartbeat; 0: sarama's 3 s
	// InstanceID makes the bridge a static group member
	// (group.instance.id): a restart within the session timeout keeps its
	// partitions without a rebalance.
	InstanceID string

	Logger *slog.Logger
}

// Bridge copies a source topic to an encrypted target topic.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	stats   Stats
	running atomic.Bool
	lag     atomic.Int64 // see WatchLag
}

// New checks cfg and returns a bridge; Run starts it.
func New(cfg Config) (*Bridge, error) {
	if cfg.Source == "" || cfg.Target == "" {
		return nil, errors.New("bridge: source and target topics are required")
	}
	if cfg.DLQ == "" {
		cfg.DLQ = cfg.Target + ".dlq"
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup(cfg.Target)
	}
	if cfg.Source == cfg.Target || cfg.Source == cfg.DLQ || cfg.Target == cfg.DLQ {
		return nil, fmt.Errorf("bridge: source %q, target %q and dead-letter topic %q must differ", cfg.Source, cfg.Target, cfg.DLQ)
	}
	if cfg.Policy == nil {
		return nil, fmt.Errorf("bridge: target topic %q has no policy: refusing to write to it", cfg.Target)
	}
	if cfg.Policy.Topic != cfg.Target {
		return nil, fmt.Errorf("bridge: the policy given is for topic %q, not the target %q", cfg.Policy.Topic, cfg.Target)
	}
	if cfg.Engine == nil || cfg.Kafka == nil {
		return nil, errors.New("bridge: an engine and Kafka settings are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(5*time.Second, cfg.BackoffMin)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Bridge{cfg: cfg}
	b.lag.Store(-1)
	b.log = cfg.Logger.With("source", cfg.Source, "target", cfg.Target, "group", cfg.Group)
	return b, nil
}

// DefaultGroup is the consumer group of a bridge writing to target. Each
// bridge has its own group: the original demo's programs shared one and
// stole each other's partitions.
func DefaultGroup(target string) string { return "kafkagate-bridge-" + target }

// Stats returns the bridge's live counters.
func (b *Bridge) Stats() *Stats { return &b.stats }

// Config returns the effective configuration (defaults filled in).
func (b *Bridge) Config() Config { return b.cfg }

// TransactionalID is the transactional id of the producer that owns one
// source partition in exactly-once mode.
func TransactionalID(group, source string, partition int32) string {
	return fmt.Sprintf("kafkagate-bridge-%s-%s-%d", group, source, partition)
}

// Run bridges until ctx ends, then finishes the in-flight batches, commits
// and returns nil. Kafka or Vault being unavailable never ends Run: it
// backs off and retries. It returns an error only for a configuration that
// sarama refuses.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("bridge: already running")
	}
	defer b.running.Store(false)
	mode := "at-least-once"
	if b.cfg.ExactlyOnce {
		mode = "exactly-once"
	}
	b.log.Info("bridge starting", "dlq", b.cfg.DLQ, "mode", mode, "policy", string(b.cfg.Policy.Mode), "batch", b.cfg.BatchSize)

	if err := kafka.CheckGroup(b.cfg.Kafka, b.groupOptions()); err != nil {
		return fmt.Errorf("bridge: kafka configuration: %w", err)
	}
	if err := kafka.CheckProducer(b.cfg.Kafka, b.producerOptions("")); err != nil {
		return fmt.Errorf("bridge: kafka configuration: %w", err)
	}
	stopStats := b.logStatsEvery(b.cfg.StatsInterval)
	defer func() {
		stopStats()
		b.log.Info("bridge stopped", b.stats.Snapshot().LogAttrs()...)
	}()

	cl, err := b.connect(ctx)
	if err != nil {
		return nil // ctx ended before Kafka answered
	}
	defer cl.close()
	h := &handler{b: b, producer: cl.producer, admin: cl.admin}
	return cl.group.Run(ctx, kafka.GroupHandler{Setup: h.setup, Claim: h.claim, Cleanup: h.cleanup})
}

// retrySession is told of each failed group session. In exactly-once mode
// it fences the transactions left open by a stopped bridge when they keep
// the group's offsets unstable.
func (b *Bridge) retrySession(admin *kafka.Admin) func(error, time.Duration) {
	var unstableSince time.Time // when the group's offsets became unstable
	return func(err error, d time.Duration) {
		if b.cfg.ExactlyOnce && errors.Is(err, kafka.ErrUnstableOffsets) {
			// A transaction holding offsets of this group is open. A live
			// member's lasts milliseconds (eager rebalancing ended them all
			// before this session); one that stays open belongs to a bridge
			// that died in it, and would block every read_committed offset
			// fetch until the broker times it out (a minute by default).
			if unstableSince.IsZero() {
				unstableSince = time.Now()
			} else if time.Since(unstableSince) >= unstableGrace {
				b.fenceAbandoned(admin)
				unstableSince = time.Time{}
			}
		}
		b.stats.Retries.Add(1)
		b.log.Warn("bridge paused: consumer group failed, retrying", "error", err, "backoff", d)
	}
}

// unstableGrace is how long the group's offsets may stay unstable (an open
// transaction) before exactly-once mode fences the transactions left open.
const unstableGrace = time.Second

// fenceAbandoned initialises the transactional id of every source
// partition, which makes the broker abort the transaction a killed
// bridge left open and fences its producer. A live bridge fenced by
// mistake loses only its open transaction: it aborts it and retries the
// batch with a new producer (deliverTxn).
func (b *Bridge) fenceAbandoned(admin *kafka.Admin) {
	parts, err := admin.Partitions(b.cfg.Source)
	if err != nil {
		b.log.Warn("cannot list the source partitions to fence abandoned transactions", "error", err)
		return
	}
	fenced := 0
	for _, p := range parts {
		pr, err := kafka.NewProducer(b.cfg.Kafka, b.producerOptions(TransactionalID(b.cfg.Group, b.cfg.Source, p)))
		if err != nil {
			b.log.Warn("cannot fence a transactional id", "partition", p, "error", err)
			continue
		}
		_ = pr.Close()
		fenced++
	}
	b.log.Warn("offsets stayed unstable: fenced the transactional ids of the source partitions, aborting transactions left open by a stopped bridge",
		"partitions", fenced, "after", unstableGrace)
}

// clients are the long-lived Kafka clients of one Run.
type clients struct {
	group    *kafka.Group
	producer *kafka.Producer // nil in exactly-once mode
	admin    *kafka.Admin    // reads committed offsets and their metadata
}

func (c *clients) close() {
	if c.group != nil {
		_ = c.group.Close()
	}
	if c.producer != nil {
		_ = c.producer.Close()
	}
	if c.admin != nil {
		_ = c.admin.Close()
	}
}

// connect builds the clients, retrying with backoff until Kafka answers
// or ctx ends.
func (b *Bridge) connect(ctx context.Context) (*clients, error) {
	bo := b.backoff()
	for {
		c, err := b.tryConnect()
		if err == nil {
			return c, nil
		}
		b.stats.Retries.Add(1)
		d := bo.Next()
		b.log.Warn("bridge paused: cannot reach kafka, retrying", "error", err, "backoff", d)
		if err := kafka.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

func (b *Bridge) tryConnect() (*clients, error) {
	c := &clients{}
	var err error
	if !b.cfg.ExactlyOnce {
		if c.producer, err = kafka.NewProducer(b.cfg.Kafka, b.producerOptions("")); err != nil {
			return nil, fmt.Errorf("producer: %w", err)
		}
	}
	if c.admin, err = kafka.NewAdmin(b.cfg.Kafka, "-bridge-admin"); err != nil {
		c.close()
		return nil, err
	}
	o := b.groupOptions()
	o.OnRetry = b.retrySession(c.admin)
	o.OnError = func(err error) { b.log.Warn("consumer group error", "error", err) }
	if c.group, err = kafka.JoinGroup(b.cfg.Kafka, o); err != nil {
		c.close()
		return nil, fmt.Errorf("consumer group: %w", err)
	}
	return c, nil
}

// groupOptions are the consumer group's options. Sticky keeps partitions
// where they are across rebalances. At-least-once: marks are made only
// after acknowledgement, and committed every second, before each batch,
// and when a claim ends. Exactly-once: offsets travel in the transactions
// only.
func (b *Bridge) groupOptions() kafka.GroupOptions {
	return kafka.GroupOptions{
		Group: b.cfg.Group, Topic: b.cfg.Source, ClientSuffix: "-bridge",
		Initial: kafka.OffsetOldest, ReadCommitted: true, Balance: kafka.BalanceSticky,
		AutoCommit:     !b.cfg.ExactlyOnce,
		SessionTimeout: b.cfg.SessionTimeout, RebalanceTimeout: b.cfg.RebalanceTimeout,
		HeartbeatInterval: b.cfg.HeartbeatInterval, InstanceID: b.cfg.InstanceID,
		BackoffMin: b.cfg.BackoffMin, BackoffMax: b.cfg.BackoffMax,
	}
}

// producerOptions are the producer's options: idempotent, acks=all,
// partition by key; transactional when txnID is set.
func (b *Bridge) producerOptions(txnID string) kafka.ProducerOptions {
	return kafka.ProducerOptions{ClientSuffix: "-bridge", TransactionalID: txnID}
}

func (b *Bridge) logStatsEvery(d time.Duration) (stop func()) {
	if d < 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Run: ends when stop is called
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.log.Info("bridge stats", b.stats.Snapshot().LogAttrs()...)
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// backoff doubles from BackoffMin to BackoffMax.
func (b *Bridge) backoff() *kafka.Backoff {
	return kafka.NewBackoff(b.cfg.BackoffMin, b.cfg.BackoffMax)
}

// drainContext returns a context that ends grace after parent ends, so an
// in-flight batch can finish after a stop or a rebalance but not forever.
// release frees its timer.
func drainContext(parent context.Context, grace time.Duration) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	var (
		mu    sync.Mutex
		timer *time.Timer
		done  bool
	)
	stop := context.AfterFunc(parent, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			timer = time.AfterFunc(grace, cancel)
		}
	})
	return ctx, func() {
		stop()
		mu.Lock()
		done = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// carryHeaders copies a source record's headers except kafkagate.* ones,
// which only kafkagate may write.
func carryHeaders(in []kafka.Header) []kafka.Header {
	out := make([]kafka.Header, 0, len(in)+3)
	for _, h := range in {
		if isReserved(h.Key) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// isReserved reports a header the bridge never carries from the source:
// kafkagate's own, and the original demo's legacy file headers, which would
// make readers take the record for another format.
func isReserved(name string) bool { return record.Reserved(name) }
