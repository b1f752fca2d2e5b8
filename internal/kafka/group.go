package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Offsets with a meaning of their own, for Read, StreamOptions.Offset and
// GroupOptions.Initial.
const (
	OffsetOldest int64 = sarama.OffsetOldest // the oldest record of a partition (-2)
	OffsetNewest int64 = sarama.OffsetNewest // after the newest record (-1)
)

// ErrUnstableOffsets marks a group session that could not start because a
// Kafka transaction holding offsets of the group is still open.
var ErrUnstableOffsets = errors.New("group offsets unstable: a transaction is open")

// Balance is how a group's members share the partitions.
type Balance int

const (
	// BalanceRange gives each member a range of partitions (sarama's
	// default).
	BalanceRange Balance = iota
	// BalanceSticky keeps partitions where they are across rebalances
	// (eager protocol: every claim is stopped, committed and restarted).
	BalanceSticky
)

// GroupOptions configure a consumer group of one topic.
type GroupOptions struct {
	Group string
	Topic string
	// ClientSuffix is appended to the settings' client id.
	ClientSuffix string
	// Initial is where a partition without a committed offset starts:
	// OffsetOldest or OffsetNewest (0 means OffsetOldest).
	Initial int64
	// ReadCommitted hides records of open and aborted transactions.
	ReadCommitted bool
	Balance       Balance
	// AutoCommit commits the marked offsets every second (and when a
	// session ends); without it offsets move only by Session.Commit or a
	// transaction.
	AutoCommit bool
	// SmallPrefetch bounds the records buffered per claim (2 messages,
	// 1 MiB fetches), so memory does not grow with the topic.
	SmallPrefetch bool
	// RequireTopic checks at join that the topic exists (ErrUnknownTopic
	// otherwise); the group's metadata requests never create it.
	RequireTopic bool

	// Membership timing (0: sarama's 10 s session, 60 s rebalance and
	// 3 s heartbeat). The network read timeout of the group's client is
	// raised to cover a JoinGroup, which the broker may hold for the
	// rebalance timeout.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// InstanceID, when set, makes the member static (group.instance.id):
	// a restart within the session timeout keeps its partitions without
	// a rebalance. Needs Kafka 2.3.
	InstanceID string

	// BackoffMin and BackoffMax bound the wait, doubling, after a failed
	// session (defaults 100 ms and 5 s).
	BackoffMin, BackoffMax time.Duration
	// OnRetry, if set, is told of each failed session and the wait before
	// the next one.
	OnRetry func(err error, wait time.Duration)
	// OnError, if set, receives the group's asynchronous errors (commit
	// and claim failures); it runs on the group's error goroutine.
	OnError func(error)
}

// joinReadMargin is how much longer than the rebalance timeout a group's
// client waits for a broker's answer, so a JoinGroup the broker holds
// until every member has joined is not cut short.
const joinReadMargin = 5 * time.Second

// groupConfig is the sarama configuration of a group: a copy of the
// settings with o applied, validated.
func groupConfig(s *Settings, o GroupOptions) (*sarama.Config, error) {
	cfg := *s.Sarama
	cfg.ClientID = s.Sarama.ClientID + o.ClientSuffix
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = OffsetOldest
	if o.Initial == OffsetNewest {
		cfg.Consumer.Offsets.Initial = OffsetNewest
	}
	if o.ReadCommitted {
		cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	if o.Balance == BalanceSticky {
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	}
	cfg.Consumer.Offsets.AutoCommit.Enable = o.AutoCommit
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	if o.SmallPrefetch {
		cfg.ChannelBufferSize = 2
		cfg.Consumer.Fetch.Default = 1 << 20
		cfg.Consumer.Fetch.Max = 0
	}
	if o.RequireTopic {
		cfg.Metadata.AllowAutoTopicCreation = false
	}
	if o.SessionTimeout > 0 {
		cfg.Consumer.Group.Session.Timeout = o.SessionTimeout
	}
	if o.RebalanceTimeout > 0 {
		cfg.Consumer.Group.Rebalance.Timeout = o.RebalanceTimeout
	}
	if o.HeartbeatInterval > 0 {
		cfg.Consumer.Group.Heartbeat.Interval = o.HeartbeatInterval
	}
	cfg.Consumer.Group.InstanceId = o.InstanceID
	cfg.Net.ReadTimeout = max(cfg.Net.ReadTimeout, cfg.Consumer.Group.Rebalance.Timeout+joinReadMargin)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &cfg, nil
}

// CheckGroup reports whether o, applied to s, is a configuration sarama
// accepts (ErrConfig otherwise), without connecting.
func CheckGroup(s *Settings, o GroupOptions) error {
	_, err := groupConfig(s, o)
	return err
}

// Group is a member of a consumer group of one topic. Run consumes; Close
// leaves the group and releases its connections.
type Group struct {
	o        GroupOptions
	client   sarama.Client
	group    sarama.ConsumerGroup
	errsDone chan struct{}
}

// JoinGroup connects a group member. Kafka unreachable wraps
// ErrUnavailable; with RequireTopic a missing topic is ErrUnknownTopic.
func JoinGroup(s *Settings, o GroupOptions) (*Group, error) {
	if o.Group == "" || o.Topic == "" {
		return nil, fmt.Errorf("%w: a consumer group needs a group id and a topic", ErrConfig)
	}
	cfg, err := groupConfig(s, o)
	if err != nil {
		return nil, err
	}
	cl, err := sarama.NewClient(s.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer group %s: connect to kafka %v: %w: %w", o.Group, s.Brokers, ErrUnavailable, err)
	}
	if o.RequireTopic {
		if err := checkTopic(cl, o.Topic); err != nil {
			cl.Close()
			return nil, err
		}
	}
	grp, err := sarama.NewConsumerGroupFromClient(o.Group, cl)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("consumer group %s: %w", o.Group, classify(err))
	}
	g := &Group{o: o, client: cl, group: grp, errsDone: make(chan struct{})}
	go func() { // owned by g: ends when Close closes the group's error channel
		defer close(g.errsDone)
		for err := range grp.Errors() {
			if o.OnError != nil {
				o.OnError(err)
			}
		}
	}()
	return g, nil
}

// GroupHandler is what a group member does with its partitions. Claim is
// required; the others are optional.
type GroupHandler struct {
	// Setup runs when a session starts, before any Claim.
	Setup func(*Session)
	// Claim processes one claimed partition; it runs concurrently for
	// each claim and must return when the claim's records channel closes
	// or the session's context ends. Returning earlier ends the session.
	Claim func(*Session, *Claim)
	// Cleanup runs when a session ends, after every Claim returned.
	Cleanup func(*Session)
}

// Run consumes, one session per group generation, until ctx ends or the
// group is closed, and returns nil then. A failed session (Kafka
// unavailable, a rebalance error) is retried after a backoff; OnRetry is
// told.
func (g *Group) Run(ctx context.Context, h GroupHandler) error {
	if h.Claim == nil {
		return fmt.Errorf("%w: consumer group %s without a claim handler", ErrConfig, g.o.Group)
	}
	bo := NewBackoff(g.o.BackoffMin, g.o.BackoffMax)
	sh := &saramaHandler{h: h, topic: g.o.Topic}
	for ctx.Err() == nil {
		err := g.group.Consume(ctx, []string{g.o.Topic}, sh)
		if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		if err != nil {
			if errors.Is(err, sarama.ErrUnstableOffsetCommit) {
				err = fmt.Errorf("%w: %w", ErrUnstableOffsets, err)
			}
			d := bo.Next()
			if g.o.OnRetry != nil {
				g.o.OnRetry(err, d)
			}
			if Sleep(ctx, d) != nil {
				break
			}
			continue
		}
		bo.Reset()
	}
	return nil
}

// Close leaves the group (committing marked offsets when AutoCommit is on)
// and closes the group's client. It waits for Run's sessions to end.
func (g *Group) Close() error {
	err := g.group.Close()
	<-g.errsDone
	if !g.client.Closed() {
		err = errors.Join(err, g.client.Close())
	}
	return err
}

// Session is one generation of a group member's partitions.
type Session struct {
	s     sarama.ConsumerGroupSession
	topic string
}

// Context ends when the session ends (rebalance or stop).
func (s *Session) Context() context.Context { return s.s.Context() }

// Generation is the group generation of the session.
func (s *Session) Generation() int32 { return s.s.GenerationID() }

// Partitions are the topic's partitions claimed in this session.
func (s *Session) Partitions() []int32 { return s.s.Claims()[s.topic] }

// MarkOffset marks offset as the next one to read on partition, with
// metadata committed along; it never moves a mark backwards.
func (s *Session) MarkOffset(partition int32, offset int64, metadata string) {
	s.s.MarkOffset(s.topic, partition, offset, metadata)
}

// ResetOffset sets the mark of partition, also backwards.
func (s *Session) ResetOffset(partition int32, offset int64, metadata string) {
	s.s.ResetOffset(s.topic, partition, offset, metadata)
}

// Commit commits the marked offsets now.
func (s *Session) Commit() { s.s.Commit() }

// Claim is one partition claimed in a session.
type Claim struct {
	Partition int32
	// InitialOffset is where the claim starts: the committed offset, or
	// OffsetOldest/OffsetNewest when the group has none.
	InitialOffset int64
	// Records delivers the partition's records in order; it closes when
	// the claim ends.
	Records <-chan Record
	hwm     func() int64
}

// HighWaterMark is the partition's next offset as last fetched.
func (c *Claim) HighWaterMark() int64 { return c.hwm() }

// saramaHandler adapts a GroupHandler to sarama.
type saramaHandler struct {
	h     GroupHandler
	topic string
}

func (a *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	if a.h.Setup != nil {
		a.h.Setup(&Session{s: s, topic: a.topic})
	}
	return nil
}

func (a *saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	if a.h.Cleanup != nil {
		a.h.Cleanup(&Session{s: s, topic: a.topic})
	}
	return nil
}

func (a *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	recs := make(chan Record)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by this claim: ends when the claim, the session or the handler ends
		defer wg.Done()
		defer close(recs)
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				select {
				case recs <- FromConsumerMessage(m):
				case <-s.Context().Done():
					return
				case <-stop:
					return
				}
			case <-s.Context().Done():
				return
			case <-stop:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	a.h.Claim(&Session{s: s, topic: a.topic}, &Claim{Partition: c.Partition(), InitialOffset: c.InitialOffset(), Records: recs, hwm: c.HighWaterMarkOffset})
	return nil
}

// Backoff is a retry wait that doubles from a minimum to a maximum.
type Backoff struct{ min, max, cur time.Duration }

// NewBackoff returns a backoff from lo (default 100 ms) to hi (at least
// lo; default 5 s).
func NewBackoff(lo, hi time.Duration) *Backoff {
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(5*time.Second, lo)
	}
	return &Backoff{min: lo, max: hi}
}

// Next is the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// Reset starts again from the minimum.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d, or until ctx ends (its error is returned then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
