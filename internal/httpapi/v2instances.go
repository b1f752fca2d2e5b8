package httpapi

// Consumer instances of the REST Proxy v2 consumer API (v2consumer.go).
// An instance lives in the memory of the gateway replica that created it,
// as in REST Proxy: its subscription, its position and the records it has
// fetched but not yet returned. Each subscribed topic is one member of the
// instance's Kafka consumer group (kafka.JoinGroup); the members' claims
// hand records to the instance, and GET .../records takes them. An
// instance nobody used for the idle timeout is closed, leaving the group.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// ConsumerGroups is what the v2 consumer API needs of Kafka; KafkaGroups
// adapts a *kafka.Client.
type ConsumerGroups interface {
	// JoinGroup connects one member of a consumer group of one topic.
	JoinGroup(o kafka.GroupOptions) (*kafka.Group, error)
	// Topics lists the cluster's topics (topic_pattern subscriptions).
	Topics() ([]string, error)
	// CommittedOffsets reads a group's committed offsets of partitions of
	// one topic.
	CommittedOffsets(group, topic string, parts []int32) (map[int32]kafka.Committed, error)
}

// KafkaGroups is ConsumerGroups over a Kafka client.
type KafkaGroups struct{ Client *kafka.Client }

// JoinGroup implements ConsumerGroups.
func (k KafkaGroups) JoinGroup(o kafka.GroupOptions) (*kafka.Group, error) {
	return kafka.JoinGroup(k.Client.Settings(), o)
}

// Topics implements ConsumerGroups.
func (k KafkaGroups) Topics() ([]string, error) { return k.Client.Topics() }

// CommittedOffsets implements ConsumerGroups with a short-lived admin
// client.
func (k KafkaGroups) CommittedOffsets(group, topic string, parts []int32) (map[int32]kafka.Committed, error) {
	a, err := kafka.NewAdmin(k.Client.Settings(), "-v2-offsets")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kafka.ErrUnavailable, err)
	}
	defer a.Close()
	out, err := a.CommittedOffsets(group, topic, parts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kafka.ErrUnavailable, err)
	}
	return out, nil
}

// V2Config configures the REST Proxy v2 consumer API.
type V2Config struct {
	// Groups reaches Kafka; nil: Config.Kafka when it is a *kafka.Client,
	// else the API answers 501.
	Groups ConsumerGroups
	// IdleTimeout closes an instance no request used for this long
	// (REST Proxy's consumer.instance.timeout.ms); default 5 min.
	IdleTimeout time.Duration
	// MaxInstances bounds the replica's instances (default 256),
	// MaxPerPrincipal one principal's (default 16), MaxTopics the topics
	// of one subscription (default 32).
	MaxInstances    int
	MaxPerPrincipal int
	MaxTopics       int
	// DefaultWait is how long GET .../records waits for a first record
	// without a timeout parameter (default 1 s); MaxWait caps the
	// parameter (default half the request timeout).
	DefaultWait time.Duration
	MaxWait     time.Duration
	// MaxResponseBytes caps max_bytes (default 8 MiB).
	MaxResponseBytes int64
	// SessionTimeout and HeartbeatInterval tune the group membership
	// (0: sarama's defaults).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// PatternRefresh is how often a topic_pattern subscription looks for
	// new matching topics, at a fetch (default 1 min).
	PatternRefresh time.Duration
}

// v2Key names an instance: its Kafka group (which holds the principal,
// V2Group) and its name.
type v2Key struct{ group, name string }

// v2Manager holds a replica's instances.
type v2Manager struct {
	cfg V2Config
	log *slog.Logger

	mu          sync.Mutex
	instances   map[v2Key]*v2Instance
	byPrincipal map[string]int
	closed      bool
	// closing counts instances being closed by their idle timer, so Close
	// can wait for them.
	closing sync.WaitGroup
}

func newV2Manager(cfg V2Config, log *slog.Logger) *v2Manager {
	return &v2Manager{cfg: cfg, log: log, instances: map[v2Key]*v2Instance{}, byPrincipal: map[string]int{}}
}

// errV2Exists, errV2Full and errV2PrincipalFull are add's refusals.
var (
	errV2Exists        = errors.New("consumer instance exists")
	errV2Full          = errors.New("too many consumer instances")
	errV2PrincipalFull = errors.New("too many consumer instances for the principal")
	errV2Closed        = errors.New("the gateway is shutting down")
)

// add registers a new instance and starts its idle timer.
func (m *v2Manager) add(in *v2Instance) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return errV2Closed
	case m.instances[in.key] != nil:
		return errV2Exists
	case len(m.instances) >= m.cfg.MaxInstances:
		return errV2Full
	case m.byPrincipal[in.principal] >= m.cfg.MaxPerPrincipal:
		return errV2PrincipalFull
	}
	m.instances[in.key] = in
	m.byPrincipal[in.principal]++
	in.lastUse = time.Now()
	in.timer = time.AfterFunc(m.cfg.IdleTimeout, func() { m.expire(in) })
	return nil
}

// acquire finds an instance and marks it in use until release; nil when
// there is none (or it is being closed).
func (m *v2Manager) acquire(key v2Key) *v2Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.instances[key]
	if in == nil {
		return nil
	}
	in.mu.Lock()
	in.busy++
	in.mu.Unlock()
	return in
}

// release ends a request's use of in: its idle time starts again.
func (m *v2Manager) release(in *v2Instance) {
	in.mu.Lock()
	in.busy--
	in.lastUse = time.Now()
	in.mu.Unlock()
}

// remove takes in out of the manager (DELETE); false when it was already
// gone.
func (m *v2Manager) remove(in *v2Instance) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.instances[in.key] != in {
		return false
	}
	m.forget(in)
	return true
}

// forget drops in from the maps; m.mu is held.
func (m *v2Manager) forget(in *v2Instance) {
	delete(m.instances, in.key)
	if m.byPrincipal[in.principal]--; m.byPrincipal[in.principal] <= 0 {
		delete(m.byPrincipal, in.principal)
	}
	in.timer.Stop()
}

// expire runs on in's idle timer: it closes in when no request used it for
// the idle timeout, else waits again.
func (m *v2Manager) expire(in *v2Instance) {
	m.mu.Lock()
	if m.closed || m.instances[in.key] != in {
		m.mu.Unlock()
		return
	}
	in.mu.Lock()
	idle := time.Since(in.lastUse)
	if in.busy > 0 || idle < m.cfg.IdleTimeout {
		in.timer.Reset(max(m.cfg.IdleTimeout-idle, time.Second))
		in.mu.Unlock()
		m.mu.Unlock()
		return
	}
	in.mu.Unlock()
	m.forget(in)
	m.closing.Add(1)
	m.mu.Unlock()
	defer m.closing.Done()
	m.log.Info("v2 consumer instance closed after its idle timeout", "group", in.key.group, "instance", in.key.name, "idle_timeout", m.cfg.IdleTimeout)
	in.close()
}

// Close closes every instance (leaving their groups) and waits for those
// being closed by their idle timers.
func (m *v2Manager) Close() {
	m.mu.Lock()
	m.closed = true
	all := make([]*v2Instance, 0, len(m.instances))
	for _, in := range m.instances {
		all = append(all, in)
		m.forget(in)
	}
	m.mu.Unlock()
	for _, in := range all {
		in.close()
	}
	m.closing.Wait()
}

// v2Instance is one consumer instance.
type v2Instance struct {
	key        v2Key
	principal  string
	group      string // the group as the client named it
	format     string // binary, json or string
	autoCommit bool
	initial    int64         // kafka.OffsetOldest or kafka.OffsetNewest
	wait       time.Duration // consumer.request.timeout.ms: the records wait without a timeout parameter (0: the API's)
	timer      *time.Timer

	mu      sync.Mutex // guards busy and lastUse
	busy    int
	lastUse time.Time

	// op serialises the instance's operations, as REST Proxy does; it
	// guards sub and closed.
	op     sync.Mutex
	sub    *v2Sub
	closed bool // closed: a request that found the instance before may not subscribe again
}

// close stops the subscription (leaving the group; with auto commit the
// offsets of the records returned are committed).
func (in *v2Instance) close() {
	in.op.Lock()
	defer in.op.Unlock()
	in.sub.stop()
	in.sub, in.closed = nil, true
}

// v2Item is a record fetched by a claim, with the group session it came
// from (to mark and commit it).
type v2Item struct {
	rec  kafka.Record
	sess *kafka.Session
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

// v2Sub is a running subscription: one group member per topic.
type v2Sub struct {
	topics []string
	// match, for a topic_pattern subscription, tells the topics to add
	// when they appear (checked at a fetch every PatternRefresh); nil for
	// a list of topics.
	match    func(topic string) bool
	resolved time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	groups   []*kafka.Group
	wg       sync.WaitGroup // the members' Run goroutines
	recs     chan v2Item    // claims hand records here

	mu       sync.Mutex
	sessions map[string]*kafka.Session // current session per topic

	// Guarded by the instance's op: records taken from recs but not yet
	// returned (a response was full, or decryption failed), and the next
	// offset after the records returned, per partition.
	pending  []v2Item
	consumed map[tp]int64
}

// subscribe joins one group member per topic and starts consuming. A
// failure leaves nothing running. match, when set, is the topic_pattern
// the topics were found by (refresh adds new matching topics).
func subscribe(g ConsumerGroups, cfg V2Config, in *v2Instance, topics []string, match func(string) bool, log *slog.Logger) (*v2Sub, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sub := &v2Sub{match: match, resolved: time.Now(), ctx: ctx, cancel: cancel, recs: make(chan v2Item), sessions: map[string]*kafka.Session{}, consumed: map[tp]int64{}}
	for _, topic := range topics {
		if err := sub.join(g, cfg, in, topic, log); err != nil {
			sub.stop()
			return nil, err
		}
	}
	return sub, nil
}

// join adds a group member for topic and starts it.
func (sub *v2Sub) join(g ConsumerGroups, cfg V2Config, in *v2Instance, topic string, log *slog.Logger) error {
	grp, err := g.JoinGroup(kafka.GroupOptions{Group: in.key.group, Topic: topic, ClientSuffix: "-v2", Initial: in.initial,
		AutoCommit: in.autoCommit, SmallPrefetch: true, RequireTopic: true, ReadCommitted: true,
		SessionTimeout: cfg.SessionTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
		OnError: func(err error) {
			log.Warn("v2 consumer group error", "group", in.key.group, "instance", in.key.name, "topic", topic, "error", err)
		}})
	if err != nil {
		return err
	}
	sub.groups = append(sub.groups, grp)
	sub.topics = append(sub.topics, topic)
	sort.Strings(sub.topics)
	sub.wg.Add(1)
	go func() { // owned by sub: ends when stop cancels ctx
		defer sub.wg.Done()
		_ = grp.Run(sub.ctx, sub.handler(topic))
	}()
	return nil
}

// refresh adds, to a topic_pattern subscription, the matching topics that
// appeared since it last looked (every cfg.PatternRefresh), up to
// cfg.MaxTopics. Failures are logged; the subscription goes on as it is.
func (sub *v2Sub) refresh(g ConsumerGroups, cfg V2Config, in *v2Instance, log *slog.Logger) {
	if sub.match == nil || time.Since(sub.resolved) < cfg.PatternRefresh {
		return
	}
	sub.resolved = time.Now()
	all, err := g.Topics()
	if err != nil {
		log.Warn("v2 topic_pattern refresh", "group", in.key.group, "instance", in.key.name, "error", err)
		return
	}
	for _, t := range all {
		if !sub.match(t) || slices.Contains(sub.topics, t) {
			continue
		}
		if len(sub.topics) >= cfg.MaxTopics {
			log.Warn("v2 topic_pattern matches more topics than a subscription holds", "group", in.key.group, "instance", in.key.name, "max_topics", cfg.MaxTopics)
			return
		}
		if err := sub.join(g, cfg, in, t, log); err != nil {
			log.Warn("v2 topic_pattern refresh", "group", in.key.group, "instance", in.key.name, "topic", t, "error", err)
		}
	}
}

// handler hands a topic's claimed records to the instance.
func (sub *v2Sub) handler(topic string) kafka.GroupHandler {
	return kafka.GroupHandler{
		Setup: func(s *kafka.Session) {
			sub.mu.Lock()
			sub.sessions[topic] = s
			sub.mu.Unlock()
		},
		Cleanup: func(s *kafka.Session) {
			sub.mu.Lock()
			if sub.sessions[topic] == s {
				delete(sub.sessions, topic)
			}
			sub.mu.Unlock()
		},
		Claim: func(s *kafka.Session, c *kafka.Claim) {
			kafka.ForwardClaim(s, c, sub.recs, func(r kafka.Record) v2Item { return v2Item{rec: r, sess: s} })
		},
	}
}

// session is the current session of topic, nil between sessions.
func (sub *v2Sub) session(topic string) *kafka.Session {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.sessions[topic]
}

// stop leaves the group; nil does nothing.
func (sub *v2Sub) stop() {
	if sub == nil {
		return
	}
	sub.cancel()
	for _, g := range sub.groups {
		_ = g.Close()
	}
	sub.wg.Wait()
}

// live reports whether an item's session still holds its partition: a
// record fetched before a rebalance may now belong to another member.
func (it v2Item) live() bool { return it.sess.Context().Err() == nil }

// fetch gathers records: those pending first, then from the claims. It
// waits up to wait for a first record, then takes what arrives without a
// pause, up to maxBytes of keys and values (at least one record) and
// maxRecords.
func (sub *v2Sub) fetch(ctx context.Context, wait time.Duration, maxBytes int64, maxRecords int) []v2Item {
	var out []v2Item
	var size int64
	// fits adds it to out unless the response is full; a record whose
	// session ended is dropped (its partition may be another member's).
	fits := func(it v2Item) bool {
		if !it.live() {
			return true
		}
		n := int64(len(it.rec.Key) + len(it.rec.Value))
		if len(out) > 0 && (size+n > maxBytes || len(out) >= maxRecords) {
			return false
		}
		out, size = append(out, it), size+n
		return true
	}
	pending := sub.pending
	sub.pending = nil
	for i, it := range pending {
		if !fits(it) {
			sub.pending = append(sub.pending, slices.DeleteFunc(pending[i:], func(it v2Item) bool { return !it.live() })...)
			return out
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	if len(out) == 0 {
		select {
		case it := <-sub.recs:
			fits(it)
		case <-timer.C:
			return out
		case <-ctx.Done():
			return out
		}
	}
	// What follows without a pause joins the response.
	const linger = 50 * time.Millisecond
	for {
		gap := time.NewTimer(linger)
		select {
		case it := <-sub.recs:
			gap.Stop()
			if !fits(it) {
				sub.pending = append(sub.pending, it)
				return out
			}
		case <-gap.C:
			return out
		case <-ctx.Done():
			gap.Stop()
			return out
		}
	}
}

// unread puts items back in front of the pending ones (a response that
// could not be sent).
func (sub *v2Sub) unread(items []v2Item) {
	sub.pending = append(slices.Clone(items), sub.pending...)
}

// returned records the items a response carried: their partitions'
// positions move past them and, with auto commit, they are marked for the
// next automatic commit.
func (sub *v2Sub) returned(items []v2Item, autoCommit bool) {
	for _, it := range items {
		sub.consumed[tp{it.rec.Topic, it.rec.Partition}] = it.rec.Offset + 1
		if autoCommit && it.live() {
			it.sess.MarkOffset(it.rec.Partition, it.rec.Offset+1, "")
		}
	}
}
