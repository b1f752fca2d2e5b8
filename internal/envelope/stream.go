package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	fileIDBytes     = 16
	noncePrefixSize = 7
	tagSize         = 16
	// maxChunkIndex is the largest chunk index (2^32-1 chunks at most).
	maxChunkIndex = math.MaxUint32 - 1
	// streamInfo is the HKDF info of the per-file key and nonce prefix.
	streamInfo = "kafkagate chunk/1 " + AlgChunk
)

// Manifest describes a file sent as chunks. It travels, authenticated, in
// the kafkagate.manifest header of the final chunk.
type Manifest struct {
	V         int    `json:"v"`
	File      string `json:"file"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Chunks    int64  `json:"chunks"`
	ChunkSize int    `json:"chunk_size"`
}

// FileOptions configure a FileEncoder.
type FileOptions struct {
	// ChunkSize is the plaintext bytes per chunk, default DefaultChunkSize,
	// at most MaxChunkSize.
	ChunkSize int
	// Key is the Kafka record key of every chunk (bound into the associated
	// data). Default: the file id, so a file's chunks share a partition.
	Key []byte
}

// ValidFileName reports whether name is acceptable as a manifest file name:
// non-empty valid UTF-8 without '/', '\' or NUL, and not "." or "..".
func ValidFileName(name string) bool {
	return name != "" && name != "." && name != ".." && utf8.ValidString(name) &&
		!strings.ContainsAny(name, "/\\\x00") && len(name) <= 4096
}

// fileCipher is the per-file key and nonce prefix of docs/wire-format.md §4.2.
type fileCipher struct {
	gcm    cipher.AEAD
	prefix [noncePrefixSize]byte
}

// newFileCipher derives the per-file key from dek and the file id; it zeroes
// dek and the derived bytes.
func newFileCipher(dek, fileID []byte) (*fileCipher, error) {
	defer clear(dek)
	if len(dek) != dekBytes {
		return nil, fmt.Errorf("data key has %d bytes, want %d", len(dek), dekBytes)
	}
	okm, err := hkdf.Key(sha256.New, dek, fileID, streamInfo, dekBytes+noncePrefixSize)
	if err != nil {
		return nil, err
	}
	defer clear(okm)
	block, err := aes.NewCipher(okm[:dekBytes])
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	fc := &fileCipher{gcm: gcm}
	copy(fc.prefix[:], okm[dekBytes:])
	return fc, nil
}

func (fc *fileCipher) nonce(index uint32, last bool) []byte {
	n := make([]byte, 0, 12)
	n = append(n, fc.prefix[:]...)
	n = binary.BigEndian.AppendUint32(n, index)
	if last {
		return append(n, 1)
	}
	return append(n, 0)
}

// FileEncoder turns a file read from an io.Reader into chunk/1 records,
// holding one chunk in memory whatever the file size. It is not safe for
// concurrent use.
type FileEncoder struct {
	r         io.Reader
	topic     string
	key       []byte
	name      string
	fileID    string
	kekHeader string
	wrapped   string
	fc        *fileCipher
	chunkSize int

	buf      []byte
	carry    byte
	hasCarry bool
	index    uint32
	sha      hash.Hash
	size     int64
	manifest Manifest
	done     bool
	err      error
}

// NewFileEncoder prepares to send the file name read from r on topic. It
// gets one fresh DEK from Vault for the file (whatever the Sealer's DEK
// policy); failing that it returns an error wrapping ErrDataKey and the
// vaultclient error.
func (s *Sealer) NewFileEncoder(ctx context.Context, topic, name string, r io.Reader, o FileOptions) (*FileEncoder, error) {
	if topic == "" {
		return nil, errorf(ErrBadHeader, "empty topic")
	}
	if !ValidFileName(name) {
		return nil, errorf(ErrBadHeader, "file name is not a bare UTF-8 name")
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < 1 || o.ChunkSize > MaxChunkSize {
		return nil, errorf(ErrTooLarge, "chunk size %d outside 1..%d", o.ChunkSize, MaxChunkSize)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	dk, err := s.ks.NewDataKey(ctx, s.kek, []byte(topic))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	id := make([]byte, fileIDBytes)
	if _, err := rand.Read(id); err != nil {
		clear(dk.Plaintext)
		return nil, fmt.Errorf("envelope: file id: %w", err)
	}
	return newFileEncoder(dk.Plaintext, dk.Wrapped, s.ks.Mount()+"/"+s.kek, id, topic, name, r, o)
}

// newFileEncoder builds an encoder from a DEK (zeroed here) and a file id.
func newFileEncoder(dek []byte, wrapped, kekHeader string, id []byte, topic, name string, r io.Reader, o FileOptions) (*FileEncoder, error) {
	fc, err := newFileCipher(dek, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataKey, err)
	}
	fileID := hex.EncodeToString(id)
	key := o.Key
	if key == nil {
		key = []byte(fileID)
	}
	return &FileEncoder{
		r: r, topic: topic, key: key, name: name, fileID: fileID,
		kekHeader: kekHeader, wrapped: wrapped, fc: fc, chunkSize: o.ChunkSize,
		buf: make([]byte, o.ChunkSize), sha: sha256.New(),
	}, nil
}

// FileID is the file's id (32 hex digits).
func (e *FileEncoder) FileID() string { return e.fileID }

// Manifest returns the file's manifest once Next has returned io.EOF.
func (e *FileEncoder) Manifest() (Manifest, bool) { return e.manifest, e.done }

// Close releases the key and buffer. Later calls to Next fail with
// ErrClosed (or io.EOF if the file was complete).
func (e *FileEncoder) Close() {
	e.fc = nil
	clear(e.buf)
	e.buf = nil
	if e.err == nil && !e.done {
		e.err = ErrClosed
	}
}

// Next returns the next chunk record, or io.EOF after the final one. A read
// error from the file is returned wrapped and ends the encoder. The
// returned value is freshly allocated and owned by the caller.
func (e *FileEncoder) Next(ctx context.Context) (Record, error) {
	if e.err != nil {
		return Record{}, e.err
	}
	if e.done {
		return Record{}, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	n := 0
	if e.hasCarry {
		e.buf[0] = e.carry
		n, e.hasCarry = 1, false
	}
	m, err := io.ReadFull(e.r, e.buf[n:])
	n += m
	last := false
	switch {
	case err == nil:
		var p [1]byte
		k, perr := io.ReadFull(e.r, p[:])
		switch {
		case k == 1:
			e.carry, e.hasCarry = p[0], true
		case perr == io.EOF:
			last = true
		default:
			e.err = fmt.Errorf("envelope: read file: %w", perr)
			return Record{}, e.err
		}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		e.err = fmt.Errorf("envelope: read file: %w", err)
		return Record{}, e.err
	}
	if !last && e.index >= maxChunkIndex {
		e.err = errorf(ErrTooLarge, "file needs more than %d chunks", uint64(maxChunkIndex)+1)
		return Record{}, e.err
	}
	pt := e.buf[:n]
	e.sha.Write(pt)
	e.size += int64(n)

	hs := []Header{
		{Key: HeaderFormat, Value: []byte(FormatChunk)},
		{Key: HeaderAlg, Value: []byte(AlgChunk)},
		{Key: HeaderKEK, Value: []byte(e.kekHeader)},
		{Key: HeaderEDEK, Value: []byte(e.wrapped)},
		{Key: HeaderFile, Value: []byte(e.fileID)},
		{Key: HeaderChunk, Value: []byte(strconv.FormatUint(uint64(e.index), 10))},
		{Key: HeaderLast, Value: []byte(lastFlag(last))},
	}
	if last {
		e.manifest = Manifest{
			V: 1, File: e.fileID, Name: e.name, Size: e.size,
			SHA256: hex.EncodeToString(e.sha.Sum(nil)), Chunks: int64(e.index) + 1, ChunkSize: e.chunkSize,
		}
		mj, err := json.Marshal(e.manifest)
		if err != nil {
			e.err = fmt.Errorf("envelope: manifest: %w", err)
			return Record{}, e.err
		}
		hs = append(hs, Header{Key: HeaderManifest, Value: mj})
	}
	sorted, err := authHeaders(hs)
	if err != nil {
		e.err = err
		return Record{}, err
	}
	aad := buildAAD(e.topic, e.key, sorted)
	value := e.fc.gcm.Seal(make([]byte, 0, n+tagSize), e.fc.nonce(e.index, last), pt, aad)
	rec := Record{Topic: e.topic, Key: e.key, Headers: hs, Value: value}
	e.index++
	if last {
		e.done = true
		clear(e.buf)
	}
	return rec, nil
}

func lastFlag(last bool) string {
	if last {
		return "1"
	}
	return "0"
}

// ChunkInfo is what a chunk's headers say, before any authentication: use
// it only to route chunks to the decoder of their file.
type ChunkInfo struct {
	FileID string
	Index  uint32
	Last   bool
}

// ReadChunkInfo parses a chunk/1 record's file id, index and last flag.
func ReadChunkInfo(hs []Header) (ChunkInfo, error) {
	f, err := parseFields(hs)
	if err != nil {
		return ChunkInfo{}, err
	}
	if err := f.checkFormat(FormatChunk, AlgChunk); err != nil {
		return ChunkInfo{}, err
	}
	return chunkInfo(f)
}

func chunkInfo(f fields) (ChunkInfo, error) {
	fv, err := f.require(HeaderFile)
	if err != nil {
		return ChunkInfo{}, err
	}
	if len(fv) != 2*fileIDBytes || strings.ToLower(string(fv)) != string(fv) {
		return ChunkInfo{}, errorf(ErrBadHeader, "%s is not %d lowercase hex digits", HeaderFile, 2*fileIDBytes)
	}
	if _, err := hex.DecodeString(string(fv)); err != nil {
		return ChunkInfo{}, errorf(ErrBadHeader, "%s is not hex", HeaderFile)
	}
	cv, err := f.require(HeaderChunk)
	if err != nil {
		return ChunkInfo{}, err
	}
	idx, err := strconv.ParseUint(string(cv), 10, 32)
	if err != nil || idx > maxChunkIndex || strconv.FormatUint(idx, 10) != string(cv) {
		return ChunkInfo{}, errorf(ErrBadHeader, "%s %q is not a chunk index", HeaderChunk, printable(cv))
	}
	lv, err := f.require(HeaderLast)
	if err != nil {
		return ChunkInfo{}, err
	}
	if string(lv) != "0" && string(lv) != "1" {
		return ChunkInfo{}, errorf(ErrBadHeader, "%s %q is not 0 or 1", HeaderLast, printable(lv))
	}
	return ChunkInfo{FileID: string(fv), Index: uint32(idx), Last: string(lv) == "1"}, nil
}

// ChunkStatus is what FileDecoder.Write did with a chunk.
type ChunkStatus int

// Chunk statuses.
const (
	ChunkRejected  ChunkStatus = iota // an error was returned
	ChunkAccepted                     // authenticated and written
	ChunkDuplicate                    // identical copy of an accepted chunk, ignored
)

// FileDecoder reassembles one file from its chunk/1 records, fed in arrival
// order, writing each chunk's plaintext to w once it authenticates. The file
// is valid only when Finish returns nil: write to a temporary file and
// discard it on any error. After an error other than a failed DEK unwrap or
// a cancelled context, the decoder refuses every further chunk. Memory: one
// chunk plus 16 bytes per accepted chunk. Not safe for concurrent use.
type FileDecoder struct {
	o *Opener
	w io.Writer

	started  bool
	fileID   string
	keyRef   string // kafkagate.kek and kafkagate.edek of chunk 0
	fc       *fileCipher
	next     uint32
	tags     [][tagSize]byte
	sha      hash.Hash
	size     int64
	manifest Manifest
	done     bool
	err      error
	buf      []byte
}

// NewFileDecoder returns a decoder writing plaintext to w.
func (o *Opener) NewFileDecoder(w io.Writer) *FileDecoder {
	return &FileDecoder{o: o, w: w, sha: sha256.New()}
}

func (d *FileDecoder) fail(err error) (ChunkStatus, error) {
	d.err = err
	d.fc = nil
	clear(d.buf)
	return ChunkRejected, err
}

// Write feeds the next chunk record as it arrived. A duplicate of an
// accepted chunk is ignored (ChunkDuplicate, nil); every other anomaly is a
// typed error (see docs/wire-format.md §4.4).
func (d *FileDecoder) Write(ctx context.Context, rec Record) (ChunkStatus, error) {
	if d.err != nil {
		return ChunkRejected, d.err
	}
	if err := ctx.Err(); err != nil {
		return ChunkRejected, err
	}
	f, err := parseFields(rec.Headers)
	if err != nil {
		return d.fail(err)
	}
	if err := f.checkFormat(FormatChunk, AlgChunk); err != nil {
		return d.fail(err)
	}
	info, err := chunkInfo(f)
	if err != nil {
		return d.fail(err)
	}
	if !d.started {
		if info.Index != 0 {
			return d.fail(errorf(ErrOutOfOrder, "first chunk of file %s has index %d, want 0", info.FileID, info.Index))
		}
		if rec.Topic == "" {
			return d.fail(errorf(ErrBadHeader, "empty topic"))
		}
		kek, wrapped, err := d.o.keyHeaders(f)
		if err != nil {
			return d.fail(err)
		}
		topic, err := d.o.sealedFor(rec.Topic, f)
		if err != nil {
			return d.fail(err)
		}
		raw, err := d.o.unwrapRaw(ctx, kek, []byte(topic), wrapped)
		if err != nil {
			return ChunkRejected, err // nothing accepted yet: the caller may retry
		}
		id, _ := hex.DecodeString(info.FileID)
		fc, err := newFileCipher(raw, id) // zeroes raw
		if err != nil {
			return d.fail(fmt.Errorf("%w: %w", ErrKeyUnwrap, err))
		}
		d.fc, d.fileID, d.started, d.keyRef = fc, info.FileID, true, chunkKeyRef(f)
	} else if info.FileID != d.fileID {
		return d.fail(errorf(ErrForeignChunk, "chunk %d of file %s fed to the decoder of file %s", info.Index, info.FileID, d.fileID))
	} else if chunkKeyRef(f) != d.keyRef {
		// The key headers are outside the associated data; every chunk of a
		// file must name the key chunk 0 was opened with.
		return d.fail(errorf(ErrTampered, "chunk %d names another KEK or wrapped DEK than chunk 0", info.Index))
	}
	topic, err := d.o.sealedFor(rec.Topic, f)
	if err != nil {
		return d.fail(err)
	}
	if len(rec.Value) < tagSize {
		return d.fail(errorf(ErrTampered, "chunk %d: value of %d bytes is too short", info.Index, len(rec.Value)))
	}
	if len(rec.Value) > MaxChunkSize+tagSize {
		return d.fail(errorf(ErrTooLarge, "chunk %d: value of %d bytes", info.Index, len(rec.Value)))
	}
	aad := buildAAD(topic, rec.Key, f.sorted)
	nonce := d.fc.nonce(info.Index, info.Last)

	if info.Index < d.next { // a duplicate
		pt, err := d.fc.gcm.Open(d.buf[:0], nonce, rec.Value, aad)
		clear(pt)
		if err != nil {
			return d.fail(errorf(ErrTampered, "duplicate of chunk %d does not authenticate", info.Index))
		}
		var tag [tagSize]byte
		copy(tag[:], rec.Value[len(rec.Value)-tagSize:])
		if subtle.ConstantTimeCompare(tag[:], d.tags[info.Index][:]) == 1 {
			return ChunkDuplicate, nil
		}
		return d.fail(errorf(ErrDuplicateConflict, "chunk %d arrived again with different content", info.Index))
	}
	if d.done {
		return d.fail(errorf(ErrOutOfOrder, "chunk %d after the final chunk %d", info.Index, d.next-1))
	}
	if info.Index > d.next {
		return d.fail(errorf(ErrOutOfOrder, "chunk %d arrived, want %d (dropped or reordered chunk)", info.Index, d.next))
	}
	pt, err := d.fc.gcm.Open(d.buf[:0], nonce, rec.Value, aad)
	if err != nil {
		return d.fail(errorf(ErrTampered, "chunk %d does not authenticate", info.Index))
	}
	d.buf = pt[:0]
	mv, hasManifest := f.get(HeaderManifest)
	if hasManifest != info.Last {
		return d.fail(errorf(ErrBadHeader, "chunk %d: %s must be on the final chunk only", info.Index, HeaderManifest))
	}
	d.sha.Write(pt)
	d.size += int64(len(pt))
	if info.Last {
		if err := d.checkManifest(mv, info); err != nil {
			return d.fail(err)
		}
	}
	if _, err := d.w.Write(pt); err != nil {
		return d.fail(fmt.Errorf("envelope: write chunk %d: %w", info.Index, err))
	}
	var tag [tagSize]byte
	copy(tag[:], rec.Value[len(rec.Value)-tagSize:])
	d.tags = append(d.tags, tag)
	d.next++
	if info.Last {
		d.done = true
		clear(d.buf)
	}
	return ChunkAccepted, nil
}

// chunkKeyRef joins a chunk's kafkagate.kek and kafkagate.edek.
func chunkKeyRef(f fields) string {
	kek, _ := f.get(HeaderKEK)
	edek, _ := f.get(HeaderEDEK)
	return string(kek) + "\x00" + string(edek)
}

func (d *FileDecoder) checkManifest(mv []byte, info ChunkInfo) error {
	var m Manifest
	if err := json.Unmarshal(mv, &m); err != nil || m.V != 1 {
		return errorf(ErrBadHeader, "%s is not a version 1 manifest", HeaderManifest)
	}
	sum := hex.EncodeToString(d.sha.Sum(nil))
	switch {
	case m.File != d.fileID:
		return errorf(ErrIntegrity, "manifest names file %s, chunks say %s", printable([]byte(m.File)), d.fileID)
	case m.Chunks != int64(info.Index)+1:
		return errorf(ErrIntegrity, "manifest says %d chunks, final chunk is %d", m.Chunks, info.Index)
	case m.Size != d.size:
		return errorf(ErrIntegrity, "manifest says %d bytes, decrypted %d", m.Size, d.size)
	case subtle.ConstantTimeCompare([]byte(m.SHA256), []byte(sum)) != 1:
		return errorf(ErrIntegrity, "SHA-256 of the decrypted file does not match the manifest")
	}
	d.manifest = m
	return nil
}

// Done reports whether the final chunk was accepted and the file verified.
func (d *FileDecoder) Done() bool { return d.done && d.err == nil }

// FileID is the id of the file being decoded ("" before the first chunk).
func (d *FileDecoder) FileID() string { return d.fileID }

// Finish is called when no more chunks will come. It returns the verified
// manifest, or ErrTruncated if the final chunk never arrived, or the
// decoder's earlier error.
func (d *FileDecoder) Finish() (Manifest, error) {
	if d.err != nil {
		return Manifest{}, d.err
	}
	if !d.done {
		d.fail(errorf(ErrTruncated, "file %s: %d chunks accepted, final chunk missing", d.fileID, d.next))
		return Manifest{}, d.err
	}
	return d.manifest, nil
}

// Close releases the key; later calls fail with ErrClosed.
func (d *FileDecoder) Close() {
	if d.err == nil {
		d.err = ErrClosed
	}
	d.fc = nil
	clear(d.buf)
}
