// Package record is the record model shared by every layer of kafkagate:
// the Kafka client reads and produces it, the engine encrypts and decrypts
// it, the envelope seals and opens it. It also holds the canonical names of
// every kafkagate.* header. It has no dependencies on other kafkagate
// packages.
package record

import (
	"cmp"
	"slices"
	"time"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is a Kafka record. A record read from Kafka has every field set.
// A record to produce: Partition -1 chooses the partition by key, a nil Key
// sends no key, a zero Timestamp means now, and Offset is ignored. The
// engine and the envelope read Topic, Key, Value and Headers (Topic and Key
// are bound into envelope records' associated data) and carry the rest.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header returns the value of r's first header named name.
func (r Record) Header(name string) ([]byte, bool) {
	return HeaderValue(r.Headers, name)
}

// HeaderValue returns the value of the first header in hs named name.
func HeaderValue(hs []Header, name string) ([]byte, bool) {
	for _, h := range hs {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// SortByTime orders rs by timestamp, then partition, then offset: the
// order in which records read from several partitions are shown.
func SortByTime(rs []Record) {
	slices.SortStableFunc(rs, func(a, b Record) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
}
