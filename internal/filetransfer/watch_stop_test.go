package filetransfer

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchStopFinishesFile: Watch's context ends while a file of many
// chunks is being sent. The send finishes, the file is recorded in the
// state file (a restart does not send it again) and every chunk is in
// the topic; Watch returns nil.
func TestWatchStopFinishesFile(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("watchstop")
	src := t.TempDir()
	state := filepath.Join(t.TempDir(), "state.json")
	const size, chunk = 8 << 20, 16 << 10 // 512 chunks
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sent := make(chan Result, 1)
	o := WatchOptions{Dir: src, Topic: topic, Sender: te.sender(t, chunk), StatePath: state, Settle: 100 * time.Millisecond,
		Rescan: time.Second, Logger: te.log, OnSent: func(_ string, r Result) { sent <- r }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, o) }()
	// Stop once the first chunks are in Kafka, in the middle of the file.
	exists := func() bool { _, err := te.kc.Partitions(topic); return err == nil }
	for deadline := time.Now().Add(60 * time.Second); !exists() || te.records(t, topic) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing sent within 60 s")
		}
	}
	atStop := te.records(t, topic)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Watch still running 60 s after its context ended")
	}
	var r Result
	select {
	case r = <-sent:
	default:
		t.Fatal("the file being sent at the stop was not finished")
	}
	total := te.records(t, topic)
	t.Logf("stopped with %d records in the topic; the send finished: %d records, %d chunks, %d bytes", atStop, total, r.Chunks, r.Size)
	if r.Size != size || int64(r.Chunks) > total || atStop >= total {
		t.Fatalf("result %+v, %d records at the stop, %d after", r, atStop, total)
	}
	// A restart does not send it again.
	watchPhase(t, WatchOptions{Dir: src, Topic: topic, Sender: o.Sender, StatePath: state, Settle: 100 * time.Millisecond, Rescan: 200 * time.Millisecond, Logger: te.log}, nil, 0, time.Second)
}
