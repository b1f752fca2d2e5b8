package httpapi

// The read-only REST Proxy v3 resources a client walks to find its way:
// the cluster, its brokers, topics and partitions, in the shapes of the
// spec's ClusterData, BrokerData, TopicData and PartitionData, with their
// self and related links. Metadata comes from one Kafka metadata request
// per call (MetadataSource); without one these answer 501.

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// CodeNoMetadata answers the metadata resources when the gateway has no
// MetadataSource.
const CodeNoMetadata = 50122

// MetadataSource describes the cluster; *kafka.Client implements it.
type MetadataSource interface {
	Describe(ctx context.Context) (*kafka.ClusterMeta, error)
}

type relationship struct {
	Related string `json:"related"`
}

type resourceMetadata struct {
	Self         string  `json:"self"`
	ResourceName *string `json:"resource_name"`
}

type collectionMetadata struct {
	Self string  `json:"self"`
	Next *string `json:"next"`
}

type clusterData struct {
	Kind                   string           `json:"kind"`
	Metadata               resourceMetadata `json:"metadata"`
	ClusterID              string           `json:"cluster_id"`
	Controller             *relationship    `json:"controller,omitempty"`
	ACLs                   relationship     `json:"acls"`
	Brokers                relationship     `json:"brokers"`
	BrokerConfigs          relationship     `json:"broker_configs"`
	ConsumerGroups         relationship     `json:"consumer_groups"`
	Topics                 relationship     `json:"topics"`
	PartitionReassignments relationship     `json:"partition_reassignments"`
}

type brokerData struct {
	Kind              string           `json:"kind"`
	Metadata          resourceMetadata `json:"metadata"`
	ClusterID         string           `json:"cluster_id"`
	BrokerID          int32            `json:"broker_id"`
	Host              *string          `json:"host"`
	Port              *int32           `json:"port"`
	Rack              *string          `json:"rack"`
	Configs           relationship     `json:"configs"`
	PartitionReplicas relationship     `json:"partition_replicas"`
}

type topicData struct {
	Kind                   string           `json:"kind"`
	Metadata               resourceMetadata `json:"metadata"`
	ClusterID              string           `json:"cluster_id"`
	TopicName              string           `json:"topic_name"`
	IsInternal             bool             `json:"is_internal"`
	ReplicationFactor      int              `json:"replication_factor"`
	PartitionsCount        int              `json:"partitions_count"`
	Partitions             relationship     `json:"partitions"`
	Configs                relationship     `json:"configs"`
	PartitionReassignments relationship     `json:"partition_reassignments"`
}

type partitionData struct {
	Kind         string           `json:"kind"`
	Metadata     resourceMetadata `json:"metadata"`
	ClusterID    string           `json:"cluster_id"`
	TopicName    string           `json:"topic_name"`
	PartitionID  int32            `json:"partition_id"`
	Leader       *relationship    `json:"leader,omitempty"`
	Replicas     relationship     `json:"replicas"`
	Reassignment relationship     `json:"reassignment"`
}

type dataList[T any] struct {
	Kind     string             `json:"kind"`
	Metadata collectionMetadata `json:"metadata"`
	Data     []T                `json:"data"`
}

func list[T any](kind, self string, data []T) dataList[T] {
	if data == nil {
		data = []T{}
	}
	return dataList[T]{Kind: kind, Metadata: collectionMetadata{Self: self}, Data: data}
}

// writeList answers a collection: each item converted by conv.
func writeList[M, T any](w http.ResponseWriter, kind, self string, items []M, conv func(M) T) {
	out := make([]T, 0, len(items))
	for _, it := range items {
		out = append(out, conv(it))
	}
	writeJSON(w, http.StatusOK, list(kind, self, out))
}

func crn(parts ...string) *string {
	s := "crn://"
	for i := 0; i+1 < len(parts); i += 2 {
		s += "/" + parts[i] + "=" + parts[i+1]
	}
	return &s
}

func related(url string) relationship { return relationship{Related: url} }

func clusterURL(r *http.Request, id string) string { return baseURL(r) + "/v3/clusters/" + id }

func (s *Server) cluster(r *http.Request, id string, controller int32) clusterData {
	self := clusterURL(r, id)
	c := clusterData{
		Kind:                   "KafkaCluster",
		Metadata:               resourceMetadata{Self: self, ResourceName: crn("kafka", id)},
		ClusterID:              id,
		ACLs:                   related(self + "/acls"),
		Brokers:                related(self + "/brokers"),
		BrokerConfigs:          related(self + "/broker-configs"),
		ConsumerGroups:         related(self + "/consumer-groups"),
		Topics:                 related(self + "/topics"),
		PartitionReassignments: related(self + "/topics/-/partitions/-/reassignment"),
	}
	if controller >= 0 {
		rel := related(self + "/brokers/" + strconv.Itoa(int(controller)))
		c.Controller = &rel
	}
	return c
}

func brokerOf(r *http.Request, id string, b kafka.BrokerMeta) brokerData {
	self := clusterURL(r, id) + "/brokers/" + strconv.Itoa(int(b.ID))
	d := brokerData{
		Kind:              "KafkaBroker",
		Metadata:          resourceMetadata{Self: self, ResourceName: crn("kafka", id, "broker", strconv.Itoa(int(b.ID)))},
		ClusterID:         id,
		BrokerID:          b.ID,
		Configs:           related(self + "/configs"),
		PartitionReplicas: related(self + "/partition-replicas"),
	}
	if b.Host != "" {
		h := b.Host
		d.Host = &h
	}
	if b.Port > 0 {
		p := b.Port
		d.Port = &p
	}
	if b.Rack != "" {
		rk := b.Rack
		d.Rack = &rk
	}
	return d
}

func topicOf(r *http.Request, id string, t kafka.TopicMeta) topicData {
	self := clusterURL(r, id) + "/topics/" + t.Name
	rf := 0
	if len(t.Partitions) > 0 {
		rf = len(t.Partitions[0].Replicas)
	}
	return topicData{
		Kind:                   "KafkaTopic",
		Metadata:               resourceMetadata{Self: self, ResourceName: crn("kafka", id, "topic", t.Name)},
		ClusterID:              id,
		TopicName:              t.Name,
		IsInternal:             t.Internal,
		ReplicationFactor:      rf,
		PartitionsCount:        len(t.Partitions),
		Partitions:             related(self + "/partitions"),
		Configs:                related(self + "/configs"),
		PartitionReassignments: related(self + "/partitions/-/reassignment"),
	}
}

func partitionOf(r *http.Request, id, topic string, p kafka.PartitionMeta) partitionData {
	self := clusterURL(r, id) + "/topics/" + topic + "/partitions/" + strconv.Itoa(int(p.ID))
	d := partitionData{
		Kind:         "KafkaPartition",
		Metadata:     resourceMetadata{Self: self, ResourceName: crn("kafka", id, "topic", topic, "partition", strconv.Itoa(int(p.ID)))},
		ClusterID:    id,
		TopicName:    topic,
		PartitionID:  p.ID,
		Replicas:     related(self + "/replicas"),
		Reassignment: related(self + "/reassignment"),
	}
	if p.Leader >= 0 {
		rel := related(self + "/replicas/" + strconv.Itoa(int(p.Leader)))
		d.Leader = &rel
	}
	return d
}

// describe returns the cluster's metadata, or writes the error.
func (s *Server) describe(w http.ResponseWriter, r *http.Request) (*kafka.ClusterMeta, bool) {
	src, ok := s.cfg.Kafka.(MetadataSource)
	if !ok {
		writeErr(w, newErr(CodeNoMetadata, "this gateway cannot describe the cluster"))
		return nil, false
	}
	md, err := src.Describe(r.Context())
	if err != nil {
		writeErr(w, fromError(err))
		return nil, false
	}
	return md, true
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request) {
	id, err := s.cfg.Kafka.ClusterID(r.Context())
	if err != nil {
		writeErr(w, fromError(err))
		return
	}
	writeJSON(w, http.StatusOK, list("KafkaClusterList", baseURL(r)+"/v3/clusters", []clusterData{s.cluster(r, id, s.controller(r))}))
}

// controller is the controller's broker id, -1 when unknown.
func (s *Server) controller(r *http.Request) int32 {
	if src, ok := s.cfg.Kafka.(MetadataSource); ok {
		if md, err := src.Describe(r.Context()); err == nil {
			return md.ControllerID
		}
	}
	return -1
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cluster(r, chi.URLParam(r, "cluster_id"), s.controller(r)))
}

func (s *Server) listBrokers(w http.ResponseWriter, r *http.Request) {
	md, ok := s.describe(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "cluster_id")
	writeList(w, "KafkaBrokerList", clusterURL(r, id)+"/brokers", md.Brokers, func(b kafka.BrokerMeta) brokerData { return brokerOf(r, id, b) })
}

func (s *Server) getBroker(w http.ResponseWriter, r *http.Request) {
	md, ok := s.describe(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "cluster_id")
	for _, b := range md.Brokers {
		if strconv.Itoa(int(b.ID)) == chi.URLParam(r, "broker_id") {
			writeJSON(w, http.StatusOK, brokerOf(r, id, b))
			return
		}
	}
	writeErr(w, newErr(CodeBrokerNotFound, "broker not found"))
}

func (s *Server) listTopics(w http.ResponseWriter, r *http.Request) {
	md, ok := s.describe(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "cluster_id")
	writeList(w, "KafkaTopicList", clusterURL(r, id)+"/topics", md.Topics, func(t kafka.TopicMeta) topicData { return topicOf(r, id, t) })
}

// topic returns the path's topic, or writes 404.
func (s *Server) topic(w http.ResponseWriter, r *http.Request) (kafka.TopicMeta, bool) {
	md, ok := s.describe(w, r)
	if !ok {
		return kafka.TopicMeta{}, false
	}
	t, ok := md.Topic(chi.URLParam(r, "topic"))
	if !ok {
		writeErr(w, newErr(CodeTopicNotFound, "topic not found"))
	}
	return t, ok
}

func (s *Server) getTopic(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.topic(w, r); ok {
		writeJSON(w, http.StatusOK, topicOf(r, chi.URLParam(r, "cluster_id"), t))
	}
}

func (s *Server) listPartitions(w http.ResponseWriter, r *http.Request) {
	t, ok := s.topic(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "cluster_id")
	writeList(w, "KafkaPartitionList", clusterURL(r, id)+"/topics/"+t.Name+"/partitions", t.Partitions,
		func(p kafka.PartitionMeta) partitionData { return partitionOf(r, id, t.Name, p) })
}

func (s *Server) getPartition(w http.ResponseWriter, r *http.Request) {
	t, ok := s.topic(w, r)
	if !ok {
		return
	}
	for _, p := range t.Partitions {
		if strconv.Itoa(int(p.ID)) == chi.URLParam(r, "partition_id") {
			writeJSON(w, http.StatusOK, partitionOf(r, chi.URLParam(r, "cluster_id"), t.Name, p))
			return
		}
	}
	writeErr(w, newErr(CodePartitionNotFound, "partition not found"))
}
