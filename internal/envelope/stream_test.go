package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
)

// encodeAll encodes data as chunk records.
func encodeAll(t testing.TB, s *Sealer, topic, name string, data []byte, chunk int) []Record {
	t.Helper()
	enc, err := s.NewFileEncoder(context.Background(), topic, name, bytes.NewReader(data), FileOptions{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return drain(t, enc)
}

func drain(t testing.TB, enc *FileEncoder) []Record {
	t.Helper()
	var out []Record
	eachChunk(t, enc, func(r Record) { out = append(out, r) })
	return out
}

// eachChunk passes the records of enc to fn in order until the file ends,
// failing t on an encoder error.
func eachChunk(t testing.TB, enc *FileEncoder, fn func(Record)) {
	t.Helper()
	for {
		r, err := enc.Next(context.Background())
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(r)
	}
}

// decodeChunk writes r to dec, failing t on an error.
func decodeChunk(t testing.TB, dec *FileDecoder, r Record) {
	t.Helper()
	if _, err := dec.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// decodeAll feeds recs to a fresh decoder and returns the output, the
// statuses and the first error (from Write or Finish).
func decodeAll(op *Opener, recs []Record) ([]byte, []ChunkStatus, Manifest, error) {
	var out bytes.Buffer
	d := op.NewFileDecoder(&out)
	defer d.Close()
	var st []ChunkStatus
	for _, r := range recs {
		s, err := d.Write(context.Background(), r)
		st = append(st, s)
		if err != nil {
			return out.Bytes(), st, Manifest{}, err
		}
	}
	m, err := d.Finish()
	return out.Bytes(), st, m, err
}

func TestFileRoundTripSizesVault(t *testing.T) {
	ks := vaultKeys(t, realVault(t))
	s := newSealer(t, ks, SealerOptions{Policy: Cached}) // files ignore the policy: one DEK per file
	op := newOpener(t, ks, OpenerOptions{})
	const cs = DefaultChunkSize
	for _, tc := range []struct{ size, chunks int }{{0, 1}, {1, 1}, {cs - 1, 1}, {cs, 1}, {cs + 1, 2}, {3*cs + 7, 4}} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			data := randBytes(tc.size)
			before := ks.dataKeys.Load()
			recs := encodeAll(t, s, "files", "data.bin", data, 0)
			if n := ks.dataKeys.Load() - before; n != 1 {
				t.Fatalf("%d DEKs for one file", n)
			}
			if len(recs) != tc.chunks {
				t.Fatalf("%d chunks, want %d", len(recs), tc.chunks)
			}
			for i, r := range recs {
				if len(r.Value) > cs+16 || hdr(r, HeaderChunk) != strconv.Itoa(i) || string(r.Key) != hdr(r, HeaderFile) {
					t.Fatalf("chunk %d: %d bytes, headers %v", i, len(r.Value), r.Headers)
				}
			}
			out, _, m, err := decodeAll(op, recs)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if !bytes.Equal(out, data) || m.Size != int64(tc.size) || m.SHA256 != hex.EncodeToString(sum[:]) ||
				m.Chunks != int64(tc.chunks) || m.Name != "data.bin" || m.ChunkSize != cs {
				t.Fatalf("round trip: %d bytes out, manifest %+v", len(out), m)
			}
		})
	}
}

// ctrReader is a fast deterministic byte stream (AES-CTR keystream).
type ctrReader struct {
	s    cipher.Stream
	left int64
}

func newCTRReader(n int64) *ctrReader {
	b, _ := aes.NewCipher(make([]byte, 16))
	return &ctrReader{s: cipher.NewCTR(b, make([]byte, 16)), left: n}
}

func (r *ctrReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	clear(p)
	r.s.XORKeyStream(p, p)
	r.left -= int64(len(p))
	return len(p), nil
}

// TestFile50MiBVault streams 50 MiB through encoder and decoder without
// holding the file, comparing SHA-256 and checking the heap stays flat.
func TestFile50MiBVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	s := newSealer(t, ks, SealerOptions{})
	op := newOpener(t, ks, OpenerOptions{})
	const size = 50 << 20
	src := sha256.New()
	enc, err := s.NewFileEncoder(ctx, "big", "big.bin", io.TeeReader(newCTRReader(size), src), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dst := sha256.New()
	dec := op.NewFileDecoder(dst)
	defer dec.Close()
	var peak uint64
	var ms runtime.MemStats
	chunks := 0
	eachChunk(t, enc, func(r Record) {
		decodeChunk(t, dec, r)
		if chunks%10 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		chunks++
	})
	m, err := dec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	em, _ := enc.Manifest()
	srcSum, dstSum := hex.EncodeToString(src.Sum(nil)), hex.EncodeToString(dst.Sum(nil))
	if srcSum != dstSum || m.SHA256 != srcSum || em != m || m.Size != size || chunks != 100 {
		t.Fatalf("50 MiB: chunks %d, src %s dst %s manifest %+v", chunks, srcSum, dstSum, m)
	}
	if peak > 32<<20 {
		t.Fatalf("heap peaked at %d MiB while streaming a 50 MiB file", peak>>20)
	}
	t.Logf("50 MiB in %d chunks, heap peak %.1f MiB", chunks, float64(peak)/(1<<20))
}

func TestFileTamperVault(t *testing.T) {
	ctx := context.Background()
	ks := vaultKeys(t, realVault(t))
	s := newSealer(t, ks, SealerOptions{})
	op := newOpener(t, ks, OpenerOptions{})
	const cs = 1024
	data := randBytes(5*cs + 100) // 6 chunks: 0..5
	f1 := encodeAll(t, s, "files", "one.bin", data, cs)
	f2 := encodeAll(t, s, "files", "two.bin", randBytes(5*cs+100), cs)
	if len(f1) != 6 {
		t.Fatalf("%d chunks", len(f1))
	}
	clone := func(rs []Record) []Record {
		out := make([]Record, len(rs))
		for i, r := range rs {
			out[i] = cloneRecord(r)
		}
		return out
	}
	without := func(rs []Record, i int) []Record { return append(clone(rs[:i]), clone(rs[i+1:])...) }
	insert := func(rs []Record, i int, r Record) []Record {
		out := clone(rs[:i])
		out = append(out, cloneRecord(r))
		return append(out, clone(rs[i:])...)
	}
	expect := func(t *testing.T, recs []Record, want error) []ChunkStatus {
		t.Helper()
		out, st, _, err := decodeAll(op, recs)
		if want == nil {
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("want success, got %v", err)
			}
			return st
		}
		mustIs(t, err, want)
		return st
	}

	t.Run("intact", func(t *testing.T) { expect(t, f1, nil) })
	t.Run("flipped bit in every chunk", func(t *testing.T) {
		for i := range f1 {
			for _, pos := range []int{0, len(f1[i].Value) / 2, len(f1[i].Value) - 1} {
				recs := clone(f1)
				recs[i].Value[pos] ^= 0x04
				expect(t, recs, ErrTampered)
			}
		}
	})
	t.Run("flipped last flag", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[2], HeaderLast, []byte("1"))
		expect(t, recs, ErrTampered)
	})
	t.Run("changed manifest", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[5], HeaderManifest, bytes.Replace([]byte(hdr(recs[5], HeaderManifest)), []byte(`"one.bin"`), []byte(`"evil.sh"`), 1))
		expect(t, recs, ErrTampered)
	})
	t.Run("swapped manifest from another file", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[5], HeaderManifest, []byte(hdr(f2[5], HeaderManifest)))
		expect(t, recs, ErrTampered)
	})
	t.Run("swapped wrapped DEK on a later chunk", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[3], HeaderEDEK, []byte(hdr(f2[3], HeaderEDEK)))
		expect(t, recs, ErrTampered)
	})
	t.Run("swapped record key", func(t *testing.T) {
		recs := clone(f1)
		recs[1].Key = f2[1].Key
		expect(t, recs, ErrTampered)
	})
	t.Run("swapped topic", func(t *testing.T) {
		recs := clone(f1)
		recs[1].Topic = "other"
		expect(t, recs, ErrTampered)
		recs = clone(f1)
		recs[0].Topic = "other" // the DEK is bound to the topic by the derivation context
		expect(t, recs, ErrKeyUnwrap)
	})
	t.Run("added kafkagate header", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[4], "kafkagate.extra", []byte("x"))
		expect(t, recs, ErrTampered)
	})
	t.Run("note header is not authenticated", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[4], "kafkagate.note.redrive", []byte("2"))
		expect(t, recs, nil)
	})
	t.Run("dropped middle chunk", func(t *testing.T) { expect(t, without(f1, 2), ErrOutOfOrder) })
	t.Run("dropped first chunk", func(t *testing.T) { expect(t, without(f1, 0), ErrOutOfOrder) })
	t.Run("dropped last chunk", func(t *testing.T) { expect(t, without(f1, 5), ErrTruncated) })
	t.Run("reordered", func(t *testing.T) {
		recs := clone(f1)
		recs[2], recs[3] = recs[3], recs[2]
		expect(t, recs, ErrOutOfOrder)
	})
	t.Run("reordered with swapped index headers", func(t *testing.T) {
		recs := clone(f1)
		recs[2].Value, recs[3].Value = recs[3].Value, recs[2].Value
		expect(t, recs, ErrTampered)
	})
	t.Run("duplicates are idempotent", func(t *testing.T) {
		recs := insert(f1, 3, f1[2])            // immediate redelivery
		recs = append(recs, cloneRecord(f1[0])) // late redelivery of the first chunk
		recs = append(recs, cloneRecord(f1[5])) // and of the final chunk
		st := expect(t, recs, nil)
		dups := 0
		for _, s := range st {
			if s == ChunkDuplicate {
				dups++
			}
		}
		if dups != 3 {
			t.Fatalf("statuses %v", st)
		}
	})
	t.Run("tampered duplicate", func(t *testing.T) {
		bad := cloneRecord(f1[1])
		bad.Value[7] ^= 1
		expect(t, insert(f1, 4, bad), ErrTampered)
	})
	t.Run("conflicting duplicate", func(t *testing.T) {
		// Two authentic encodings under one DEK and file id that differ in
		// chunk 1: only a key holder can make this, but it must not pass.
		dk, err := ks.NewDataKey(ctx, DefaultKEK, []byte("files"))
		if err != nil {
			t.Fatal(err)
		}
		id := randBytes(16)
		alt := bytes.Clone(data)
		alt[cs+5] ^= 0xff
		mk := func(d []byte) []Record {
			enc, err := newFileEncoder(bytes.Clone(dk.Plaintext), dk.Wrapped, "transit/"+DefaultKEK, id, "files", "one.bin", bytes.NewReader(d), FileOptions{ChunkSize: cs})
			if err != nil {
				t.Fatal(err)
			}
			return drain(t, enc)
		}
		a, b := mk(data), mk(alt)
		expect(t, a, nil)
		expect(t, insert(a, 3, b[1]), ErrDuplicateConflict)
	})
	t.Run("truncated last chunk", func(t *testing.T) {
		recs := clone(f1)
		recs[5].Value = recs[5].Value[:len(recs[5].Value)-1]
		expect(t, recs, ErrTampered)
		recs = clone(f1)
		recs[5].Value = recs[5].Value[:10]
		expect(t, recs, ErrTampered)
	})
	t.Run("chunk from another file", func(t *testing.T) {
		recs := clone(f1)
		recs[2] = cloneRecord(f2[2])
		expect(t, recs, ErrForeignChunk)
		// ... even when its file id header is rewritten to match.
		recs[2].Key = f1[2].Key
		setHeader(&recs[2], HeaderFile, []byte(hdr(f1[2], HeaderFile)))
		expect(t, recs, ErrTampered)
	})
	t.Run("chunk after the final chunk", func(t *testing.T) {
		extra := cloneRecord(f1[5])
		setHeader(&extra, HeaderChunk, []byte("6"))
		expect(t, append(clone(f1), extra), ErrOutOfOrder)
	})
	t.Run("malformed index header", func(t *testing.T) {
		recs := clone(f1)
		setHeader(&recs[1], HeaderChunk, []byte("01"))
		expect(t, recs, ErrBadHeader)
	})
	t.Run("decoder refuses after an error", func(t *testing.T) {
		var out bytes.Buffer
		d := op.NewFileDecoder(&out)
		if _, err := d.Write(ctx, f1[0]); err != nil {
			t.Fatal(err)
		}
		_, err := d.Write(ctx, f1[2])
		mustIs(t, err, ErrOutOfOrder)
		_, err = d.Write(ctx, f1[1])
		mustIs(t, err, ErrOutOfOrder)
	})
	t.Run("record reader refuses chunks", func(t *testing.T) {
		_, err := op.Open(ctx, f1[0])
		mustIs(t, err, ErrUnknownFormat)
	})
	t.Run("routing info", func(t *testing.T) {
		ci, err := ReadChunkInfo(f1[5].Headers)
		if err != nil || !ci.Last || ci.Index != 5 || ci.FileID != hdr(f1[0], HeaderFile) {
			t.Fatalf("%+v %v", ci, err)
		}
	})
}

func TestFileEncoderInputs(t *testing.T) {
	ks := newInMemoryKeyServiceForTests() // pure input validation, no key use
	s := newSealer(t, ks, SealerOptions{})
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "a\x00b", string([]byte{0xff})} {
		if _, err := s.NewFileEncoder(context.Background(), "t", name, bytes.NewReader(nil), FileOptions{}); !errors.Is(err, ErrBadHeader) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, err := s.NewFileEncoder(context.Background(), "t", "a", bytes.NewReader(nil), FileOptions{ChunkSize: MaxChunkSize + 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized chunk: %v", err)
	}
	// A read error ends the encoder with that error.
	enc, err := s.NewFileEncoder(context.Background(), "t", "a", io.MultiReader(bytes.NewReader(make([]byte, 100)), errReader{}), FileOptions{ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Next(context.Background()); !errors.Is(err, errDisk) {
		t.Fatalf("read error: %v", err)
	}
	// One-byte chunks work (exercise the look-ahead byte).
	enc, _ = s.NewFileEncoder(context.Background(), "t", "a", bytes.NewReader([]byte("abc")), FileOptions{ChunkSize: 1})
	recs := drain(t, enc)
	op := newOpener(t, ks, OpenerOptions{})
	out, _, _, err := decodeAll(op, recs)
	if err != nil || string(out) != "abc" || len(recs) != 3 {
		t.Fatalf("1-byte chunks: %q %d %v", out, len(recs), err)
	}
}

var errDisk = fmt.Errorf("disk on fire")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errDisk }
