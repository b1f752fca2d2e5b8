package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// ProducerOptions configure a Producer.
type ProducerOptions struct {
	// ClientSuffix is appended to the settings' client id.
	ClientSuffix string
	// TransactionalID, when set, makes the producer transactional.
	TransactionalID string
}

// Producer is a synchronous producer with its own connections: idempotent,
// acks=all, partitioning by key (Message.Partition is ignored), and
// transactional with ProducerOptions.TransactionalID. Send and the
// transaction methods are called from one goroutine.
type Producer struct{ p sarama.SyncProducer }

func producerConfig(s *Settings, o ProducerOptions) *sarama.Config {
	c := *s.Sarama
	c.ClientID = s.Sarama.ClientID + o.ClientSuffix
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Transaction.ID = o.TransactionalID
	return &c
}

// CheckProducer reports whether o, applied to s, is a configuration sarama
// accepts (ErrConfig otherwise), without connecting.
func CheckProducer(s *Settings, o ProducerOptions) error {
	if err := producerConfig(s, o).Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// NewProducer connects a producer. A transactional one is initialised,
// which fences any earlier producer with the same transactional id and
// aborts its open transaction. Errors are classified as Produce's are.
func NewProducer(s *Settings, o ProducerOptions) (*Producer, error) {
	p, err := sarama.NewSyncProducer(s.Brokers, producerConfig(s, o))
	if err != nil {
		return nil, classify(err)
	}
	return &Producer{p: p}, nil
}

// Close closes the producer and its connections.
func (p *Producer) Close() error { return p.p.Close() }

// Send writes msgs and waits for their acknowledgement. It returns nil
// when every message was acknowledged, else one error per message (nil
// for those acknowledged), classified: ErrTooLarge, ErrUnknownTopic,
// ErrUnavailable, or a refusal as it is.
func (p *Producer) Send(msgs []Message) []error {
	pms := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		pms[i] = producerMessage(m)
		pms[i].Metadata = i
	}
	err := p.p.SendMessages(pms)
	if err == nil {
		return nil
	}
	out := make([]error, len(msgs))
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			out[pe.Msg.Metadata.(int)] = classify(pe.Err)
		}
		return out
	}
	err = classify(err)
	for i := range out {
		out[i] = err
	}
	return out
}

// producerMessage converts m (its partition is left to the partitioner).
func producerMessage(m Message) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: m.Topic, Timestamp: m.Timestamp}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		pm.Value = sarama.ByteEncoder(m.Value)
	}
	if len(m.Headers) > 0 {
		pm.Headers = make([]sarama.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			pm.Headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
	}
	return pm
}

// BeginTxn starts a transaction.
func (p *Producer) BeginTxn() error { return p.p.BeginTxn() }

// CommitTxn commits the open transaction.
func (p *Producer) CommitTxn() error { return p.p.CommitTxn() }

// AddOffsetToTxn adds to the open transaction the commit of group's offset
// after r: the offset moves when the transaction commits.
func (p *Producer) AddOffsetToTxn(r Record, group string) error {
	return p.p.AddMessageToTxn(&sarama.ConsumerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, group, nil)
}

// AbortTxn ends a failed transaction. It returns false when the producer
// is no longer usable (fenced, or unable to abort) and must be closed and
// replaced, which bumps its epoch; true when the transaction was aborted
// or none was open.
func (p *Producer) AbortTxn() (usable bool) {
	st := p.p.TxnStatus()
	if st&sarama.ProducerTxnFlagFatalError != 0 {
		return false
	}
	if st&(sarama.ProducerTxnFlagInTransaction|sarama.ProducerTxnFlagInError|sarama.ProducerTxnFlagAbortableError) == 0 {
		return true
	}
	return p.p.AbortTxn() == nil
}
