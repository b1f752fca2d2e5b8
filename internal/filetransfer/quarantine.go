package filetransfer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// DefaultQuarantineDir is where undecryptable records go by default,
// relative to the working directory (as OpenMSIStream's ENCRYPTED_MESSAGES).
const DefaultQuarantineDir = "ENCRYPTED_MESSAGES"

// Quarantine reasons, written into the metadata of every quarantined
// record and into the kafkagate.note.quarantine-reason header of DLQ copies.
const (
	ReasonTampered      = "tampered"       // authentication failed
	ReasonUndecryptable = "undecryptable"  // Vault refused or could not unwrap the data key, or the KEK is not allowed
	ReasonBrokenFile    = "broken-file"    // chunks dropped, reordered, conflicting, or a manifest mismatch
	ReasonIncomplete    = "incomplete"     // the final chunk never arrived within the incomplete timeout
	ReasonTooManyFiles  = "too-many-files" // evicted: more files in progress on a partition than allowed
	ReasonBadHeader     = "bad-header"     // malformed or missing envelope headers
	ReasonUnknownFormat = "unknown-format" // kafkagate.format names a format this reader does not know
	ReasonNotAFile      = "not-a-file"     // neither chunk/1 nor a legacy file message
	ReasonNotAllowed    = "not-allowed"    // a format the topic's policy does not accept (legacy without legacy = accept)
)

// Note headers added to DLQ and redriven copies. They start with
// envelope.NotePrefix, so they are outside the associated data and never
// break decryption (nor are they trusted).
const (
	NoteReason   = envelope.NotePrefix + "quarantine-reason"
	NoteSource   = envelope.NotePrefix + "source"
	NoteRedriven = envelope.NotePrefix + "redriven-from"
)

// reasonFor classifies a decryption failure.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, envelope.ErrTampered):
		return ReasonTampered
	case errors.Is(err, envelope.ErrKeyUnwrap), errors.Is(err, envelope.ErrKEKNotAllowed),
		errors.Is(err, vaultclient.ErrDenied), errors.Is(err, vaultclient.ErrNotFound):
		return ReasonUndecryptable
	case errors.Is(err, envelope.ErrOutOfOrder), errors.Is(err, envelope.ErrDuplicateConflict),
		errors.Is(err, envelope.ErrForeignChunk), errors.Is(err, envelope.ErrIntegrity), errors.Is(err, envelope.ErrTooLarge):
		return ReasonBrokenFile
	case errors.Is(err, envelope.ErrTruncated):
		return ReasonIncomplete
	case errors.Is(err, envelope.ErrUnknownFormat):
		return ReasonUnknownFormat
	case errors.Is(err, envelope.ErrBadHeader):
		return ReasonBadHeader
	}
	return ReasonUndecryptable
}

// Why says why records are quarantined.
type Why struct {
	Reason string // one of the Reason* constants
	Err    error  // the decryption error (its text never holds plaintext or keys)
	FileID string // the chunk/1 file the records belong to, if any
}

func (w Why) errText() string {
	if w.Err == nil {
		return ""
	}
	return oneLine(w.Err.Error())
}

// Quarantine keeps records that cannot be decrypted, as they were read.
type Quarantine interface {
	// Put stores recs and returns where each one went (a path or
	// dlq:<topic>/<partition>/<offset>). An error means not all were kept:
	// the caller must not commit their offsets.
	Put(ctx context.Context, recs []kafka.Record, why Why) ([]string, error)
}

// DirQuarantine writes each record as three files in Dir:
// <topic>-<partition>-<offset>-<timestamp>.key, .value and .headers.json
// (headers plus metadata, written last: an entry without it is
// incomplete). The timestamp is the record's, so quarantining the same
// record again (after a crash) rewrites the same entry.
type DirQuarantine struct {
	Dir string
	Now func() time.Time // default time.Now
}

// QuarantinedHeader is one header in a .headers.json file: Value when it is
// printable UTF-8, else ValueBase64.
type QuarantinedHeader struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"value_base64,omitempty"`
}

// QuarantineMeta is the content of a .headers.json file.
type QuarantineMeta struct {
	Topic         string              `json:"topic"`
	Partition     int32               `json:"partition"`
	Offset        int64               `json:"offset"`
	Timestamp     time.Time           `json:"timestamp"`
	KeyNull       bool                `json:"key_null"`
	ValueNull     bool                `json:"value_null"`
	Headers       []QuarantinedHeader `json:"headers"`
	QuarantinedAt time.Time           `json:"quarantined_at"`
	Reason        string              `json:"reason"`
	Error         string              `json:"error,omitempty"`
	FileID        string              `json:"file_id,omitempty"`
}

// EntryBase is the file name stem of a quarantined record.
func EntryBase(rec kafka.Record) string {
	ts := rec.Timestamp
	if ts.IsZero() || ts.Unix() < 0 {
		ts = time.Unix(0, 0)
	}
	return fmt.Sprintf("%s-%d-%d-%s", rec.Topic, rec.Partition, rec.Offset, ts.UTC().Format("20060102T150405.000Z"))
}

func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Put implements Quarantine.
func (q *DirQuarantine) Put(ctx context.Context, recs []kafka.Record, why Why) ([]string, error) {
	if err := os.MkdirAll(q.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	now := time.Now
	if q.Now != nil {
		now = q.Now
	}
	out := make([]string, 0, len(recs))
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		base := filepath.Join(q.Dir, EntryBase(rec))
		meta := QuarantineMeta{
			Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp,
			KeyNull: rec.Key == nil, ValueNull: rec.Value == nil, Headers: []QuarantinedHeader{},
			QuarantinedAt: now().UTC(), Reason: why.Reason, Error: why.errText(), FileID: why.FileID,
		}
		for _, h := range rec.Headers {
			qh := QuarantinedHeader{Key: h.Key}
			if printableText(h.Value) {
				qh.Value = string(h.Value)
			} else {
				qh.ValueBase64 = base64.StdEncoding.EncodeToString(h.Value)
			}
			meta.Headers = append(meta.Headers, qh)
		}
		mj, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return out, fmt.Errorf("quarantine: %w", err)
		}
		if err := writeFileAtomic(base+".key", rec.Key, 0o600); err != nil {
			return out, fmt.Errorf("quarantine: %w", err)
		}
		if err := writeFileAtomic(base+".value", rec.Value, 0o600); err != nil {
			return out, fmt.Errorf("quarantine: %w", err)
		}
		if err := writeFileAtomic(base+".headers.json", append(mj, '\n'), 0o600); err != nil {
			return out, fmt.Errorf("quarantine: %w", err)
		}
		out = append(out, base+".value")
	}
	if err := syncDir(q.Dir); err != nil {
		return out, fmt.Errorf("quarantine: %w", err)
	}
	return out, nil
}

// DLQ produces quarantined records to a dead-letter topic exactly as read
// (key, value, headers, timestamp: still ciphertext), adding the
// unauthenticated headers kafkagate.note.quarantine-reason and
// kafkagate.note.source (<topic>/<partition>/<offset>). The associated data
// binds the original topic, so a DLQ copy decrypts only once produced back
// to its source topic.
type DLQ struct {
	Producer Producer
	Topic    string
}

// Put implements Quarantine.
func (d *DLQ) Put(ctx context.Context, recs []kafka.Record, why Why) ([]string, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	msgs := make([]kafka.Message, len(recs))
	for i, rec := range recs {
		m := kafka.Message{Topic: d.Topic, Partition: -1, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
		for _, h := range rec.Headers {
			if h.Key != NoteReason && h.Key != NoteSource {
				m.Headers = append(m.Headers, h)
			}
		}
		m.Headers = append(m.Headers,
			kafka.Header{Key: NoteReason, Value: []byte(why.Reason)},
			kafka.Header{Key: NoteSource, Value: []byte(rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10))})
		msgs[i] = m
	}
	dels, err := d.Producer.Produce(ctx, msgs)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", d.Topic, err)
	}
	out := make([]string, len(dels))
	for i, dl := range dels {
		if dl.Err != nil {
			return nil, fmt.Errorf("dead-letter topic %s: %w", d.Topic, dl.Err)
		}
		out[i] = fmt.Sprintf("dlq:%s/%d/%d", d.Topic, dl.Partition, dl.Offset)
	}
	return out, nil
}
