package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Admin is a cluster administration client: topics, consumer groups and
// their committed offsets. Close releases it.
type Admin struct{ a sarama.ClusterAdmin }

// NewAdmin connects an admin client; clientSuffix is appended to the
// settings' client id.
func NewAdmin(s *Settings, clientSuffix string) (*Admin, error) {
	cfg := *s.Sarama
	cfg.ClientID = s.Sarama.ClientID + clientSuffix
	a, err := sarama.NewClusterAdmin(s.Brokers, &cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", classify(err))
	}
	return &Admin{a: a}, nil
}

// Close closes the admin client.
func (a *Admin) Close() error { return a.a.Close() }

// Topics lists the cluster's topics with their partition counts.
func (a *Admin) Topics() (map[string]int32, error) {
	ts, err := a.a.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", classify(err))
	}
	out := make(map[string]int32, len(ts))
	for name, d := range ts {
		out[name] = d.NumPartitions
	}
	return out, nil
}

// CreateTopic creates a topic with configs (topic-level settings, such as
// max.message.bytes).
func (a *Admin) CreateTopic(name string, partitions int32, replication int16, configs map[string]string) error {
	td := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: replication}
	if len(configs) > 0 {
		td.ConfigEntries = map[string]*string{}
		for k, v := range configs {
			td.ConfigEntries[k] = &v
		}
	}
	return classify(a.a.CreateTopic(name, td, false))
}

// TopicConfig returns the effective value of one topic setting; ok is false
// when the broker does not report it.
func (a *Admin) TopicConfig(topic, name string) (value string, ok bool, err error) {
	entries, err := a.a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
	if err != nil {
		return "", false, classify(err)
	}
	for _, e := range entries {
		if e.Name == name {
			value, ok = e.Value, true
		}
	}
	return value, ok, nil
}

// Partitions lists a topic's partitions as the controller describes them.
func (a *Admin) Partitions(topic string) ([]int32, error) {
	metas, err := a.a.DescribeTopics([]string{topic})
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", topic, classify(err))
	}
	if len(metas) != 1 {
		return nil, fmt.Errorf("topic %q: %d topics described", topic, len(metas))
	}
	if metas[0].Err != sarama.ErrNoError {
		return nil, fmt.Errorf("topic %q: %w", topic, classify(metas[0].Err))
	}
	ps := make([]int32, len(metas[0].Partitions))
	for i, pm := range metas[0].Partitions {
		ps[i] = pm.ID
	}
	return ps, nil
}

// Committed is a consumer group's committed offset of one partition.
type Committed struct {
	Offset   int64 // -1: none
	Metadata string
	Err      error // the broker's error for this partition
}

// CommittedOffsets reads group's committed offsets (and their metadata) of
// topic's partitions parts. Partitions the broker does not answer for are
// absent.
func (a *Admin) CommittedOffsets(group, topic string, parts []int32) (map[int32]Committed, error) {
	resp, err := a.a.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return nil, fmt.Errorf("group %s offsets: %w", group, err)
	}
	out := map[int32]Committed{}
	for _, p := range parts {
		blk := resp.GetBlock(topic, p)
		if blk == nil {
			continue
		}
		c := Committed{Offset: blk.Offset, Metadata: blk.Metadata}
		if blk.Err != sarama.ErrNoError {
			c.Err = blk.Err
		}
		out[p] = c
	}
	return out, nil
}

// DeleteGroup deletes a consumer group and its committed offsets. A group
// that does not exist is not an error; one with running members cannot be
// deleted.
func (a *Admin) DeleteGroup(group string) error {
	err := a.a.DeleteConsumerGroup(group)
	if err == nil || errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil
	}
	return err
}

// Topics lists the cluster's topics from a fresh full metadata request
// (one that names no topic, so it creates none).
func (c *Client) Topics() ([]string, error) {
	if err := c.reader.RefreshMetadata(); err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", classify(err))
	}
	ts, err := c.reader.Topics()
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", classify(err))
	}
	return ts, nil
}

// ConsumerLag sums, over topic's partitions, the records after group's
// committed offset (all of a partition's records when it has none). It
// never creates the topic.
func (c *Client) ConsumerLag(group, topic string) (int64, error) {
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, err
	}
	broker, err := c.client.Coordinator(group)
	if err != nil {
		return 0, fmt.Errorf("group %s coordinator: %w", group, err)
	}
	req := &sarama.OffsetFetchRequest{ConsumerGroup: group, Version: 1}
	for _, p := range parts {
		req.AddPartition(topic, p)
	}
	resp, err := broker.FetchOffset(req)
	if err != nil {
		return 0, fmt.Errorf("group %s offsets: %w", group, err)
	}
	var total int64
	for _, p := range parts {
		lo, hi, err := c.Watermarks(topic, p)
		if err != nil {
			return 0, err
		}
		next := lo
		if blk := resp.GetBlock(topic, p); blk != nil {
			if blk.Err != sarama.ErrNoError {
				return 0, fmt.Errorf("group %s offset of %s/%d: %w", group, topic, p, blk.Err)
			}
			if blk.Offset >= 0 {
				next = max(blk.Offset, lo)
			}
		}
		total += max(hi-next, 0)
	}
	return total, nil
}
