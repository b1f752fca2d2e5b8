package envelope

import (
	"context"
	"io"
	"testing"

	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/kms/memkms"
)

// Benchmarks use the real Vault dev server (devenv). With the cached policy
// Vault is asked for one DEK per 10,000 records, so the figure is dominated
// by local AES-GCM; the stream benchmark asks Vault for one DEK per file.

// BenchmarkSealCached1KiB seals 1 KiB records with a cached DEK.
func BenchmarkSealCached1KiB(b *testing.B) {
	ks := vaultKeys(b, realVault(b))
	s := newSealer(b, ks, SealerOptions{Policy: Cached})
	rec := Record{Topic: "bench", Key: []byte("key-0001"), Value: randBytes(1024)}
	ctx := context.Background()
	benchRecords(b, func() (Record, error) { return s.Seal(ctx, rec) })
}

// benchRecords runs op once per iteration on a 1 KiB record, reporting
// bytes and allocations and failing on the first error.
func benchRecords[T any](b *testing.B, op func() (T, error)) {
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainCopy1KiB is the baseline: copy a 1 KiB value into a new
// slice, as forwarding a record unencrypted would.
func BenchmarkPlainCopy1KiB(b *testing.B) {
	v := randBytes(1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	var sink []byte
	for b.Loop() {
		sink = append([]byte(nil), v...)
	}
	_ = sink
}

// BenchmarkOpenCached1KiB opens 1 KiB records whose DEK is in the cache.
func BenchmarkOpenCached1KiB(b *testing.B) {
	ks := vaultKeys(b, realVault(b))
	s := newSealer(b, ks, SealerOptions{Policy: Cached})
	op := newOpener(b, ks, OpenerOptions{})
	ctx := context.Background()
	rec, err := s.Seal(ctx, Record{Topic: "bench", Key: []byte("key-0001"), Value: randBytes(1024)})
	if err != nil {
		b.Fatal(err)
	}
	benchRecords(b, func() ([]byte, error) { return op.Open(ctx, rec) })
}

// BenchmarkStream encodes a 32 MiB file into 512 KiB chunks and decodes it
// (one Vault datakey and one unwrap per file); MB/s is file throughput.
func BenchmarkStream(b *testing.B) {
	ks := vaultKeys(b, realVault(b))
	s := newSealer(b, ks, SealerOptions{})
	op := newOpener(b, ks, OpenerOptions{})
	ctx := context.Background()
	const size = 32 << 20
	b.SetBytes(size)
	for b.Loop() {
		enc, err := s.NewFileEncoder(ctx, "bench", "f.bin", newCTRReader(size), FileOptions{})
		if err != nil {
			b.Fatal(err)
		}
		dec := op.NewFileDecoder(io.Discard)
		eachChunk(b, enc, func(r Record) { decodeChunk(b, dec, r) })
		if _, err := dec.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// memKeys is a KeyService on the in-memory KMS: the seal and open
// benchmarks below need no Vault (a cached DEK is fetched once anyway).
func memKeys(b *testing.B) KeyService {
	k := memkms.New(memkms.Options{Upsert: true})
	if err := k.EnsureKey(context.Background(), "kafkagate-envelope", kms.KeySpec{Derived: true}); err != nil {
		b.Fatal(err)
	}
	return NewKMSKeys(k)
}

// benchSealMem seals size-byte records with a cached DEK on memkms; the
// sealed size is reported as wire B/record beside the value's size.
func benchSealMem(b *testing.B, size int) {
	s := newSealer(b, memKeys(b), SealerOptions{Policy: Cached})
	rec := Record{Topic: "bench", Key: []byte("key-0001"), Value: randBytes(size)}
	ctx := context.Background()
	out, err := s.Seal(ctx, rec)
	if err != nil {
		b.Fatal(err)
	}
	wire := len(out.Value)
	for _, h := range out.Headers {
		wire += len(h.Key) + len(h.Value)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(wire), "wire-B/record")
}

func BenchmarkSealMem100B(b *testing.B)  { benchSealMem(b, 100) }
func BenchmarkSealMem1KiB(b *testing.B)  { benchSealMem(b, 1024) }
func BenchmarkSealMem10KiB(b *testing.B) { benchSealMem(b, 10240) }
