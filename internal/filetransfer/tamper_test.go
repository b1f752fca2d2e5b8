package filetransfer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
)

// cloneRec deep-copies a record so a case can modify it.
func cloneRec(r envelope.Record) envelope.Record {
	c := envelope.Record{Topic: r.Topic, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, envelope.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	return c
}

func setHeader(r envelope.Record, name string, v []byte) envelope.Record {
	r = cloneRec(r)
	for i := range r.Headers {
		if r.Headers[i].Key == name {
			r.Headers[i].Value = v
			return r
		}
	}
	r.Headers = append(r.Headers, envelope.Header{Key: name, Value: v})
	return r
}

func header(r envelope.Record, name string) []byte {
	v, _ := envelope.HeaderValue(r.Headers, name)
	return v
}

// TestTamperingThroughKafka produces modified chunk streams and checks that
// each modification is detected: the file is never written, nothing is left
// in the partial folder, and every record of the broken file is in the
// quarantine folder byte for byte (key, value, headers).
func TestTamperingThroughKafka(t *testing.T) {
	te := newTestEnv(t)
	const chunk = 1000
	data := randomData(4*chunk + 123) // 5 chunks

	type tcase struct {
		name string
		// build returns the records to produce (to partition 0, in order)
		// and the indexes of those that must be quarantined.
		build func(a, b []envelope.Record) ([]envelope.Record, []int)
		// aWritten: file A must still be written (the bad record was not A's).
		aWritten bool
		reason   string
		// typed is the envelope sentinel the quarantine's error must wrap
		// (nil: nothing may be quarantined).
		typed error
	}
	all := func(recs []envelope.Record) []int {
		idx := make([]int, len(recs))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	cases := []tcase{
		{name: "flipped bit", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			a[2] = cloneRec(a[2])
			a[2].Value[7] ^= 0x10
			return a, all(a)
		}},
		{name: "dropped chunk", reason: ReasonBrokenFile, typed: envelope.ErrOutOfOrder, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			r := slices.Delete(slices.Clone(a), 2, 3)
			return r, all(r)
		}},
		{name: "reordered chunks", reason: ReasonBrokenFile, typed: envelope.ErrOutOfOrder, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			r := []envelope.Record{a[0], a[1], a[3], a[2], a[4]}
			return r, all(r)
		}},
		{name: "duplicated chunk with other content", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			d := cloneRec(a[2])
			d.Value[0] ^= 1
			r := []envelope.Record{a[0], a[1], a[2], d, a[3], a[4]}
			return r, all(r)
		}},
		{name: "final chunk missing", reason: ReasonIncomplete, typed: envelope.ErrTruncated, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			r := a[:4]
			return r, all(r)
		}},
		{name: "final chunk cut short", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			a[4] = cloneRec(a[4])
			a[4].Value = a[4].Value[:len(a[4].Value)-10]
			return a, all(a)
		}},
		{name: "chunk of another file relabelled", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, b []envelope.Record) ([]envelope.Record, []int) {
			x := setHeader(b[2], envelope.HeaderFile, header(a[2], envelope.HeaderFile))
			x = setHeader(x, envelope.HeaderEDEK, header(a[2], envelope.HeaderEDEK))
			x.Key = a[2].Key
			r := []envelope.Record{a[0], a[1], x, a[3], a[4]}
			return r, all(r)
		}},
		{name: "chunk of another file slipped in", aWritten: true, reason: ReasonBrokenFile, typed: envelope.ErrOutOfOrder, build: func(a, b []envelope.Record) ([]envelope.Record, []int) {
			r := []envelope.Record{a[0], a[1], b[2], a[2], a[3], a[4]}
			return r, []int{2}
		}},
		{name: "swapped data key header", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, b []envelope.Record) ([]envelope.Record, []int) {
			a[0] = setHeader(a[0], envelope.HeaderEDEK, header(b[0], envelope.HeaderEDEK))
			return a, all(a)
		}},
		{name: "swapped chunk index header", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			x, y := setHeader(a[1], envelope.HeaderChunk, []byte("2")), setHeader(a[2], envelope.HeaderChunk, []byte("1"))
			r := []envelope.Record{a[0], y, x, a[3], a[4]}
			return r, all(r)
		}},
		{name: "manifest of another file", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, b []envelope.Record) ([]envelope.Record, []int) {
			a[4] = setHeader(a[4], envelope.HeaderManifest, header(b[4], envelope.HeaderManifest))
			return a, all(a)
		}},
		{name: "swapped record key", reason: ReasonTampered, typed: envelope.ErrTampered, build: func(a, b []envelope.Record) ([]envelope.Record, []int) {
			a[1] = cloneRec(a[1])
			a[1].Key = b[1].Key
			return a, all(a)
		}},
		{name: "KEK not allowed", reason: ReasonUndecryptable, typed: envelope.ErrKEKNotAllowed, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			a[0] = setHeader(a[0], envelope.HeaderKEK, []byte("transit/someone-elses-key"))
			return a, all(a)
		}},
		{name: "not a kafkagate record", reason: ReasonNotAFile, typed: envelope.ErrBadHeader, aWritten: true, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			plain := envelope.Record{Topic: a[0].Topic, Value: []byte(`{"hello":"world"}`)}
			r := []envelope.Record{a[0], plain, a[1], a[2], a[3], a[4]}
			return r, []int{1}
		}},
		{name: "exact duplicate chunks are idempotent", aWritten: true, build: func(a, _ []envelope.Record) ([]envelope.Record, []int) {
			r := []envelope.Record{a[0], a[1], a[1], a[2], a[0], a[3], a[2], a[4]}
			return r, nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := newTopic("tamper")
			a := te.encodeChunks(t, topic, "a.bin", data, chunk)
			b := te.encodeChunks(t, topic, "b.bin", data, chunk)
			if len(a) != 5 {
				t.Fatalf("%d chunks", len(a))
			}
			recs, bad := tc.build(slices.Clone(a), slices.Clone(b))
			te.produceRaw(t, recs, 0)
			base := t.TempDir()
			dir := filepath.Join(base, "in")
			qdir := filepath.Join(base, "quarantine")
			out := te.receiveOnce(t, topic, dir, recvOpts{quarantine: &DirQuarantine{Dir: qdir}, timeout: 300 * time.Millisecond})

			files := listFiles(t, dir)
			if tc.aWritten {
				if len(files) != 1 || files[0] != "a.bin" {
					t.Fatalf("want only a.bin written, dir has %v", files)
				}
				if got, _ := os.ReadFile(filepath.Join(dir, "a.bin")); !bytes.Equal(got, data) {
					t.Fatal("a.bin differs")
				}
			} else if len(files) != 0 {
				t.Fatalf("a broken file was written: %v", files)
			}
			if partial, _ := os.ReadDir(filepath.Join(dir, StateDirName, "partial")); len(partial) != 0 {
				t.Fatalf("partial files left: %v", partial)
			}
			wantOffs := make([]int64, len(bad))
			for i, j := range bad {
				wantOffs[i] = int64(j)
			}
			if got := out.quarantinedOffsets(); !slices.Equal(got, wantOffs) {
				t.Fatalf("quarantined offsets %v, want %v (%+v)", got, wantOffs, out.quarantined)
			}
			if len(bad) > 0 {
				q := out.quarantined[0]
				if q.Reason != tc.reason || !errors.Is(q.Err, tc.typed) {
					t.Errorf("reason %q, error %v; want %q wrapping %v", q.Reason, q.Err, tc.reason, tc.typed)
				}
			}
			for _, j := range bad {
				checkEntry(t, qdir, topic, int64(j), recs[j])
			}
		})
	}
}

// checkEntry finds the quarantine entry of offset and compares it with rec.
func checkEntry(t *testing.T, qdir, topic string, offset int64, rec envelope.Record) {
	t.Helper()
	prefix := filepath.Join(qdir, topic+"-0-"+strconv.FormatInt(offset, 10)+"-")
	metas, _ := filepath.Glob(prefix + "*.headers.json")
	if len(metas) != 1 {
		t.Fatalf("offset %d: %d quarantine entries", offset, len(metas))
	}
	base := strings.TrimSuffix(metas[0], ".headers.json")
	v, err := os.ReadFile(base + ".value")
	if err != nil || !bytes.Equal(v, rec.Value) {
		t.Fatalf("offset %d: quarantined value differs (%v)", offset, err)
	}
	k, err := os.ReadFile(base + ".key")
	if err != nil || !bytes.Equal(k, rec.Key) {
		t.Fatalf("offset %d: quarantined key differs (%v)", offset, err)
	}
	var m QuarantineMeta
	b, _ := os.ReadFile(metas[0])
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Topic != topic || m.Offset != offset || m.Reason == "" || len(m.Headers) != len(rec.Headers) {
		t.Fatalf("offset %d: metadata %+v", offset, m)
	}
	for i, h := range rec.Headers {
		if m.Headers[i].Key != h.Key || m.Headers[i].Value != string(h.Value) {
			t.Fatalf("offset %d: header %d is %+v, want %s", offset, i, m.Headers[i], h.Key)
		}
	}
}
