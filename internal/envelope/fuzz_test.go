package envelope

import (
	"bytes"
	"context"
	"testing"
)

// The fuzz targets use the in-memory key service: they exercise parsing
// and authentication of hostile records, not Vault.

func FuzzOpenRecord(f *testing.F) {
	ks := newInMemoryKeyServiceForTests()
	s := newSealer(f, ks, SealerOptions{Policy: Cached})
	o := newOpener(f, ks, OpenerOptions{})
	ctx := context.Background()
	sealed, err := s.Seal(ctx, Record{Topic: "t", Key: []byte("k"), Value: []byte("secret value")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Value, -1, []byte(nil), "t", []byte("k"))
	f.Add(sealed.Value[:5], 0, []byte("record/2"), "t", []byte("k"))
	f.Add(append([]byte{1}, sealed.Value...), 2, []byte("vault:v9:AAAA"), "u", []byte(nil))
	f.Fuzz(func(t *testing.T, value []byte, hi int, hv []byte, topic string, key []byte) {
		rec := cloneRecord(sealed)
		rec.Value, rec.Topic, rec.Key = value, topic, key
		if hi >= 0 && hi < len(rec.Headers) {
			rec.Headers[hi].Value = hv
		}
		pt, err := o.Open(ctx, rec)
		unchanged := bytes.Equal(value, sealed.Value) && topic == "t" && bytes.Equal(key, []byte("k")) &&
			(hi < 0 || hi >= len(rec.Headers) || bytes.Equal(hv, sealed.Headers[hi].Value))
		if err == nil && !unchanged {
			t.Fatalf("a modified record opened: %q", pt)
		}
		if err == nil && string(pt) != "secret value" {
			t.Fatalf("opened to %q", pt)
		}
	})
}

func FuzzFileDecoder(f *testing.F) {
	ks := newInMemoryKeyServiceForTests()
	s := newSealer(f, ks, SealerOptions{})
	o := newOpener(f, ks, OpenerOptions{})
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 300) // 4800 B: 3 chunks of 2 KiB
	enc, err := s.NewFileEncoder(ctx, "files", "f.bin", bytes.NewReader(data), FileOptions{ChunkSize: 2048})
	if err != nil {
		f.Fatal(err)
	}
	chunks := drain(f, enc)
	f.Add(uint8(0), 10, byte(1), uint8(0), -1, []byte(nil))
	f.Add(uint8(2), 0, byte(0), uint8(1), 3, []byte("1"))
	f.Add(uint8(1), 5000, byte(0x80), uint8(2), 0, []byte("chunk/1"))
	f.Fuzz(func(t *testing.T, which uint8, pos int, flip byte, order uint8, hi int, hv []byte) {
		recs := make([]Record, len(chunks))
		for i := range chunks {
			recs[i] = cloneRecord(chunks[i])
		}
		c := &recs[int(which)%len(recs)]
		if pos >= 0 && pos < len(c.Value) {
			c.Value[pos] ^= flip
		}
		if hi >= 0 && hi < len(c.Headers) {
			c.Headers[hi].Value = hv
		}
		switch order % 3 {
		case 1:
			recs[0], recs[1] = recs[1], recs[0]
		case 2:
			recs = append(recs[:1], recs[2:]...)
		}
		var out bytes.Buffer
		d := o.NewFileDecoder(&out)
		defer d.Close()
		for _, r := range recs {
			if _, err := d.Write(ctx, r); err != nil {
				break
			}
		}
		if _, err := d.Finish(); err == nil && !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("decoder finished with %d wrong bytes", out.Len())
		}
	})
}

func FuzzLegacy(f *testing.F) {
	f.Add([]byte(`{"ciphertext":"00","tag":"00","nonce":"AAAA"}`), "vault:v1:AAAA", "a.txt")
	f.Add([]byte(`{}`), "", "")
	f.Add([]byte(`[1,2`), "vault:v1:", "../x")
	f.Fuzz(func(t *testing.T, value []byte, edek, name string) {
		hs := []Header{{Key: LegacyKeyHeader, Value: []byte(edek)}, {Key: "X-filename", Value: []byte(name)}}
		_, _ = DetectFormat(hs)
		_, _ = parseLegacy(hs, value)
	})
}
