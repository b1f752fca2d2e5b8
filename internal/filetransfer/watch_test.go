package filetransfer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// watchPhase runs Watch until want files were sent and then quiet passes
// without another send (or 30 s), running act once the watcher started.
func watchPhase(t *testing.T, o WatchOptions, act func(), want int, quiet time.Duration) []Result {
	t.Helper()
	var (
		mu   sync.Mutex
		sent []Result
		last = time.Now()
	)
	o.OnSent = func(_ string, r Result) {
		mu.Lock()
		sent = append(sent, r)
		last = time.Now()
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, o) }()
	if act != nil {
		time.Sleep(100 * time.Millisecond)
		act()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, l := len(sent), last
		mu.Unlock()
		if n >= want && time.Since(l) > quiet {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != want {
		t.Fatalf("sent %d files, want %d: %+v", len(sent), want, sent)
	}
	return sent
}

// TestWatchDir: watch-dir sends a new file once (not again after a
// restart, thanks to the state file; not again when only touched), sends a
// changed file again, waits until a growing file is stable, ignores hidden
// and temporary files, and can move sent files aside.
func TestWatchDir(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("watch")
	src := t.TempDir()
	state := filepath.Join(t.TempDir(), "state.json")
	o := WatchOptions{Dir: src, Topic: topic, Sender: te.sender(t, 0), StatePath: state, Settle: 300 * time.Millisecond, Rescan: 200 * time.Millisecond, Logger: te.log}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "hello")
	for _, n := range []string{".hidden", "b.txt.part", "c~", "d.tmp", "#e#"} {
		write(n, "ignored")
	}

	sent := watchPhase(t, o, nil, 1, time.Second)
	if sent[0].Name != "a.txt" || sent[0].Size != 5 {
		t.Fatalf("sent %+v", sent)
	}
	// Restart: nothing new.
	watchPhase(t, o, nil, 0, time.Second)
	// Touched, same content: not sent again.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), future, future); err != nil {
		t.Fatal(err)
	}
	watchPhase(t, o, nil, 0, time.Second)
	// Changed: sent again. A file growing in steps is sent once, whole.
	sent = watchPhase(t, o, func() {
		write("a.txt", "hello, changed")
		f, err := os.Create(filepath.Join(src, "grow.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := 0; i < 5; i++ {
			f.Write(make([]byte, 1000))
			time.Sleep(100 * time.Millisecond)
		}
	}, 2, time.Second)
	bySize := map[string]int64{}
	for _, r := range sent {
		bySize[r.Name] = r.Size
	}
	if bySize["a.txt"] != 14 || bySize["grow.bin"] != 5000 {
		t.Fatalf("sent %+v", sent)
	}
	if n := te.records(t, topic); n != 3 {
		t.Fatalf("topic holds %d records, want 3", n)
	}
	// --move-sent
	moved := t.TempDir()
	o.MoveSent = moved
	watchPhase(t, o, func() { write("m.txt", "move me") }, 1, time.Second)
	if _, err := os.Stat(filepath.Join(moved, "m.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "m.txt")); !os.IsNotExist(err) {
		t.Fatal("sent file not moved")
	}
}
