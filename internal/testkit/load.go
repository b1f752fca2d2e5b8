package testkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Attempt is one produce request of a Load.
type Attempt struct {
	ID     string    // the record's id (its Kafka key)
	Status int       // HTTP status; 0 for a connection error
	Err    string    // the connection error, or the start of a refusal's body
	At     time.Time // when the answer (or error) came
}

// Load keeps a steady REST produce load on a gateway: Workers goroutines,
// each producing one record after another with a unique id as its key and
// a JSON value {"Name": "<marker>-<id>"}. A record that is refused (503) or
// whose request fails (connection error, any other status) is sent again
// after RetryPause, with the same id, until it gets 200: a client that
// retries. Every attempt is recorded.
type Load struct {
	// Marker starts every record's Name: bytes that must never be stored
	// in the topic when Name is encrypted.
	Marker string

	url      string
	client   *http.Client
	mu       sync.Mutex
	attempts []Attempt
	okIDs    map[string]int // ids that got 200 -> index of that attempt
	stopping chan struct{}
	abort    context.Context // ends requests and retries at once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// RetryPause is how long a Load worker waits before sending a refused
// record again.
const RetryPause = 50 * time.Millisecond

// loadGiveUp is how long a worker keeps retrying one record after Stop.
const loadGiveUp = 2 * time.Minute

// StartLoad starts workers producing to url (a records endpoint,
// .../topics/<topic>/records); Stop ends them. When t ends they are
// stopped at once, without finishing their records.
func StartLoad(t testing.TB, url string, workers int) *Load {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	l := &Load{
		Marker: "PLAINTEXT-MARKER-" + hex.EncodeToString(b),
		url:    url,
		// Keep-alive connections, as a real client through a load
		// balancer; generous timeout for a loaded machine.
		client:   &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}},
		okIDs:    map[string]int{},
		stopping: make(chan struct{}),
	}
	l.abort, l.cancel = context.WithCancel(context.Background())
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go l.work(w)
	}
	t.Cleanup(func() {
		l.cancel()
		l.Stop()
	})
	return l
}

func (l *Load) work(w int) {
	defer l.wg.Done()
	for n := 0; ; n++ {
		select {
		case <-l.stopping:
			return
		default:
		}
		id := fmt.Sprintf("w%d-%06d", w, n)
		body := fmt.Sprintf(`{"key":{"type":"STRING","data":%q},"value":{"type":"JSON","data":{"Name":"%s-%s","n":%d}}}`, id, l.Marker, id, n)
		var giveUp <-chan time.Time
		for {
			a := l.send(id, body)
			if a.Status == http.StatusOK {
				break
			}
			if giveUp == nil {
				select {
				case <-l.stopping:
					giveUp = time.After(loadGiveUp)
				default:
				}
			}
			select {
			case <-giveUp:
				return
			case <-l.abort.Done():
				return
			case <-time.After(RetryPause):
			}
		}
	}
}

func (l *Load) send(id, body string) Attempt {
	a := Attempt{ID: id}
	req, err := http.NewRequestWithContext(l.abort, http.MethodPost, l.url, strings.NewReader(body))
	if err != nil {
		a.Err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if l.abort.Err() != nil {
		return a // not an answer: the test is over
	}
	if err != nil {
		a.Err = err.Error()
	} else {
		a.Status = resp.StatusCode
		if a.Status != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			a.Err = string(b)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	a.At = time.Now()
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	if a.Status == http.StatusOK {
		l.okIDs[id] = len(l.attempts) - 1
	}
	l.mu.Unlock()
	return a
}

// Stop ends the load: each worker retries its current record until it
// gets 200 (for at most two minutes), then returns. Stop waits for them.
func (l *Load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stopping:
	default:
		close(l.stopping)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Mark is the number of attempts so far: a phase boundary for Summary.
func (l *Load) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.attempts)
}

// OKSince counts the attempts from mark on that got 200.
func (l *Load) OKSince(mark int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.attempts[mark:] {
		if a.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// WaitOK waits until n attempts from mark on have got 200, failing t
// after limit.
func (l *Load) WaitOK(t testing.TB, mark, n int, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); l.OKSince(mark) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("load: %d of %d requests got 200 within %s; %s", l.OKSince(mark), n, limit, l.Summary(mark, -1))
		}
	}
}

// LoadSummary counts the attempts of a phase.
type LoadSummary struct {
	Requests, OK, Refused503, ConnErrors, Other int
	// OtherStatuses lists the statuses other than 200 and 503, and the
	// text of the first few connection errors and 503s.
	OtherStatuses []string
	// ErrorWindow is from the first attempt without 200 to the first 200
	// after the last one without 200 (0 when every attempt got 200).
	ErrorWindow time.Duration
}

func (s LoadSummary) String() string {
	return fmt.Sprintf("requests %d, 200s %d, 503s %d, conn errors %d, other %d %v, error window %d ms",
		s.Requests, s.OK, s.Refused503, s.ConnErrors, s.Other, s.OtherStatuses, s.ErrorWindow.Milliseconds())
}

// Summary counts the attempts from index from to index to (-1: the end).
func (l *Load) Summary(from, to int) LoadSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if to < 0 || to > len(l.attempts) {
		to = len(l.attempts)
	}
	var s LoadSummary
	var firstBad, lastBad, okAfter time.Time
	for _, a := range l.attempts[from:to] {
		s.Requests++
		switch a.Status {
		case http.StatusOK:
			s.OK++
			if !lastBad.IsZero() && (okAfter.IsZero() || okAfter.Before(lastBad)) {
				okAfter = a.At
			}
			continue
		case http.StatusServiceUnavailable:
			s.Refused503++
			if s.Refused503 <= 2 {
				s.OtherStatuses = append(s.OtherStatuses, "503: "+a.Err)
			}
		case 0:
			s.ConnErrors++
			if s.ConnErrors <= 3 {
				s.OtherStatuses = append(s.OtherStatuses, "conn: "+a.Err)
			}
		default:
			s.Other++
			s.OtherStatuses = append(s.OtherStatuses, fmt.Sprintf("%d: %s", a.Status, a.Err))
		}
		if firstBad.IsZero() || a.At.Before(firstBad) {
			firstBad = a.At
		}
		if a.At.After(lastBad) {
			lastBad = a.At
		}
	}
	if !firstBad.IsZero() {
		end := okAfter
		if end.Before(lastBad) {
			end = lastBad
		}
		s.ErrorWindow = end.Sub(firstBad)
	}
	return s
}

// Unfinished lists the ids begun that never got 200 (after Stop: the
// records a worker gave up on).
func (l *Load) Unfinished() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, a := range l.attempts {
		if _, ok := l.okIDs[a.ID]; !ok && !seen[a.ID] {
			seen[a.ID] = true
			out = append(out, a.ID)
		}
	}
	sort.Strings(out)
	return out
}

// StoredRecord is a record as read from Kafka: key, value and header
// bytes.
type StoredRecord struct {
	Key, Value []byte
	Headers    [][2][]byte
}

// LoadCheck compares a Load with what its topic holds.
type LoadCheck struct {
	OK         int      // ids that got 200
	Lost       []string // ids that got 200 but are not in the topic
	Duplicates int      // extra copies of ids (a retry of a record whose first answer was lost)
	Plaintext  int      // records whose key, value or a header holds the marker
	Records    int      // records in the topic
}

func (c LoadCheck) String() string {
	return fmt.Sprintf("%d ids got 200; %d records in Kafka; lost %d; duplicates %d; plaintext found %d", c.OK, c.Records, len(c.Lost), c.Duplicates, c.Plaintext)
}

// Check matches the load's 200s with stored, the topic's records (read
// after Stop).
func (l *Load) Check(stored []StoredRecord) LoadCheck {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := LoadCheck{OK: len(l.okIDs), Records: len(stored)}
	marker := []byte(l.Marker)
	count := map[string]int{}
	for _, r := range stored {
		count[string(r.Key)]++
		bad := bytes.Contains(r.Key, marker) || bytes.Contains(r.Value, marker)
		for _, h := range r.Headers {
			bad = bad || bytes.Contains(h[0], marker) || bytes.Contains(h[1], marker)
		}
		if bad {
			c.Plaintext++
		}
	}
	for id := range l.okIDs {
		if count[id] == 0 {
			c.Lost = append(c.Lost, id)
		}
	}
	sort.Strings(c.Lost)
	for _, n := range count {
		if n > 1 {
			c.Duplicates += n - 1
		}
	}
	return c
}

// ReadStored reads every record of topic from brokers (ReadAll) as
// StoredRecords, for Load.Check.
func ReadStored(t testing.TB, brokers []string, topic string) []StoredRecord {
	t.Helper()
	msgs := ReadAll(t, brokers, topic)
	out := make([]StoredRecord, len(msgs))
	for i, m := range msgs {
		out[i] = StoredRecord{Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			out[i].Headers = append(out[i].Headers, [2][]byte{h.Key, h.Value})
		}
	}
	return out
}
