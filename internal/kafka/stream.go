package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// ErrStreamClosed is returned by Next after Close.
var ErrStreamClosed = errors.New("record stream closed")

// StreamOptions select the records of a live stream.
type StreamOptions struct {
	Topic string
	// Group, when set, consumes as this consumer group: the group's
	// members share the partitions, and Done marks records as processed
	// (committed about every second and at Close).
	Group string
	// FromBeginning makes a group without committed offsets start at the
	// oldest record; by default it starts at the end, like
	// kafka-console-consumer.
	FromBeginning bool
	// Partition and Offset place a stream without a group: Partition -1
	// reads every partition; Offset is OffsetOldest (-2),
	// OffsetNewest (-1), or an offset of the one Partition.
	Partition int32
	Offset    int64
	// MaxBatch bounds the records one Next returns; default 500.
	MaxBatch int
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval tune the
	// group membership (0: sarama's 10 s, 60 s and 3 s).
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// InstanceID makes the stream a static group member
	// (group.instance.id): a stream reopened with the same id within the
	// session timeout takes its partitions back without a rebalance.
	InstanceID string
}

// RecordStream is a live stream of records that follows new ones. Next and
// Done are called from one goroutine; Close may be called from any.
type RecordStream interface {
	// Next blocks until at least one record is available, ctx ends (its
	// error is returned) or the stream is closed (ErrStreamClosed).
	Next(ctx context.Context) ([]Record, error)
	// Done marks records returned by the last Next as processed. Without
	// a group it does nothing.
	Done(recs []Record)
	// Close stops the stream, commits the group's marked offsets and
	// releases its connections and goroutines.
	Close() error
}

// OpenStream starts a stream with its own Kafka connections (read_committed
// isolation). The stream's lifetime is independent of ctx, which bounds
// only the opening; Close ends it.
func (c *Client) OpenStream(ctx context.Context, o StreamOptions) (RecordStream, error) {
	return OpenStream(ctx, c.settings, o)
}

// OpenStream is Client.OpenStream for settings without a Client.
func OpenStream(ctx context.Context, s *Settings, o StreamOptions) (RecordStream, error) {
	if o.Topic == "" {
		return nil, fmt.Errorf("%w: stream without a topic", ErrConfig)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A reader never creates topics: with auto-creation on (the brokers'
	// default, and kfake's in tests) the metadata request of a stream on
	// a misspelt topic would create it and follow it forever, instead of
	// reporting ErrUnknownTopic. Both kinds of stream read committed
	// records only.
	st := &stream{ch: make(chan streamItem), closed: make(chan struct{}), max: o.MaxBatch}
	var err error
	if o.Group != "" {
		err = st.openGroup(s, o)
	} else {
		cfg := *s.Sarama
		cfg.ClientID = s.Sarama.ClientID + "-stream"
		cfg.Consumer.IsolationLevel = sarama.ReadCommitted
		cfg.Consumer.Return.Errors = true
		cfg.Metadata.AllowAutoTopicCreation = false
		err = st.openPartitions(s.Brokers, &cfg, o)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

type streamItem struct {
	rec  Record
	sess *Session // nil without a group
}

type stream struct {
	ch     chan streamItem
	closed chan struct{}
	max    int
	// wg counts the goroutines that forward records; stopLoop ends the
	// group loop before they are waited for, release frees the Kafka
	// objects after.
	wg       sync.WaitGroup
	stopLoop func()
	release  func() error
	once     sync.Once
	err      error
	last     map[int32]*Session
}

func (s *stream) openGroup(st *Settings, o StreamOptions) error {
	initial := OffsetNewest
	if o.FromBeginning {
		initial = OffsetOldest
	}
	g, err := JoinGroup(st, GroupOptions{
		Group: o.Group, Topic: o.Topic, ClientSuffix: "-stream", Initial: initial,
		ReadCommitted: true, Balance: BalanceSticky, AutoCommit: true, RequireTopic: true,
		SessionTimeout: o.SessionTimeout, RebalanceTimeout: o.RebalanceTimeout,
		HeartbeatInterval: o.HeartbeatInterval, InstanceID: o.InstanceID,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() { // the group session loop; ends when stopLoop cancels ctx
		defer s.wg.Done()
		_ = g.Run(ctx, GroupHandler{Claim: s.forwardClaim})
	}()
	s.stopLoop = cancel
	s.release = func() error {
		// The session released by the loop has committed the marked
		// offsets; Close leaves the group and closes the client.
		err := g.Close()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	return nil
}

// forwardClaim hands a group's records to the stream, one at a time, so
// that a rebalance finds nothing buffered on the group's side.
func (s *stream) forwardClaim(sess *Session, c *Claim) {
	ForwardClaim(sess, c, s.ch, func(r Record) streamItem { return streamItem{rec: r, sess: sess} })
}

// ForwardClaim sends each of a claim's records, wrapped by wrap, to out,
// one at a time, so that a rebalance finds nothing buffered on the group's
// side. It returns when the claim's records end or the session ends.
func ForwardClaim[T any](sess *Session, c *Claim, out chan<- T, wrap func(Record) T) {
	for {
		select {
		case r, ok := <-c.Records:
			if !ok {
				return
			}
			select {
			case out <- wrap(r):
			case <-sess.Context().Done():
				return
			}
		case <-sess.Context().Done():
			return
		}
	}
}

func (s *stream) openPartitions(brokers []string, cfg *sarama.Config, o StreamOptions) error {
	cons, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to kafka %v: %w: %w", brokers, ErrUnavailable, err)
	}
	parts, err := cons.Partitions(o.Topic)
	if err != nil {
		cons.Close()
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("topic %q: %w", o.Topic, ErrUnknownTopic)
		}
		return fmt.Errorf("topic %q: %w", o.Topic, classify(err))
	}
	if o.Partition >= 0 {
		if !slices.Contains(parts, o.Partition) {
			cons.Close()
			return fmt.Errorf("topic %q has no partition %d: %w", o.Topic, o.Partition, ErrUnknownTopic)
		}
		parts = []int32{o.Partition}
	} else if o.Offset >= 0 {
		cons.Close()
		return fmt.Errorf("%w: an offset needs one partition", ErrConfig)
	}
	if o.Offset < sarama.OffsetOldest {
		cons.Close()
		return fmt.Errorf("%w: offset %d", ErrConfig, o.Offset)
	}
	var pcs []sarama.PartitionConsumer
	closeAll := func() error {
		var errs []error
		for _, pc := range pcs {
			errs = append(errs, pc.Close())
		}
		errs = append(errs, cons.Close())
		return errors.Join(errs...)
	}
	for _, p := range parts {
		pc, err := cons.ConsumePartition(o.Topic, p, o.Offset)
		if err != nil {
			_ = closeAll()
			if errors.Is(err, sarama.ErrOffsetOutOfRange) {
				return fmt.Errorf("%s/%d offset %d: %w", o.Topic, p, o.Offset, ErrOffsetOutOfRange)
			}
			return fmt.Errorf("read %s/%d: %w", o.Topic, p, classify(err))
		}
		pcs = append(pcs, pc)
	}
	for _, pc := range pcs {
		s.wg.Add(1)
		go func() { // forwards one partition until Close
			defer s.wg.Done()
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case s.ch <- streamItem{rec: FromConsumerMessage(m)}:
					case <-s.closed:
						return
					}
				case <-pc.Errors(): // sarama retries on its own
				case <-s.closed:
					return
				}
			}
		}()
	}
	s.stopLoop = func() {}
	s.release = closeAll
	return nil
}

func checkTopic(cl sarama.Client, topic string) error {
	if err := cl.RefreshMetadata(topic); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("topic %q: %w", topic, ErrUnknownTopic)
		}
		return fmt.Errorf("topic %q: %w", topic, classify(err))
	}
	if _, err := cl.Partitions(topic); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("topic %q: %w", topic, ErrUnknownTopic)
		}
		return fmt.Errorf("topic %q: %w", topic, classify(err))
	}
	return nil
}

func (s *stream) Next(ctx context.Context) ([]Record, error) {
	var out []Record
	s.last = map[int32]*Session{}
	add := func(it streamItem) {
		if it.sess != nil {
			if it.sess.Context().Err() != nil {
				return // its session ended: the partition's next owner re-reads it
			}
			s.last[it.rec.Partition] = it.sess
		}
		out = append(out, it.rec)
	}
	for len(out) == 0 {
		select {
		case it := <-s.ch:
			add(it)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
			return nil, ErrStreamClosed
		}
	}
	for len(out) < s.max {
		select {
		case it := <-s.ch:
			add(it)
		default:
			return out, nil
		}
	}
	return out, nil
}

func (s *stream) Done(recs []Record) {
	for _, r := range recs {
		if sess := s.last[r.Partition]; sess != nil {
			sess.MarkOffset(r.Partition, r.Offset+1, "")
		}
	}
}

func (s *stream) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.stopLoop()
		s.wg.Wait()
		s.err = s.release()
	})
	return s.err
}
