package kafka

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/IBM/sarama"
)

// BrokerMeta describes one broker.
type BrokerMeta struct {
	ID   int32
	Host string
	Port int32 // 0 when the address has none
	Rack string
}

// PartitionMeta describes one partition of a topic.
type PartitionMeta struct {
	ID       int32
	Leader   int32 // -1: none
	Replicas []int32
	ISR      []int32
}

// TopicMeta describes one topic.
type TopicMeta struct {
	Name       string
	Internal   bool
	Partitions []PartitionMeta // by ID
}

// ClusterMeta is a snapshot of the cluster's metadata.
type ClusterMeta struct {
	ControllerID int32        // -1: unknown
	Brokers      []BrokerMeta // by ID
	Topics       []TopicMeta  // by name
}

// Topic returns the named topic.
func (m *ClusterMeta) Topic(name string) (TopicMeta, bool) {
	for _, t := range m.Topics {
		if t.Name == name {
			return t, true
		}
	}
	return TopicMeta{}, false
}

// Describe reads the brokers, controller and every topic with its
// partitions from one metadata request that names no topic (it creates
// none).
func (c *Client) Describe(ctx context.Context) (*ClusterMeta, error) {
	req := sarama.NewMetadataRequest(c.settings.Sarama.Version, nil)
	req.AllowAutoTopicCreation = false
	md, err := askMetadata(ctx, c.reader, req)
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	out := &ClusterMeta{ControllerID: md.ControllerID}
	for _, b := range md.Brokers {
		bm := BrokerMeta{ID: b.ID(), Host: b.Addr()}
		if h, p, err := net.SplitHostPort(b.Addr()); err == nil {
			bm.Host = h
			if n, err := strconv.ParseInt(p, 10, 32); err == nil {
				bm.Port = int32(n)
			}
		}
		bm.Rack = b.Rack()
		out.Brokers = append(out.Brokers, bm)
	}
	sort.Slice(out.Brokers, func(i, j int) bool { return out.Brokers[i].ID < out.Brokers[j].ID })
	for _, t := range md.Topics {
		if t.Err != sarama.ErrNoError {
			continue
		}
		tm := TopicMeta{Name: t.Name, Internal: t.IsInternal}
		for _, p := range t.Partitions {
			tm.Partitions = append(tm.Partitions, PartitionMeta{ID: p.ID, Leader: p.Leader, Replicas: p.Replicas, ISR: p.Isr})
		}
		sort.Slice(tm.Partitions, func(i, j int) bool { return tm.Partitions[i].ID < tm.Partitions[j].ID })
		out.Topics = append(out.Topics, tm)
	}
	sort.Slice(out.Topics, func(i, j int) bool { return out.Topics[i].Name < out.Topics[j].Name })
	return out, nil
}
