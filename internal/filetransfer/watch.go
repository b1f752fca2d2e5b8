package filetransfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kafkagate/kafkagate/internal/envelope"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	Dir    string
	Topic  string
	KEK    string // default envelope.DefaultKEK
	Sender *Sender
	// StatePath is the JSON file recording what was sent (name -> size,
	// mtime, SHA-256, file id), default <Dir>/.kafkagate-watch-<topic>.json.
	StatePath string
	// MoveSent, if set, is a folder sent files are moved into.
	MoveSent string
	// Settle: a file is sent once its size and mtime have not changed for
	// this long. Default 2 s.
	Settle time.Duration
	// Rescan is the interval of a full scan backing up the file system
	// notifications, default 30 s.
	Rescan time.Duration
	// FinishTimeout: a file being sent when ctx ends may finish (and be
	// recorded) within this long, so a stop does not cut it; no other
	// file is started. Default 30 s.
	FinishTimeout time.Duration
	Logger        *slog.Logger
	// OnSent, if set, is called after each file is sent.
	OnSent func(path string, res Result)
}

// watchState is the state file's content.
type watchState struct {
	Version int                  `json:"version"`
	Topic   string               `json:"topic"`
	Files   map[string]sentEntry `json:"files"`
}

type sentEntry struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
	FileID  string    `json:"file_id"`
	SentAt  time.Time `json:"sent_at"`
}

func loadWatchState(path string) (*watchState, error) {
	st := &watchState{Version: 1, Files: map[string]sentEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watch state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("watch state %s: %w", path, err)
	}
	if st.Files == nil {
		st.Files = map[string]sentEntry{}
	}
	return st, nil
}

func (st *watchState) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("watch state: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// Watchable reports whether watch-dir considers a file name: not hidden,
// not an editor, download or temporary file, and a valid manifest name.
func Watchable(name string) bool {
	if name == "" || name[0] == '.' || name[0] == '#' || strings.HasPrefix(name, "~$") || !envelope.ValidFileName(name) {
		return false
	}
	lower := strings.ToLower(name)
	for _, suf := range []string{"~", ".tmp", ".temp", ".part", ".partial", ".swp", ".swx", ".crdownload", ".download", ".filepart"} {
		if strings.HasSuffix(lower, suf) {
			return false
		}
	}
	return true
}

// candidate is a file seen new or changed, waiting to settle.
type candidate struct {
	info    fs.FileInfo // the Lstat that saw it: device and inode for os.SameFile
	size    int64
	mtime   time.Time
	since   time.Time // when size and mtime were last seen to change
	nextTry time.Time
	backoff time.Duration
}

type watcher struct {
	o       WatchOptions
	log     *slog.Logger
	state   *watchState
	pending map[string]*candidate
}

// Watch sends each new or changed regular file of Dir (not recursive) once:
// an initial scan, then file system notifications and a periodic rescan.
// A file is sent when its size and mtime have been stable for Settle; a
// file whose size, mtime and SHA-256 match the state file is not sent
// again, across restarts. A failed send is retried with backoff. Watch
// returns when ctx ends.
func Watch(ctx context.Context, o WatchOptions) error {
	if o.Dir == "" || o.Topic == "" || o.Sender == nil {
		return errors.New("filetransfer: watch needs Dir, Topic and Sender")
	}
	if o.StatePath == "" {
		o.StatePath = filepath.Join(o.Dir, ".kafkagate-watch-"+o.Topic+".json")
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Rescan <= 0 {
		o.Rescan = 30 * time.Second
	}
	if o.FinishTimeout <= 0 {
		o.FinishTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	st, err := os.Stat(o.Dir)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("watch: %s is not a directory", o.Dir)
	}
	if o.MoveSent != "" {
		if err := os.MkdirAll(o.MoveSent, 0o755); err != nil {
			return fmt.Errorf("watch: --move-sent: %w", err)
		}
	}
	state, err := loadWatchState(o.StatePath)
	if err != nil {
		return err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(o.Dir); err != nil {
		return fmt.Errorf("watch %s: %w", o.Dir, err)
	}
	w := &watcher{o: o, log: o.Logger, state: state, pending: map[string]*candidate{}}
	w.scan()
	tick := time.NewTicker(min(max(o.Settle/4, 20*time.Millisecond), time.Second))
	defer tick.Stop()
	rescan := time.NewTicker(o.Rescan)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("watch: notifications closed")
			}
			if filepath.Dir(ev.Name) == filepath.Clean(o.Dir) {
				w.observe(filepath.Base(ev.Name))
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("watch: notifications closed")
			}
			w.log.Warn("file notifications failed; rescanning", "dir", o.Dir, "error", err)
			w.scan()
		case <-rescan.C:
			w.scan()
		case <-tick.C:
			w.process(ctx)
		}
	}
}

func (w *watcher) scan() {
	ents, err := os.ReadDir(w.o.Dir)
	if err != nil {
		w.log.Warn("watch: cannot list directory", "dir", w.o.Dir, "error", err)
		return
	}
	for _, e := range ents {
		w.observe(e.Name())
	}
}

// observe notes a file's current size and mtime.
func (w *watcher) observe(name string) {
	if !Watchable(name) {
		return
	}
	fi, err := os.Lstat(filepath.Join(w.o.Dir, name))
	if err != nil || !fi.Mode().IsRegular() {
		delete(w.pending, name)
		return
	}
	if s, ok := w.state.Files[name]; ok && s.Size == fi.Size() && s.ModTime.Equal(fi.ModTime()) {
		delete(w.pending, name)
		return
	}
	c, ok := w.pending[name]
	if !ok {
		w.pending[name] = &candidate{info: fi, size: fi.Size(), mtime: fi.ModTime(), since: time.Now()}
		return
	}
	if c.size != fi.Size() || !c.mtime.Equal(fi.ModTime()) || !os.SameFile(c.info, fi) {
		c.info, c.size, c.mtime, c.since = fi, fi.Size(), fi.ModTime(), time.Now()
	}
}

// process sends the candidates that have settled, in name order.
func (w *watcher) process(ctx context.Context) {
	names := make([]string, 0, len(w.pending))
	for n := range w.pending {
		names = append(names, n)
	}
	slices.Sort(names)
	now := time.Now()
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		c := w.pending[name]
		w.observe(name)
		if w.pending[name] != c || now.Before(c.nextTry) || now.Sub(c.since) < w.o.Settle {
			continue
		}
		sctx, release := finishing(ctx, w.o.FinishTimeout)
		err := w.send(sctx, name, c)
		release()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.backoff = min(max(2*c.backoff, 5*time.Second), time.Minute)
			c.nextTry = time.Now().Add(c.backoff)
			w.log.Error("watch: sending failed; will retry", "file", name, "retry_in", c.backoff, "error", err)
		}
	}
}

// finishing returns a context that ends grace after parent ends, so the
// file being sent can finish after a stop but not forever; release frees
// it.
func finishing(parent context.Context, grace time.Duration) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() { time.AfterFunc(grace, cancel) })
	return ctx, func() { stop(); cancel() }
}

// send sends one settled file and records it.
func (w *watcher) send(ctx context.Context, name string, c *candidate) error {
	path := filepath.Join(w.o.Dir, name)
	// O_NOFOLLOW: a symbolic link swapped in since observe's Lstat is
	// refused, never followed; O_NONBLOCK: a FIFO swapped in does not
	// block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			delete(w.pending, name)
			return nil
		}
		if errors.Is(err, syscall.ELOOP) {
			delete(w.pending, name)
			w.log.Warn("watch: file became a symbolic link; refused, not followed", "file", name)
			return nil
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// The opened file must be the one observe saw: same device and inode,
	// size and mtime.
	if !fi.Mode().IsRegular() || !os.SameFile(c.info, fi) || fi.Size() != c.size || !fi.ModTime().Equal(c.mtime) {
		return nil // changed or replaced under us: observe looks again
	}
	// Same size as what was sent: maybe only touched. Compare content.
	if prev, ok := w.state.Files[name]; ok && prev.Size == fi.Size() {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		if hex.EncodeToString(h.Sum(nil)) == prev.SHA256 {
			prev.ModTime = fi.ModTime()
			w.state.Files[name] = prev
			delete(w.pending, name)
			w.log.Info("watch: file touched but unchanged; not sent again", "file", name)
			return w.state.save(w.o.StatePath)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	res, err := w.o.Sender.Send(ctx, File{Topic: w.o.Topic, Name: name, KEK: w.o.KEK, Body: f, Size: fi.Size()})
	if err != nil {
		return err
	}
	w.state.Files[name] = sentEntry{Size: fi.Size(), ModTime: fi.ModTime(), SHA256: res.SHA256, FileID: res.FileID, SentAt: time.Now().UTC()}
	delete(w.pending, name)
	if err := w.state.save(w.o.StatePath); err != nil {
		return err
	}
	w.log.Info("watch: file sent", "file", name, "file_id", res.FileID, "size", res.Size, "sha256", res.SHA256, "chunks", res.Chunks)
	if res.Size != fi.Size() {
		w.log.Warn("watch: file changed while it was sent; it will be sent again", "file", name)
	}
	if w.o.MoveSent != "" {
		moved, err := placeUnique(path, w.o.MoveSent, name)
		if err != nil {
			w.log.Error("watch: could not move the sent file aside", "file", name, "error", err)
		} else {
			path = moved
		}
	}
	if w.o.OnSent != nil {
		w.o.OnSent(path, res)
	}
	return nil
}
