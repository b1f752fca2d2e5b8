package record

import "strings"

// Header names. Every header kafkagate writes starts with HeaderPrefix;
// docs/design.md and docs/wire-format.md describe their values.
const (
	HeaderPrefix = "kafkagate."
	// NotePrefix marks kafkagate headers that are NOT authenticated: metadata
	// added after sealing (quarantine reason, redrive count, source, ...).
	NotePrefix = "kafkagate.note."

	// HeaderFields lists a record's encrypted fields (fields format).
	HeaderFields = "kafkagate.fields"
	// HeaderSealed marks a value sealed whole with transit (dead letters).
	HeaderSealed = "kafkagate.sealed"

	// Envelope records and file chunks.
	HeaderFormat   = "kafkagate.format"
	HeaderAlg      = "kafkagate.alg"
	HeaderKEK      = "kafkagate.kek"
	HeaderEDEK     = "kafkagate.edek"
	HeaderFile     = "kafkagate.file"
	HeaderChunk    = "kafkagate.chunk"
	HeaderLast     = "kafkagate.last"
	HeaderManifest = "kafkagate.manifest"
	// HeaderOrigin names the topic a record or chunk was sealed for when it
	// is stored in another topic (written by rewrap).
	HeaderOrigin = "kafkagate.origin"

	// HeaderSource on copied records: "topic/partition/offset" of the
	// source record, so a consumer can discard at-least-once duplicates. A
	// note: not authenticated, never to be trusted for security.
	HeaderSource = "kafkagate.note.source"
	// Dead-letter records (bridge, rewrap): the source coordinates, the
	// stable reason code, the human-readable reason (never a value), the
	// field at fault, and "omitted" when even the sealed value was too
	// large for the dead-letter topic.
	HeaderDLQSource = "kafkagate.dlq.source"
	HeaderDLQCode   = "kafkagate.dlq.code"
	HeaderDLQReason = "kafkagate.dlq.reason"
	HeaderDLQField  = "kafkagate.dlq.field"
	HeaderDLQValue  = "kafkagate.dlq.value"

	// LegacyKeyHeader and LegacyNameHeader are the original demo's file
	// headers.
	LegacyKeyHeader  = "X-encryptionkey"
	LegacyNameHeader = "X-filename"
)

// Reserved reports the header names a producer may not send, in any case:
// the kafkagate. prefix (kafkagate's own headers) and the original demo's
// legacy file headers, which would make readers take the record for
// another format.
func Reserved(name string) bool {
	return len(name) >= len(HeaderPrefix) && strings.EqualFold(name[:len(HeaderPrefix)], HeaderPrefix) ||
		strings.EqualFold(name, LegacyKeyHeader) || strings.EqualFold(name, LegacyNameHeader)
}
