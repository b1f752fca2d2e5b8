package filetransfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchDirRefusesSymlinks: watch-dir never sends what a symbolic link
// points to, against real Vault and kfake. A link in the directory from the
// start is skipped; a regular file replaced by a link between the scan
// (Lstat) and the open is refused by O_NOFOLLOW; a regular file replaced by
// another with the same size and mtime is refused by the device and inode
// comparison. Only the one genuine file reaches the topic.
func TestWatchDirRefusesSymlinks(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("watchlink")
	src := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("outside the watched directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(src, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "ok.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := WatchOptions{Dir: src, Topic: topic, Sender: te.sender(t, 0), StatePath: filepath.Join(t.TempDir(), "state.json"),
		Settle: 200 * time.Millisecond, Rescan: 200 * time.Millisecond, Logger: te.log}
	sent := watchPhase(t, o, nil, 1, time.Second)
	if len(sent) != 1 || sent[0].Name != "ok.txt" {
		t.Fatalf("sent %+v, want ok.txt only (link.txt is a symbolic link)", sent)
	}

	// The race, step by step: observe (Lstat) a regular file, swap, send.
	w := &watcher{o: o, log: te.log, state: &watchState{Version: 1, Files: map[string]sentEntry{}}, pending: map[string]*candidate{}}
	ctx := context.Background()
	swap := func(name string, replace func(path string)) {
		t.Helper()
		path := filepath.Join(src, name)
		if err := os.WriteFile(path, []byte("genuine"), 0o644); err != nil {
			t.Fatal(err)
		}
		w.observe(name)
		c := w.pending[name]
		if c == nil {
			t.Fatalf("%s: not observed", name)
		}
		replace(path)
		if err := w.send(ctx, name, c); err != nil {
			t.Fatalf("%s: send after the swap: %v", name, err)
		}
		if _, ok := w.state.Files[name]; ok {
			t.Fatalf("%s: sent after it was replaced", name)
		}
	}
	swap("race-link.txt", func(path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(secret, path); err != nil {
			t.Fatal(err)
		}
	})
	swap("race-inode.txt", func(path string) {
		// Same size and mtime, another inode.
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(src, ".other")
		if err := os.WriteFile(other, []byte("forged!"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(other, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
	})
	if n := te.records(t, topic); n != 1 {
		t.Fatalf("topic holds %d records, want 1 (ok.txt only)", n)
	}
}
