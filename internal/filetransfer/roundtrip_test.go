package filetransfer

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kafkagate/kafkagate/internal/envelope"
)

// TestRoundTripSizes sends files of 0 B, 1 B, chunk-1, chunk, chunk+1 and
// 50 MiB (generated on the fly) through Kafka and receives them: every
// file arrives under its name with the sender's size and SHA-256, and the
// chunk counts follow the chunk size.
func TestRoundTripSizes(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("sizes")
	s := te.sender(t, 0)
	cs := int64(envelope.DefaultChunkSize)
	sizes := []int64{0, 1, cs - 1, cs, cs + 1, 50 << 20}
	want := map[string]Result{}
	for i, n := range sizes {
		name := fmt.Sprintf("file-%d.bin", n)
		g := newGen(uint64(i), n)
		res, err := s.Send(context.Background(), File{Topic: topic, Name: name, Body: g})
		if err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		wantChunks := max(1, (n+cs-1)/cs)
		if res.Size != n || res.SHA256 != g.hex() || res.Chunks != wantChunks || len(res.FileID) != 32 {
			t.Fatalf("send %d bytes: %+v (want %d chunks, sha %s)", n, res, wantChunks, g.hex())
		}
		want[name] = res
	}
	dir := filepath.Join(t.TempDir(), "in")
	out := te.receiveOnce(t, topic, dir, recvOpts{})
	if len(out.quarantined) != 0 {
		t.Fatalf("quarantined: %+v", out.quarantined)
	}
	if len(out.files) != len(sizes) {
		t.Fatalf("received %d files, want %d: %+v", len(out.files), len(sizes), out.files)
	}
	for _, got := range out.files {
		w := want[got.Name]
		sum, n := fileSHA(t, got.Path)
		if got.Path != filepath.Join(dir, got.Name) || sum != w.SHA256 || n != w.Size || got.FileID != w.FileID || got.Chunks != w.Chunks {
			t.Errorf("%s: got %+v (disk sha %s, %d bytes), sent %+v", got.Name, got, sum, n, w)
		}
	}
	if names := listFiles(t, dir); len(names) != len(sizes) {
		t.Fatalf("dir holds %v", names)
	}
}
