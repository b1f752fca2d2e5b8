package filetransfer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// journalKeep bounds the ids a journal remembers: enough to cover every
// file that a crash or rebalance can deliver again (those after the last
// committed offset).
const journalKeep = 1 << 16

// journal remembers the files already written to a receive directory, so a
// file delivered again after a crash or rebalance is not written twice. It
// is an append-only JSON-lines file, compacted when it grows past twice
// journalKeep lines.
type journal struct {
	path string

	mu    sync.Mutex
	f     *os.File
	ids   map[string]string // id -> path written
	order []string
	lines int
}

type journalEntry struct {
	ID     string    `json:"id"`
	Path   string    `json:"path"`
	SHA256 string    `json:"sha256,omitempty"`
	At     time.Time `json:"at"`
}

func openJournal(path string) (*journal, error) {
	j := &journal{path: path, ids: map[string]string{}}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("receive journal: %w", err)
	default:
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e journalEntry
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" {
				continue // a torn last line after a crash
			}
			j.remember(e.ID, e.Path)
			j.lines++
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("receive journal: %w", err)
		}
	}
	if j.lines > 2*journalKeep {
		if err := j.compact(); err != nil {
			return nil, err
		}
	}
	if j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("receive journal: %w", err)
	}
	return j, nil
}

func (j *journal) remember(id, path string) {
	if _, ok := j.ids[id]; !ok {
		j.order = append(j.order, id)
	}
	j.ids[id] = path
	for len(j.order) > journalKeep {
		delete(j.ids, j.order[0])
		j.order = j.order[1:]
	}
}

// compact rewrites the file with the remembered entries only.
func (j *journal) compact() error {
	var b []byte
	for _, id := range j.order {
		line, _ := json.Marshal(journalEntry{ID: id, Path: j.ids[id], At: time.Now().UTC()})
		b = append(append(b, line...), '\n')
	}
	if err := writeFileAtomic(j.path, b, 0o600); err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	j.lines = len(j.order)
	return nil
}

// seen returns the path a file id was written to, if it was.
func (j *journal) seen(id string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p, ok := j.ids[id]
	return p, ok
}

// add records a written file durably.
func (j *journal) add(id, path, sha string) error {
	line, err := json.Marshal(journalEntry{ID: id, Path: path, SHA256: sha, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	j.remember(id, path)
	j.lines++
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
