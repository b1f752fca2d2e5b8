package kafka

import (
	"fmt"

	"github.com/kafkagate/kafkagate/internal/record"
)

// Headers kafkagate writes on records it copies or dead-letters (the bridge
// and rewrap). Incoming headers named kafkagate.* are dropped before these
// are added, so none can be forged through a source topic.
const (
	// HeaderSource on copied records: SourceRef of the source record, so
	// a consumer can discard at-least-once duplicates. A kafkagate.note.*
	// header: added after sealing, not authenticated by envelope mode
	// (docs/wire-format.md), never to be trusted for security.
	HeaderSource = record.HeaderSource
	// HeaderDLQSource is HeaderSource on dead-letter records.
	HeaderDLQSource = record.HeaderDLQSource
	// HeaderDLQCode is the stable reason code.
	HeaderDLQCode = record.HeaderDLQCode
	// HeaderDLQReason is the human-readable reason; it never contains a
	// value.
	HeaderDLQReason = record.HeaderDLQReason
	// HeaderDLQField names the field at fault, when there is one.
	HeaderDLQField = record.HeaderDLQField
	// HeaderDLQValue is "omitted" when even the sealed value was too large
	// for the dead-letter topic: the record is then found by its source
	// coordinates.
	HeaderDLQValue = record.HeaderDLQValue
)

// SourceRef is "topic/partition/offset" of r, the value of HeaderSource and
// HeaderDLQSource.
func SourceRef(r Record) string {
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}
