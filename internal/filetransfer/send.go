package filetransfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
)

// Producer sends records and waits for the brokers' acknowledgement
// (*kafka.Client: acks=all, idempotent).
type Producer interface {
	Produce(ctx context.Context, msgs []kafka.Message) ([]kafka.Delivery, error)
}

// Errors of the sender. Errors caused by Vault also match the envelope and
// vaultclient sentinels (envelope.ErrDataKey, vaultclient.ErrUnavailable, ...).
var (
	// ErrTooLarge: a chunk record (or a legacy message) cannot fit the
	// message size limit. Nothing was produced.
	ErrTooLarge = errors.New("does not fit the Kafka message size limit")
	// ErrPartial: the file's first records were produced, then producing
	// or reading failed. Receivers quarantine the incomplete file once its
	// incomplete timeout passes.
	ErrPartial = errors.New("file partially produced")
	// ErrRead: the file (or upload body) could not be read.
	ErrRead = errors.New("read file")
)

// Defaults of the sender.
const (
	// DefaultBatchBytes bounds the chunk bytes of one produce call: the
	// sender holds at most one batch in memory.
	DefaultBatchBytes = 4 << 20
)

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Keys gives data keys (envelope.NewKMSKeys over Vault transit). Required.
	Keys envelope.KeyService
	// Producer sends the records. Required.
	Producer Producer
	// MaxMessageBytes is the largest record the producer and broker take
	// ([default] message.max.bytes; the producer's Producer.MaxMessageBytes).
	// Required.
	MaxMessageBytes int
	// ChunkSize is the plaintext bytes per chunk, default
	// envelope.DefaultChunkSize (512 KiB).
	ChunkSize int
	// BatchBytes bounds the bytes of one produce call, default
	// DefaultBatchBytes.
	BatchBytes int
	// LegacyKEK is the transit key of the legacy format, default
	// envelope.DefaultLegacyKEK ("transit", not derived).
	LegacyKEK string
	Logger    *slog.Logger
}

// Sender sends files to Kafka as chunk/1 records or in the legacy format.
// It is safe for concurrent use.
type Sender struct {
	o   SenderOptions
	log *slog.Logger

	mu      sync.Mutex
	sealers map[string]*envelope.Sealer // by KEK
}

// NewSender checks o and returns a Sender.
func NewSender(o SenderOptions) (*Sender, error) {
	if o.Keys == nil || o.Producer == nil {
		return nil, errors.New("filetransfer: sender needs Keys and Producer")
	}
	if o.MaxMessageBytes <= 0 {
		return nil, errors.New("filetransfer: sender needs MaxMessageBytes")
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = envelope.DefaultChunkSize
	}
	if o.ChunkSize < 1 || o.ChunkSize > envelope.MaxChunkSize {
		return nil, fmt.Errorf("filetransfer: chunk size %d outside 1..%d", o.ChunkSize, envelope.MaxChunkSize)
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.LegacyKEK == "" {
		o.LegacyKEK = envelope.DefaultLegacyKEK
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sender{o: o, log: o.Logger, sealers: map[string]*envelope.Sealer{}}, nil
}

// ChunkSize is the sender's plaintext chunk size.
func (s *Sender) ChunkSize() int { return s.o.ChunkSize }

// File is one file to send.
type File struct {
	Topic string
	// Name is the bare file name written into the manifest (or the legacy
	// X-filename header); envelope.ValidFileName must accept it.
	Name string
	// KEK is the transit key wrapping the file's data key, default
	// envelope.DefaultKEK (derived; context = topic). Ignored by SendLegacy.
	KEK  string
	Body io.Reader
	// Size is the file's size if known (SendLegacy checks it before
	// reading); -1 or 0 when unknown.
	Size int64
	// Progress, if set, is called with the plaintext bytes acknowledged so
	// far after each produced batch.
	Progress func(sent int64)
}

// Result describes a sent file.
type Result struct {
	FileID string `json:"file_id"` // "" for the legacy format
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Chunks is the number of records produced (1 for the legacy format).
	Chunks      int64           `json:"chunks"`
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	FirstOffset int64           `json:"first_offset"`
	LastOffset  int64           `json:"last_offset"`
	Format      envelope.Format `json:"format"`
}

func (s *Sender) sealer(kek string) (*envelope.Sealer, error) {
	if kek == "" {
		kek = envelope.DefaultKEK
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.sealers[kek]; ok {
		return sl, nil
	}
	sl, err := envelope.NewSealer(s.o.Keys, envelope.SealerOptions{KEK: kek, Policy: envelope.PerMessage})
	if err != nil {
		return nil, fmt.Errorf("filetransfer: %w", err)
	}
	s.sealers[kek] = sl
	return sl, nil
}

// Fixed sizes behind ChunkRecordBytes: sarama's per-record overhead plus a
// v2 record batch header, a wrapped DEK (vault:vN: and 60 base64-encoded
// bytes, with room for large versions), and the manifest's fields without
// the name.
const (
	recordOverhead  = 36 + 61
	headerOverhead  = 10 // varint lengths per header
	maxWrappedDEK   = 160
	manifestNoName  = 200
	chunkTagBytes   = 16
	fileIDHexDigits = 32
)

// ChunkRecordBytes is an upper bound on the size of a chunk/1 record (value,
// key, headers and Kafka's record and batch overhead) for a chunk of
// chunkSize bytes of a file called name, under kekHeader
// ("<mount>/<key>").
func ChunkRecordBytes(chunkSize int, name, kekHeader string) int {
	nameJSON, _ := json.Marshal(name)
	hs := []struct{ k, v int }{
		{len(envelope.HeaderFormat), len(envelope.FormatChunk)},
		{len(envelope.HeaderAlg), len(envelope.AlgChunk)},
		{len(envelope.HeaderKEK), len(kekHeader)},
		{len(envelope.HeaderEDEK), maxWrappedDEK},
		{len(envelope.HeaderFile), fileIDHexDigits},
		{len(envelope.HeaderChunk), 10},
		{len(envelope.HeaderLast), 1},
		{len(envelope.HeaderManifest), manifestNoName + len(nameJSON)},
	}
	n := recordOverhead + fileIDHexDigits + chunkSize + chunkTagBytes
	for _, h := range hs {
		n += h.k + h.v + headerOverhead
	}
	return n
}

// checkChunkFits refuses a chunk size whose records cannot fit.
func (s *Sender) checkChunkFits(name, kek string) error {
	if kek == "" {
		kek = envelope.DefaultKEK
	}
	kekHeader := s.o.Keys.Mount() + "/" + kek
	need := ChunkRecordBytes(s.o.ChunkSize, name, kekHeader)
	if need <= s.o.MaxMessageBytes {
		return nil
	}
	over := need - s.o.ChunkSize
	max := s.o.MaxMessageBytes - over
	if max < 1 {
		return fmt.Errorf("%w: message.max.bytes=%d leaves no room for a chunk after %d bytes of headers", ErrTooLarge, s.o.MaxMessageBytes, over)
	}
	return fmt.Errorf("%w: a chunk of %d bytes needs records of up to %d bytes, above message.max.bytes=%d; use a chunk size of at most %d",
		ErrTooLarge, s.o.ChunkSize, need, s.o.MaxMessageBytes, max)
}

// newResult is f's Result before anything is produced, with an error
// when f has no topic or its name is not a bare file name.
func newResult(f File, format envelope.Format) (Result, error) {
	res := Result{Name: f.Name, Topic: f.Topic, Partition: -1, FirstOffset: -1, LastOffset: -1, Format: format}
	if f.Topic == "" {
		return res, errors.New("filetransfer: no topic")
	}
	if !envelope.ValidFileName(f.Name) {
		return res, fmt.Errorf("filetransfer: %q is not a bare file name (UTF-8, no '/', '\\' or NUL, not . or ..)", f.Name)
	}
	return res, nil
}

// Send encrypts f under one fresh data key and produces it as chunk/1
// records keyed by the file id, in batches of at most BatchBytes, waiting
// for each batch's acknowledgement. If Vault gives no data key, nothing is
// produced. If a later step fails, the error wraps ErrPartial and the
// Result counts the chunks already produced.
func (s *Sender) Send(ctx context.Context, f File) (Result, error) {
	res, err := newResult(f, envelope.FormatChunk)
	if err != nil {
		return res, err
	}
	if err := s.checkChunkFits(f.Name, f.KEK); err != nil {
		return res, err
	}
	sl, err := s.sealer(f.KEK)
	if err != nil {
		return res, err
	}
	body := &countingReader{r: f.Body}
	enc, err := sl.NewFileEncoder(ctx, f.Topic, f.Name, body, envelope.FileOptions{ChunkSize: s.o.ChunkSize})
	if err != nil {
		return res, fmt.Errorf("no data key from Vault, nothing produced: %w", err)
	}
	defer enc.Close()
	res.FileID = enc.FileID()

	var (
		batch      []kafka.Message
		batchBytes int
		sentBytes  int64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		dels, err := s.o.Producer.Produce(ctx, batch)
		if err != nil {
			return err
		}
		for _, d := range dels {
			if d.Err != nil {
				if errors.Is(d.Err, kafka.ErrTooLarge) {
					return fmt.Errorf("chunk %d: %w (broker): %w", res.Chunks, ErrTooLarge, d.Err)
				}
				return fmt.Errorf("chunk %d not acknowledged: %w", res.Chunks, d.Err)
			}
			if res.FirstOffset < 0 {
				res.FirstOffset, res.Partition = d.Offset, d.Partition
			}
			res.LastOffset = d.Offset
			res.Chunks++
		}
		sentBytes += int64(batchBytes)
		batch, batchBytes = batch[:0], 0
		if f.Progress != nil {
			f.Progress(min(sentBytes, body.n))
		}
		return nil
	}
	fail := func(err error) (Result, error) {
		if res.Chunks > 0 {
			return res, fmt.Errorf("%w (%d chunks of file %s produced): %w", ErrPartial, res.Chunks, res.FileID, err)
		}
		return res, err
	}
	for {
		rec, err := enc.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrRead) || body.err != nil {
				return fail(fmt.Errorf("%w: %w", ErrRead, err))
			}
			return fail(err)
		}
		rec.Partition = -1 // by key: a file's chunks share one partition
		batch = append(batch, rec)
		batchBytes += len(rec.Value) - chunkTagBytes
		if batchBytes >= s.o.BatchBytes || len(batch) >= 64 {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	m, _ := enc.Manifest()
	res.Size, res.SHA256 = m.Size, m.SHA256
	s.log.Debug("file sent", "topic", f.Topic, "file_id", res.FileID, "size", res.Size, "chunks", res.Chunks)
	return res, nil
}

// SendFile sends a file read from body (the HTTP upload endpoint's
// dependency).
func (s *Sender) SendFile(ctx context.Context, topic, kek, name string, body io.Reader) (Result, error) {
	return s.Send(ctx, File{Topic: topic, Name: name, KEK: kek, Body: body})
}

// LegacyValueBytes is the size of a legacy message value for a file of
// size bytes: the JSON around the hex of the GCM ciphertext of the file's
// base64 text.
func LegacyValueBytes(size int64) int64 {
	b64 := 4 * ((size + 2) / 3)
	return int64(len(`{"ciphertext": "`)) + 2*b64 + int64(len(`", "tag": "`)) + 32 + int64(len(`", "nonce": "`)) + 44 + int64(len(`"}`))
}

// legacyRecordBytes bounds a legacy record's size.
func legacyRecordBytes(size int64, name string) int64 {
	return LegacyValueBytes(size) + recordOverhead + int64(len(envelope.LegacyKeyHeader)+maxWrappedDEK+len(envelope.LegacyNameHeader)+len(name)+2*headerOverhead)
}

// MaxLegacyFileBytes is the largest file the legacy one-message format
// carries within maxMessageBytes.
func MaxLegacyFileBytes(maxMessageBytes int, name string) int64 {
	lo, hi := int64(0), int64(maxMessageBytes)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if legacyRecordBytes(mid, name) <= int64(maxMessageBytes) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// SendLegacy sends f as the original demo's producer_file_transfer.py did:
// one message, headers X-encryptionkey and X-filename, no record key, the
// data key from transit/datakey/plaintext/<LegacyKEK> (no context). The
// whole file is held in memory, so files that cannot fit one message are
// refused (ErrTooLarge) before anything is read or asked of Vault.
func (s *Sender) SendLegacy(ctx context.Context, f File) (Result, error) {
	res, err := newResult(f, envelope.FormatLegacy)
	if err != nil {
		return res, err
	}
	max := MaxLegacyFileBytes(s.o.MaxMessageBytes, f.Name)
	tooLarge := func(n int64) error {
		return fmt.Errorf("%w: a file of %d bytes is too large for the legacy one-message format: at most %d bytes fit message.max.bytes=%d (the value is about 8/3 of the file); send it without --legacy-format",
			ErrTooLarge, n, max, s.o.MaxMessageBytes)
	}
	if f.Size > max {
		return res, tooLarge(f.Size)
	}
	data, err := io.ReadAll(io.LimitReader(f.Body, max+1))
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrRead, err)
	}
	if int64(len(data)) > max {
		return res, tooLarge(int64(len(data)))
	}
	sum := sha256.Sum256(data)
	hs, value, err := envelope.EncodeLegacy(ctx, s.o.Keys, s.o.LegacyKEK, f.Name, data)
	clear(data)
	if err != nil {
		return res, fmt.Errorf("no data key from Vault, nothing produced: %w", err)
	}
	msg := kafka.Message{Topic: f.Topic, Partition: -1, Value: value, Headers: hs}
	dels, err := s.o.Producer.Produce(ctx, []kafka.Message{msg})
	if err != nil {
		return res, err
	}
	if d := dels[0]; d.Err != nil {
		if errors.Is(d.Err, kafka.ErrTooLarge) {
			return res, fmt.Errorf("%w (broker): %w", ErrTooLarge, d.Err)
		}
		return res, fmt.Errorf("legacy message not acknowledged: %w", d.Err)
	}
	res.Size, res.SHA256, res.Chunks = int64(len(data)), hex.EncodeToString(sum[:]), 1
	res.Partition, res.FirstOffset, res.LastOffset = dels[0].Partition, dels[0].Offset, dels[0].Offset
	if f.Progress != nil {
		f.Progress(res.Size)
	}
	return res, nil
}

// countingReader counts bytes read and remembers a read error, so a failed
// upload body can be told apart from a failed Vault or Kafka.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// oneLine keeps log and error text on one line.
func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
