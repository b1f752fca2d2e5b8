package envelope

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/transit"
)

// rewrapEDEK rewraps a record's kafkagate.edek with Vault's transit/rewrap
// (context = the topic it was sealed for), as gateway rewrap does.
func rewrapEDEK(t *testing.T, tc *transit.Client, kek, sealedFor string, r *Record) {
	t.Helper()
	res, err := tc.Rewrap(context.Background(), kek, []transit.Ciphertext{{Ciphertext: hdr(*r, HeaderEDEK), Context: []byte(sealedFor)}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("rewrap: %v %v", err, res[0].Err)
	}
	setHeader(r, HeaderEDEK, []byte(res[0].Ciphertext))
}

// TestRewrapEDEKVault: the wrapped DEK is outside the associated data, so
// it can be rewrapped to the KEK's latest version without touching the
// value; once min_decryption_version is raised only the rewrapped copy
// opens. A record moved to another topic opens there only through an
// allowed kafkagate.origin.
func TestRewrapEDEKVault(t *testing.T) {
	ctx := context.Background()
	const kek = "kafkagate-envelope-rewrap"
	ks, tc := vaultTransit(t, kek)
	s := newSealer(t, ks, SealerOptions{KEK: kek})
	orig, err := s.Seal(ctx, Record{Topic: "ledger", Key: []byte("k"), Value: []byte("balance 42"),
		Headers: []Header{{Key: "kafkagate.fields", Value: []byte(`{"v":1,"f":[]}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Rotate(ctx, kek); err != nil {
		t.Fatal(err)
	}
	same := cloneRecord(orig)
	rewrapEDEK(t, tc, kek, "ledger", &same)
	moved := cloneRecord(orig)
	rewrapEDEK(t, tc, kek, "ledger", &moved)
	moved.Topic = "ledger.v2"
	setHeader(&moved, HeaderOrigin, []byte("ledger"))
	if !strings.HasPrefix(hdr(same, HeaderEDEK), "vault:v2:") || !bytes.Equal(same.Value, orig.Value) {
		t.Fatalf("rewrap must change only the wrapped DEK: %s", hdr(same, HeaderEDEK)[:9])
	}

	strict := newOpener(t, ks, OpenerOptions{KEKs: []string{kek}})
	moving := newOpener(t, ks, OpenerOptions{KEKs: []string{kek}, Origins: map[string][]string{"ledger.v2": {"ledger"}}})
	for _, r := range []Record{orig, same} {
		if pt, err := strict.Open(ctx, r); err != nil || string(pt) != "balance 42" {
			t.Fatalf("open: %q %v", pt, err)
		}
	}
	_, err = strict.Open(ctx, moved)
	mustIs(t, err, ErrOriginNotAllowed)
	if pt, err := moving.Open(ctx, moved); err != nil || string(pt) != "balance 42" {
		t.Fatalf("moved record with an allowed origin: %q %v", pt, err)
	}
	// Without the origin header the moved record is bound to the wrong
	// topic (DEK context), and with an origin it was not sealed for, GCM
	// fails.
	bare := cloneRecord(moved)
	bare.Headers = slicesDelete(bare.Headers, HeaderOrigin)
	_, err = moving.Open(ctx, bare)
	mustIs(t, err, ErrKeyUnwrap)
	lying := newOpener(t, ks, OpenerOptions{KEKs: []string{kek}, Origins: map[string][]string{"ledger.v2": {"ledger", "other"}}})
	forged := cloneRecord(moved)
	setHeader(&forged, HeaderOrigin, []byte("other"))
	_, err = lying.Open(ctx, forged)
	mustIs(t, err, ErrKeyUnwrap)
	// A swapped wrapped DEK of the same topic unwraps to another key: GCM
	// refuses it.
	other, err := s.Seal(ctx, Record{Topic: "ledger", Key: []byte("k"), Value: []byte("balance 43")})
	if err != nil {
		t.Fatal(err)
	}
	swapped := cloneRecord(same)
	setHeader(&swapped, HeaderEDEK, []byte(hdr(other, HeaderEDEK)))
	_, err = strict.Open(ctx, swapped)
	mustIs(t, err, ErrTampered)

	// Retire v1: only the rewrapped copies open (fresh opener, no cache).
	if err := tc.Configure(ctx, kek, map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	fresh := newOpener(t, ks, OpenerOptions{KEKs: []string{kek}, Origins: map[string][]string{"ledger.v2": {"ledger"}}})
	res, err := fresh.OpenBatch(ctx, []Record{orig, same, moved})
	if err != nil {
		t.Fatal(err)
	}
	mustIs(t, res[0].Err, ErrKeyUnwrap, transit.ErrVersionRetired)
	if res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("rewrapped records: %v / %v", res[1].Err, res[2].Err)
	}
}

// TestRewrapChunksVault: a file whose chunks all carry the same rewrapped
// DEK (and an allowed origin) decodes; a later chunk naming another
// wrapped DEK is refused even though the key headers are outside the
// associated data.
func TestRewrapChunksVault(t *testing.T) {
	ctx := context.Background()
	ks, tc := vaultTransit(t)
	s := newSealer(t, ks, SealerOptions{})
	data := bytes.Repeat([]byte("chunky "), 100)
	enc, err := s.NewFileEncoder(ctx, "files", "a.txt", bytes.NewReader(data), FileOptions{ChunkSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	recs := drain(t, enc)
	if len(recs) < 3 {
		t.Fatalf("want several chunks, got %d", len(recs))
	}
	res, err := tc.Rewrap(ctx, DefaultKEK, []transit.Ciphertext{{Ciphertext: hdr(recs[0], HeaderEDEK), Context: []byte("files")}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	moved := make([]Record, len(recs))
	for i, r := range recs {
		moved[i] = cloneRecord(r)
		moved[i].Topic = "files.v2"
		setHeader(&moved[i], HeaderEDEK, []byte(res[0].Ciphertext))
		setHeader(&moved[i], HeaderOrigin, []byte("files"))
	}
	op := newOpener(t, ks, OpenerOptions{Origins: map[string][]string{"files.v2": {"files"}}})
	var out bytes.Buffer
	d := op.NewFileDecoder(&out)
	for i, r := range moved {
		if _, err := d.Write(ctx, r); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if _, err := d.Finish(); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("finish: %v", err)
	}
	// A later chunk with another (valid) wrapped DEK is refused.
	bad := make([]Record, len(recs))
	for i := range recs {
		bad[i] = cloneRecord(recs[i])
	}
	setHeader(&bad[1], HeaderEDEK, []byte(res[0].Ciphertext))
	d = op.NewFileDecoder(&bytes.Buffer{})
	var werr error
	for _, r := range bad {
		if _, werr = d.Write(ctx, r); werr != nil {
			break
		}
	}
	mustIs(t, werr, ErrTampered)
}

func slicesDelete(hs []Header, name string) []Header {
	out := hs[:0:0]
	for _, h := range hs {
		if h.Key != name {
			out = append(out, h)
		}
	}
	return out
}
