// Package envelope encrypts Kafka record values and files with data keys
// (DEKs) that a KMS generates and wraps: HashiCorp Vault's transit engine in
// production. It reaches the KMS only through KeyService (KMSKeys adapts a
// KMS to it) and imports no Vault package.
//
// Three wire formats are implemented, all specified in docs/wire-format.md:
//
//   - record/1: one record value under AES-256-GCM with a random 96-bit nonce
//     (Sealer.Seal, Opener.Open, Opener.OpenBatch). DEKs come from
//     transit/datakey/plaintext/<kek> per message or cached per topic under
//     record, byte and age limits.
//   - chunk/1: a file as a sequence of records, each an authenticated chunk
//     of a STREAM construction (HKDF-SHA256 per-file key, nonce = prefix ‖
//     chunk index ‖ last flag) with a signed manifest (FileEncoder,
//     FileDecoder).
//   - legacy: the original demo's one-message JSON format (EncodeLegacy,
//     DecodeLegacy, Opener.OpenLegacy).
//
// The associated data of record/1 and chunk/1 binds the topic, the record key
// and every kafkagate.* header except the key headers (kafkagate.kek,
// kafkagate.edek, kafkagate.origin), so swapped headers, keys or topics are
// detected; the wrapped DEK is bound by the KEK's derivation context and by
// GCM itself, which lets a wrapped DEK be rewrapped to a newer KEK version
// without touching the value (docs/wire-format.md §3). Every failure is
// fail-closed and typed (see the Err* sentinels); failures caused by the KMS
// also match the kms sentinels (Vault's vaultclient sentinels are the same
// values). No error message carries plaintext or key material.
//
// The package knows nothing of HTTP or Kafka client libraries: records are
// the package's own Record and Header types, which the Kafka layer converts.
package envelope

import (
	"errors"
	"time"

	"github.com/kafkagate/kafkagate/internal/record"
)

// Defaults and fixed names.
const (
	// DefaultKEK is the transit key that wraps record and file DEKs. It is a
	// derived key; the derivation context is the topic name.
	DefaultKEK = "kafkagate-envelope"
	// DefaultLegacyKEK is the (non-derived) transit key of the original demo.
	DefaultLegacyKEK = "transit"

	// DefaultMaxRecords, DefaultMaxBytes and DefaultMaxAge bound a cached DEK.
	DefaultMaxRecords = 10_000
	DefaultMaxBytes   = 64 << 20
	DefaultMaxAge     = 5 * time.Minute

	// MaxRecordsLimit is the hard ceiling on records per DEK: NIST SP 800-38D
	// allows at most 2^32 GCM invocations with random 96-bit nonces per key.
	MaxRecordsLimit = 1 << 32

	// DefaultChunkSize is the plaintext size of a file chunk.
	DefaultChunkSize = 512 << 10
	// MaxChunkSize is the largest configurable chunk size.
	MaxChunkSize = 64 << 20

	// DefaultOpenerCacheSize is the number of unwrapped DEKs an Opener keeps.
	DefaultOpenerCacheSize = 4096
)

// Header names. Every kafkagate header starts with HeaderPrefix.
const (
	HeaderPrefix = record.HeaderPrefix
	// NotePrefix marks kafkagate headers that are NOT authenticated: metadata
	// added after sealing (quarantine reason, redrive count, ...).
	NotePrefix = record.NotePrefix

	HeaderFormat   = record.HeaderFormat
	HeaderAlg      = record.HeaderAlg
	HeaderKEK      = record.HeaderKEK
	HeaderEDEK     = record.HeaderEDEK
	HeaderFile     = record.HeaderFile
	HeaderChunk    = record.HeaderChunk
	HeaderLast     = record.HeaderLast
	HeaderManifest = record.HeaderManifest
	// HeaderOrigin names the topic a record or chunk was sealed for when it
	// is stored in another topic (written by gateway rewrap). An Opener
	// accepts it only for the origins its OpenerOptions.Origins allow.
	HeaderOrigin = record.HeaderOrigin

	// LegacyKeyHeader and LegacyNameHeader are the original demo's headers.
	LegacyKeyHeader  = record.LegacyKeyHeader
	LegacyNameHeader = record.LegacyNameHeader
)

// Format identifies how a record is encrypted.
type Format string

// Formats, as written in the kafkagate.format header (FormatLegacy and
// FormatNone are never written).
const (
	FormatRecord Format = "record/1"
	FormatChunk  Format = "chunk/1"
	FormatLegacy Format = "legacy"
	FormatNone   Format = ""
)

// Algorithm names written in kafkagate.alg.
const (
	AlgRecord = "A256GCM"
	AlgChunk  = "A256GCM-HKDF-SHA256-STREAM"
)

// Error sentinels; match them with errors.Is.
var (
	// ErrUnknownFormat: the record is not in a format this reader handles
	// (unknown kafkagate.format or kafkagate.alg, or the wrong reader for it).
	ErrUnknownFormat = errors.New("envelope: unknown format")
	// ErrBadHeader: a required header is missing, malformed or repeated, or a
	// reserved header was passed to Seal.
	ErrBadHeader = errors.New("envelope: bad header")
	// ErrKEKNotAllowed: the record names a KEK this reader does not accept.
	ErrKEKNotAllowed = errors.New("envelope: KEK not allowed")
	// ErrOriginNotAllowed: the record was sealed for another topic
	// (kafkagate.origin) that this reader does not accept for the topic it
	// was read from.
	ErrOriginNotAllowed = errors.New("envelope: origin topic not allowed")
	// ErrTampered: authentication failed (flipped bit, truncated value,
	// swapped header, record key or topic, or the wrong key).
	ErrTampered = errors.New("envelope: authentication failed")
	// ErrKeyUnwrap: Vault did not unwrap the DEK.
	ErrKeyUnwrap = errors.New("envelope: data key unwrap failed")
	// ErrDataKey: Vault did not provide a new DEK.
	ErrDataKey = errors.New("envelope: no data key")
	// ErrOutOfOrder: a chunk arrived ahead of the next expected index (a
	// dropped or reordered chunk), or after the final chunk.
	ErrOutOfOrder = errors.New("envelope: chunk out of order")
	// ErrTruncated: the chunk stream ended without its final chunk.
	ErrTruncated = errors.New("envelope: chunk stream truncated")
	// ErrForeignChunk: the chunk belongs to another file.
	ErrForeignChunk = errors.New("envelope: chunk of another file")
	// ErrDuplicateConflict: an already accepted chunk index arrived again
	// with different (authentic) content.
	ErrDuplicateConflict = errors.New("envelope: conflicting duplicate chunk")
	// ErrIntegrity: the decrypted file does not match its manifest.
	ErrIntegrity = errors.New("envelope: file does not match manifest")
	// ErrTooLarge: an input exceeds a format limit.
	ErrTooLarge = errors.New("envelope: input too large")
	// ErrClosed: the Sealer, Opener, encoder or decoder was closed.
	ErrClosed = errors.New("envelope: closed")
)

// Header is one Kafka record header.
type Header = record.Header

// Record is a Kafka record; the envelope reads or writes its Topic, Key,
// Headers and Value. Topic and Key are bound into the associated data.
type Record = record.Record

// HeaderValue returns the value of the first header named name.
func HeaderValue(hs []Header, name string) ([]byte, bool) {
	return record.HeaderValue(hs, name)
}

// StripEnvelopeHeaders returns hs without the headers this package writes
// (record, chunk and legacy), e.g. to forward a decrypted record.
func StripEnvelopeHeaders(hs []Header) []Header {
	out := make([]Header, 0, len(hs))
	for _, h := range hs {
		if reserved(h.Key) || h.Key == LegacyKeyHeader || h.Key == LegacyNameHeader {
			continue
		}
		out = append(out, h)
	}
	return out
}

func reserved(name string) bool {
	switch name {
	case HeaderFormat, HeaderAlg, HeaderKEK, HeaderEDEK, HeaderFile, HeaderChunk, HeaderLast, HeaderManifest, HeaderOrigin:
		return true
	}
	return false
}

// DetectFormat tells which format a record's headers announce. A record with
// neither kafkagate.format nor X-encryptionkey is FormatNone (not encrypted
// by kafkagate). An unknown kafkagate.format is ErrUnknownFormat.
func DetectFormat(hs []Header) (Format, error) {
	var (
		f      []byte
		nf     int
		legacy bool
	)
	for _, h := range hs {
		switch h.Key {
		case HeaderFormat:
			f = h.Value
			nf++
		case LegacyKeyHeader:
			legacy = true
		}
	}
	switch {
	case nf > 1:
		return FormatNone, errorf(ErrBadHeader, "%s repeated", HeaderFormat)
	case nf == 1:
		switch Format(f) {
		case FormatRecord, FormatChunk:
			return Format(f), nil
		}
		return FormatNone, errorf(ErrUnknownFormat, "%s %q", HeaderFormat, printable(f))
	case legacy:
		return FormatLegacy, nil
	}
	return FormatNone, nil
}
