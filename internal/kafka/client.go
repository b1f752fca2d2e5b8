package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/record"
)

// Header is a record header.
type Header = record.Header

// Message is a record to produce: Partition -1 chooses by key, a nil Key
// sends no key, a zero Timestamp means now; Offset is ignored.
type Message = record.Record

// Delivery is the outcome of producing one message.
type Delivery struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Err       error
}

// Record is a record read from Kafka.
type Record = record.Record

// Client is a connected Kafka client with a producer and a consumer. It is
// safe for concurrent use; Close releases everything.
type Client struct {
	settings *Settings
	client   sarama.Client
	manual   sarama.SyncProducer // explicit partitions
	// manualClient is manual's own client: a producer made from a client
	// never closes it.
	manualClient sarama.Client
	hashed       sarama.SyncProducer // partition by key
	// reader serves Partitions, Watermarks and Read (and consumer): its
	// metadata requests never create topics, unlike the producers'.
	reader   sarama.Client
	consumer sarama.Consumer
	cluster  atomic.Pointer[string] // cached cluster id
}

// Dial connects to the brokers.
func Dial(s *Settings) (*Client, error) {
	cl, err := sarama.NewClient(s.Brokers, s.Sarama)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka %v: %w: %w", s.Brokers, ErrUnavailable, err)
	}
	c := &Client{settings: s, client: cl}
	if c.hashed, err = sarama.NewSyncProducerFromClient(cl); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	// A second client for explicit partitions: the partitioner is a
	// client-wide setting in sarama.
	mc := *s.Sarama
	mc.Producer.Partitioner = sarama.NewManualPartitioner
	mcl, err := sarama.NewClient(s.Brokers, &mc)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to kafka %v: %w: %w", s.Brokers, ErrUnavailable, err)
	}
	c.manualClient = mcl
	if c.manual, err = sarama.NewSyncProducerFromClient(mcl); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	// A reader never creates topics: with auto-creation allowed (Apache
	// Kafka's default, kfake's in tests) a metadata request for a topic
	// that does not exist creates it, so a read of a misspelt topic would
	// create it instead of reporting ErrUnknownTopic. Producing keeps
	// auto-creation where the broker allows it.
	rc := *s.Sarama
	rc.Metadata.AllowAutoTopicCreation = false
	if c.reader, err = sarama.NewClient(s.Brokers, &rc); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to kafka %v: %w: %w", s.Brokers, ErrUnavailable, err)
	}
	if c.consumer, err = sarama.NewConsumerFromClient(c.reader); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return c, nil
}

// Sarama returns the producers' sarama client. Its metadata requests for
// a named topic create the topic where the broker allows auto-creation;
// a full refresh (RefreshMetadata with no topics) does not.
func (c *Client) Sarama() sarama.Client { return c.client }

// Settings returns the client's settings.
func (c *Client) Settings() *Settings { return c.settings }

// Close closes producers, consumer and client.
func (c *Client) Close() error {
	var errs []error
	if c.consumer != nil {
		errs = append(errs, c.consumer.Close())
	}
	if c.manual != nil {
		errs = append(errs, c.manual.Close())
	}
	if c.manualClient != nil && !c.manualClient.Closed() {
		errs = append(errs, c.manualClient.Close())
	}
	if c.hashed != nil {
		errs = append(errs, c.hashed.Close())
	}
	if c.client != nil && !c.client.Closed() {
		errs = append(errs, c.client.Close())
	}
	if c.reader != nil && !c.reader.Closed() {
		errs = append(errs, c.reader.Close())
	}
	return errors.Join(errs...)
}

// Produce sends msgs and waits for the brokers' acknowledgement (acks=all,
// idempotent). Each message gets its own delivery. The error is non-nil
// only when ctx ends first.
func (c *Client) Produce(ctx context.Context, msgs []Message) ([]Delivery, error) {
	out := make([]Delivery, len(msgs))
	var byKey, manual []*sarama.ProducerMessage
	var byKeyIdx, manualIdx []int
	for i, m := range msgs {
		pm := producerMessage(m)
		pm.Metadata = i
		if m.Partition >= 0 {
			pm.Partition = m.Partition
			manual = append(manual, pm)
			manualIdx = append(manualIdx, i)
		} else {
			byKey = append(byKey, pm)
			byKeyIdx = append(byKeyIdx, i)
		}
	}
	done := make(chan struct{})
	go func() { // owned by this call; always ends when sarama answers
		defer close(done)
		c.send(c.hashed, byKey, byKeyIdx, out)
		c.send(c.manual, manual, manualIdx, out)
	}()
	select {
	case <-done:
		return out, nil
	case <-ctx.Done():
		// The sends finish on their own within the producer timeout; the
		// caller must treat the outcome as unknown.
		return nil, fmt.Errorf("produce: %w", ctx.Err())
	}
}

func (c *Client) send(p sarama.SyncProducer, pms []*sarama.ProducerMessage, idx []int, out []Delivery) {
	if len(pms) == 0 {
		return
	}
	err := p.SendMessages(pms)
	failed := map[*sarama.ProducerMessage]error{}
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			failed[pe.Msg] = classify(pe.Err)
		}
	} else if err != nil {
		for _, pm := range pms {
			failed[pm] = classify(err)
		}
	}
	for j, pm := range pms {
		i := idx[j]
		if e, bad := failed[pm]; bad {
			out[i].Err = e
			continue
		}
		out[i] = Delivery{Partition: pm.Partition, Offset: pm.Offset, Timestamp: pm.Timestamp}
	}
}

// classify sorts sarama errors. Errors that are the record's or the
// request's own fault keep their identity (oversized records wrap
// ErrTooLarge; unknown or invalid topics wrap ErrUnknownTopic; policy and
// authorization refusals are returned as they are). Everything else —
// unreachable brokers, timeouts, leader changes, sarama's circuit breaker,
// errors not seen before — wraps ErrUnavailable: retrying later is the
// safe answer, and a gateway that is unsure must refuse rather than claim
// success.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce sarama.ConfigurationError
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrTooLarge), errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnknownPartition):
		return err
	case errors.Is(err, sarama.ErrMessageSizeTooLarge), errors.Is(err, sarama.ErrMessageSetSizeTooLarge),
		errors.As(err, &ce) && strings.Contains(string(ce), "MaxMessageBytes"):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, sarama.ErrInvalidPartition):
		return fmt.Errorf("%w: %w", ErrUnknownPartition, err)
	case errors.Is(err, sarama.ErrUnknownTopicOrPartition), errors.Is(err, sarama.ErrInvalidTopic):
		return fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed), errors.Is(err, sarama.ErrClusterAuthorizationFailed),
		errors.Is(err, sarama.ErrPolicyViolation), errors.Is(err, sarama.ErrInvalidRecord),
		errors.As(err, &ce):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ClusterID returns the cluster id, asking a broker the first time.
func (c *Client) ClusterID(ctx context.Context) (string, error) {
	if id := c.cluster.Load(); id != nil {
		return *id, nil
	}
	id, err := c.fetchClusterID(ctx)
	if err == nil {
		c.cluster.Store(&id)
	}
	return id, err
}

func (c *Client) fetchClusterID(ctx context.Context) (string, error) {
	md, err := askMetadata(ctx, c.client, sarama.NewMetadataRequest(c.settings.Sarama.Version, []string{}))
	if err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	if md.ClusterID == nil || *md.ClusterID == "" {
		return "", errors.New("cluster id: broker reported none")
	}
	return *md.ClusterID, nil
}

// askMetadata sends req to the controller of cl; ctx bounds the wait (the
// request itself ends within sarama's timeouts).
func askMetadata(ctx context.Context, cl sarama.Client, req *sarama.MetadataRequest) (*sarama.MetadataResponse, error) {
	type res struct {
		md  *sarama.MetadataResponse
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := cl.Controller()
		if err != nil {
			ch <- res{err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			return
		}
		md, err := b.GetMetadata(req)
		if err != nil {
			ch <- res{err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			return
		}
		ch <- res{md: md}
	}()
	select {
	case r := <-ch:
		return r.md, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ping checks that a broker answers metadata requests.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.fetchClusterID(ctx)
	return err
}

// Partitions lists a topic's partitions; ErrUnknownTopic when absent. It
// never creates the topic.
func (c *Client) Partitions(topic string) ([]int32, error) {
	return partitions(c.reader, topic)
}

// TopicExists reports whether the cluster has topic, from a fresh full
// metadata request (one that names no topic, so it creates none).
func (c *Client) TopicExists(topic string) (bool, error) {
	ts, err := c.Topics()
	if err != nil {
		return false, err
	}
	return slices.Contains(ts, topic), nil
}

// PartitionsForProduce lists a topic's partitions as the producer sees
// them: where the broker allows auto-creation, a topic that does not exist
// is created (as producing to it would); elsewhere it is ErrUnknownTopic.
// For a write target only (e.g. a rewrap's target topic); reads use
// Partitions.
func (c *Client) PartitionsForProduce(topic string) ([]int32, error) {
	return partitions(c.client, topic)
}

func partitions(cl sarama.Client, topic string) ([]int32, error) {
	if err := checkTopic(cl, topic); err != nil {
		return nil, err
	}
	ps, err := cl.Partitions(topic)
	if err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %q: %w", topic, ErrUnknownTopic)
		}
		return nil, fmt.Errorf("topic %q: %w", topic, classify(err))
	}
	return ps, nil
}

// ErrTooLarge means a record exceeds the producer's or broker's size limit.
var ErrTooLarge = errors.New("record too large")

// ErrUnknownTopic means the topic or partition does not exist.
var ErrUnknownTopic = errors.New("unknown topic or partition")

// ErrUnknownPartition means a record named a partition its topic does not
// have.
var ErrUnknownPartition = errors.New("unknown partition")

// ErrOffsetOutOfRange means the requested offset is outside the log.
var ErrOffsetOutOfRange = errors.New("offset out of range")

// Watermarks returns the oldest and next offsets of a partition.
func (c *Client) Watermarks(topic string, partition int32) (int64, int64, error) {
	lo, err := c.reader.GetOffset(topic, partition, sarama.OffsetOldest)
	if err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return 0, 0, fmt.Errorf("%s/%d: %w", topic, partition, ErrUnknownTopic)
		}
		return 0, 0, fmt.Errorf("%s/%d: %w", topic, partition, classify(err))
	}
	hi, err := c.reader.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return 0, 0, fmt.Errorf("%s/%d: %w", topic, partition, classify(err))
	}
	return lo, hi, nil
}

// Read returns up to max records of one partition from offset, stopping at
// the high watermark as it was when the call began (it never waits for new
// records). offset OffsetOldest means the oldest offset.
func (c *Client) Read(ctx context.Context, topic string, partition int32, offset int64, max int) ([]Record, error) {
	lo, hi, err := c.Watermarks(topic, partition)
	if err != nil {
		return nil, err
	}
	if offset == sarama.OffsetOldest {
		offset = lo
	}
	if offset < lo || offset > hi {
		return nil, fmt.Errorf("%s/%d offset %d (log has %d..%d): %w", topic, partition, offset, lo, hi, ErrOffsetOutOfRange)
	}
	if offset == hi || max <= 0 {
		return nil, nil
	}
	pc, err := c.consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d: %w", topic, partition, classify(err))
	}
	defer pc.Close()
	var out []Record
	// Offsets may be skipped (transaction markers, compaction): stop when
	// nothing more arrives for a while.
	idle := time.NewTimer(readIdle)
	defer idle.Stop()
	for len(out) < max {
		select {
		case <-idle.C:
			return out, nil
		case m, ok := <-pc.Messages():
			if !ok {
				return out, nil
			}
			idle.Reset(readIdle)
			out = append(out, FromConsumerMessage(m))
			if m.Offset >= hi-1 {
				return out, nil
			}
		case e := <-pc.Errors():
			return out, fmt.Errorf("read %s/%d: %w", topic, partition, classify(e.Err))
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// readIdle ends a Read that receives nothing for this long.
const readIdle = 2 * time.Second

// fromSarama converts a consumed message.
func FromConsumerMessage(m *sarama.ConsumerMessage) Record {
	r := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp}
	for _, h := range m.Headers {
		if h != nil {
			r.Headers = append(r.Headers, Header{Key: string(h.Key), Value: h.Value})
		}
	}
	return r
}
