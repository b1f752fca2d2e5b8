package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fixAPIVersions narrows the upstream's versions to what the proxy
// handles: every API to kmsg's range, Produce and Fetch to record batch v2
// versions that name topics, SASL to the proxy's own (when it
// authenticates) and share-group APIs removed.
func fixAPIVersions(withSASL bool) func(*pending, kmsg.Response) error {
	return func(_ *pending, r kmsg.Response) error {
		resp := r.(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			return nil
		}
		keys := resp.ApiKeys[:0]
		for _, k := range resp.ApiKeys {
			if blocked[k.ApiKey] || k.ApiKey == keySASLHandshake || k.ApiKey == keySASLAuthenticate {
				continue
			}
			if req := kmsg.RequestForKey(k.ApiKey); req != nil {
				k.MaxVersion = min(k.MaxVersion, req.MaxVersion())
			}
			switch k.ApiKey {
			case keyProduce:
				k.MinVersion, k.MaxVersion = max(k.MinVersion, produceMin), min(k.MaxVersion, produceMax)
			case keyFetch:
				k.MinVersion, k.MaxVersion = max(k.MinVersion, fetchMin), min(k.MaxVersion, fetchMax)
			}
			if k.MinVersion > k.MaxVersion {
				continue
			}
			keys = append(keys, k)
		}
		if withSASL {
			keys = append(keys,
				kmsg.ApiVersionsResponseApiKey{ApiKey: keySASLHandshake, MinVersion: 0, MaxVersion: 1},
				kmsg.ApiVersionsResponseApiKey{ApiKey: keySASLAuthenticate, MinVersion: 0, MaxVersion: 2})
		}
		resp.ApiKeys = keys
		return nil
	}
}

// broker rewrites one broker address to its proxy port; ok is false when
// the node is outside the port scheme (the broker is then left out).
func (p *Proxy) broker(node int32, host *string, port *int32) bool {
	pp, ok := p.learn(node, *host, *port)
	if !ok {
		return false
	}
	*host, *port = p.adv, int32(pp)
	return true
}

func (p *Proxy) fixMetadata(_ *pending, r kmsg.Response) error {
	resp := r.(*kmsg.MetadataResponse)
	resp.Brokers = keepBrokers(p, resp.Brokers, func(b *kmsg.MetadataResponseBroker) (int32, *string, *int32) {
		return b.NodeID, &b.Host, &b.Port
	})
	return nil
}

func (p *Proxy) fixFindCoordinator(_ *pending, r kmsg.Response) error {
	resp := r.(*kmsg.FindCoordinatorResponse)
	if resp.ErrorCode == 0 && resp.Host != "" {
		if !p.broker(resp.NodeID, &resp.Host, &resp.Port) {
			resp.ErrorCode = 15 // COORDINATOR_NOT_AVAILABLE
		}
	}
	for i := range resp.Coordinators {
		c := &resp.Coordinators[i]
		if c.ErrorCode == 0 && c.Host != "" && !p.broker(c.NodeID, &c.Host, &c.Port) {
			c.ErrorCode = 15
		}
	}
	return nil
}

func (p *Proxy) fixDescribeCluster(_ *pending, r kmsg.Response) error {
	resp := r.(*kmsg.DescribeClusterResponse)
	resp.Brokers = keepBrokers(p, resp.Brokers, func(b *kmsg.DescribeClusterResponseBroker) (int32, *string, *int32) {
		return b.NodeID, &b.Host, &b.Port
	})
	return nil
}

// fixProduceBrokers rewrites the leader endpoints a produce response may
// carry (KIP-951).
func (p *Proxy) fixProduceBrokers(resp *kmsg.ProduceResponse) {
	resp.Brokers = keepBrokers(p, resp.Brokers, func(b *kmsg.ProduceResponseBroker) (int32, *string, *int32) {
		return b.NodeID, &b.Host, &b.Port
	})
}

// keepBrokers rewrites each broker's address in bs to its proxy port (addr
// gives the broker's node, host and port) and drops the brokers outside the
// port scheme, reusing bs's array.
func keepBrokers[B any](p *Proxy, bs []B, addr func(*B) (int32, *string, *int32)) []B {
	kept := bs[:0]
	for i := range bs {
		b := bs[i]
		node, host, port := addr(&b)
		if p.broker(node, host, port) {
			kept = append(kept, b)
		}
	}
	return kept
}

// topicSlot returns the index in *topics of the topic named name (name
// reads a topic's name), appending the topic made by mk when there is none.
func topicSlot[T any](topics *[]T, name string, nameOf func(*T) string, mk func() T) int {
	for j := range *topics {
		if nameOf(&(*topics)[j]) == name {
			return j
		}
	}
	*topics = append(*topics, mk())
	return len(*topics) - 1
}
