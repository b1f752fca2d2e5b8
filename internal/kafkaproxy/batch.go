package kafkaproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkagate/kafkagate/internal/protect"
)

// Record batch v2 layout (the fields kmsg.RecordBatch decodes).
const (
	batchHeaderBytes = 61 // up to and including NumRecords
	lengthOffset     = 8  // after FirstOffset
	magicOffset      = 16
	crcOffset        = 17
	attrsOffset      = 21
	batchOverhead    = 12 // FirstOffset + Length: not counted in Length
	codecMask        = 0x07
	transactionalBit = 0x10
	controlBit       = 0x20
)

var (
	errTruncated = errors.New("record batch truncated")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// splitBatches cuts a partition's record bytes into whole batches. A last
// batch cut short (a fetch response may end with one) is returned apart.
func splitBatches(b []byte) (batches [][]byte, tail []byte) {
	for len(b) > 0 {
		if len(b) < batchOverhead {
			return batches, b
		}
		n := int(int32(binary.BigEndian.Uint32(b[lengthOffset:])))
		if n < 0 || batchOverhead+n > len(b) {
			return batches, b
		}
		batches = append(batches, b[:batchOverhead+n])
		b = b[batchOverhead+n:]
	}
	return batches, nil
}

// batch is one decoded record batch v2.
type batch struct {
	hdr  kmsg.RecordBatch
	recs []kmsg.Record
}

// magic is the message format of a whole batch (2 for record batches).
func magic(raw []byte) int8 {
	if len(raw) <= magicOffset {
		return -1
	}
	return int8(raw[magicOffset])
}

func isControl(raw []byte) bool {
	return len(raw) >= attrsOffset+2 && binary.BigEndian.Uint16(raw[attrsOffset:])&controlBit != 0
}

// codecs decompresses and compresses batches with franz-go's codecs.
type codecs struct {
	dec  kgo.Decompressor
	comp map[kgo.CompressionCodecType]kgo.Compressor
}

func newCodecs() (*codecs, error) {
	c := &codecs{dec: kgo.DefaultDecompressor(), comp: map[kgo.CompressionCodecType]kgo.Compressor{}}
	for t, codec := range map[kgo.CompressionCodecType]kgo.CompressionCodec{
		kgo.CodecGzip: kgo.GzipCompression(), kgo.CodecSnappy: kgo.SnappyCompression(),
		kgo.CodecLz4: kgo.Lz4Compression(), kgo.CodecZstd: kgo.ZstdCompression(),
	} {
		comp, err := kgo.DefaultCompressor(codec)
		if err != nil {
			return nil, fmt.Errorf("compressor: %w", err)
		}
		c.comp[t] = comp
	}
	return c, nil
}

// decode parses a whole batch: header, CRC check, decompression, records.
func (c *codecs) decode(raw []byte) (*batch, error) {
	if magic(raw) != 2 {
		return nil, fmt.Errorf("message format v%d: only record batches (v2) are handled", magic(raw))
	}
	if len(raw) < batchHeaderBytes {
		return nil, errTruncated
	}
	b := &batch{}
	if err := b.hdr.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("record batch: %w", err)
	}
	if crc32.Checksum(raw[attrsOffset:], crcTable) != uint32(b.hdr.CRC) {
		return nil, errors.New("record batch CRC mismatch")
	}
	codec := kgo.CompressionCodecType(b.hdr.Attributes & codecMask)
	if codec > kgo.CodecZstd {
		return nil, fmt.Errorf("unknown compression codec %d", codec)
	}
	data, err := c.dec.Decompress(b.hdr.Records, codec)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if b.hdr.NumRecords < 0 || int(b.hdr.NumRecords) > len(data) {
		return nil, fmt.Errorf("record count %d does not fit the batch", b.hdr.NumRecords)
	}
	b.recs = make([]kmsg.Record, 0, b.hdr.NumRecords)
	for i := int32(0); i < b.hdr.NumRecords; i++ {
		r := kbin.Reader{Src: data}
		n := r.Varint()
		if !r.Ok() || n < 0 || int(n) > len(r.Src) {
			return nil, fmt.Errorf("record %d: bad length", i)
		}
		size := len(data) - len(r.Src) + int(n)
		var rec kmsg.Record
		if err := rec.ReadFrom(data[:size]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		b.recs = append(b.recs, rec)
		data = data[size:]
	}
	return b, nil
}

// appendBatch appends b to dst with its records, compressed with the
// batch's codec, and a new length and CRC. Offsets (the last offset delta
// too), timestamps, producer id, epoch, base sequence and attributes
// (transactional, control) are kept.
func (c *codecs) appendBatch(dst []byte, b *batch) ([]byte, error) {
	size := 0
	for i := range b.recs {
		r := &b.recs[i]
		size += len(r.Key) + len(r.Value) + 32
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value) + 10
		}
	}
	start := len(dst)
	// The header is written last, over these bytes, once the records'
	// length is known; uncompressed records go straight after it.
	dst = slices.Grow(dst, batchHeaderBytes+size)
	dst = append(dst, make([]byte, batchHeaderBytes)...)
	codec := kgo.CompressionCodecType(b.hdr.Attributes & codecMask)
	data := dst
	if codec != kgo.CodecNone {
		data = make([]byte, 0, size)
	}
	recStart := len(data)
	var scratch []byte
	for i := range b.recs {
		// Each record once: with length 0 (a 1-byte varint) the rest is
		// the body, whose length then prefixes it.
		r := &b.recs[i]
		r.Length = 0
		scratch = r.AppendTo(scratch[:0])
		body := scratch[1:]
		r.Length = int32(len(body))
		data = binary.AppendVarint(data, int64(len(body)))
		data = append(data, body...)
	}
	if codec == kgo.CodecNone {
		dst = data
	} else {
		comp, ok := c.comp[codec]
		if !ok {
			return nil, fmt.Errorf("unknown compression codec %d", codec)
		}
		out, used := comp.Compress(new(bytes.Buffer), data[recStart:])
		if used != codec {
			return nil, fmt.Errorf("compress with codec %d failed", codec)
		}
		dst = append(dst, out...)
	}
	h := b.hdr
	h.NumRecords = int32(len(b.recs))
	// The header's last offset delta is kept: in a compacted log it may
	// name a record that is gone, and consumers resume after it.
	if n := len(b.recs); n > 0 && h.LastOffsetDelta < b.recs[n-1].OffsetDelta {
		h.LastOffsetDelta = b.recs[n-1].OffsetDelta
	}
	recLen := len(dst) - start - batchHeaderBytes
	h.Records = nil
	h.Length = int32(batchHeaderBytes - batchOverhead + recLen)
	h.CRC = 0
	var hdr [batchHeaderBytes]byte
	if n := len(h.AppendTo(hdr[:0])); n != batchHeaderBytes {
		return nil, fmt.Errorf("record batch header of %d bytes", n)
	}
	out := dst[start:]
	copy(out, hdr[:])
	binary.BigEndian.PutUint32(out[crcOffset:], crc32.Checksum(out[attrsOffset:], crcTable))
	return dst, nil
}

// protectRecord is the engine's view of record i of b.
func (b *batch) protectRecord(topic string, partition int32, i int) protect.Record {
	r := &b.recs[i]
	hs := make([]protect.Header, len(r.Headers))
	for j, h := range r.Headers {
		hs[j] = protect.Header{Key: h.Key, Value: h.Value}
	}
	ts := b.hdr.FirstTimestamp + r.TimestampDelta64
	return protect.Record{Topic: topic, Partition: partition, Offset: b.hdr.FirstOffset + int64(r.OffsetDelta),
		Timestamp: time.UnixMilli(ts), Key: r.Key, Value: r.Value, Headers: hs}
}

func kmsgHeaders(hs []protect.Header) []kmsg.Header {
	out := make([]kmsg.Header, len(hs))
	for i, h := range hs {
		out[i] = kmsg.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
