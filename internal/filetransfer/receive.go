package filetransfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Fetcher reads a partition's records again (to quarantine the records of
// a file that fails after some of its chunks were accepted) and tells
// partition extents (*kafka.Client).
type Fetcher interface {
	Partitions(topic string) ([]int32, error)
	Watermarks(topic string, partition int32) (int64, int64, error)
	Read(ctx context.Context, topic string, partition int32, offset int64, max int) ([]kafka.Record, error)
}

// Receiver defaults.
const (
	DefaultIncompleteTimeout = 10 * time.Minute
	DefaultMaxOpenFiles      = 16
	// StateDirName is the receiver's hidden folder inside the receive
	// directory: partial files (same file system, so the final rename is
	// atomic) and the journal of received file ids.
	StateDirName = ".kafkagate"
)

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Dir   string // where files are written (created if missing)
	Topic string
	Group string // consumer group id
	// Settings is the Kafka configuration; the consumer group uses it with
	// small prefetch buffers.
	Settings *kafka.Settings
	// Kafka re-reads records for quarantine and gives watermarks for Once.
	Kafka  Fetcher
	Opener *envelope.Opener
	// AcceptLegacy lets the original demo's file messages (X-encryptionkey)
	// open: set it from the topic's policy (legacy = accept). Otherwise
	// they are quarantined as not-allowed, never unwrapped.
	AcceptLegacy bool
	// Quarantine keeps undecryptable records, default
	// &DirQuarantine{Dir: DefaultQuarantineDir}.
	Quarantine Quarantine
	// IncompleteTimeout: a file with no new chunk for this long is
	// quarantined as incomplete. Default DefaultIncompleteTimeout.
	IncompleteTimeout time.Duration
	// MaxOpenFiles bounds the files in progress per partition, default
	// DefaultMaxOpenFiles; beyond it the least recently active one is
	// quarantined (reason too-many-files) so memory and open descriptors
	// stay bounded.
	MaxOpenFiles int
	// Once: stop when every partition is caught up with the high watermark
	// it had at start and no file is in progress.
	Once bool
	// RetryBackoff is the first wait when Vault is unavailable (doubling up
	// to 30 s; the partition waits, nothing is quarantined). Default 500 ms.
	RetryBackoff time.Duration
	// Group membership (0: kafka.JoinGroup's defaults): session and
	// rebalance timeouts, and InstanceID for static membership
	// (group.instance.id), so a restarted receiver takes its partitions
	// back at once.
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	InstanceID       string
	Logger           *slog.Logger
	// OnFile and OnQuarantine, if set, are called after each written file
	// and each quarantine (from the partition's goroutine).
	OnFile       func(Received)
	OnQuarantine func(Quarantined)
}

// Received describes a file written by the receiver.
type Received struct {
	Path string `json:"path"`
	// Name is the name the sender gave (unsanitised; quote it before
	// printing).
	Name      string          `json:"name"`
	FileID    string          `json:"file_id"`
	Size      int64           `json:"size"`
	SHA256    string          `json:"sha256"`
	Chunks    int64           `json:"chunks"`
	Format    envelope.Format `json:"format"`
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	// Duplicate: the file had already been written (Path) and was received
	// again after a crash or rebalance; nothing new was written.
	Duplicate bool `json:"duplicate,omitempty"`
	// Renamed: the sender's name was unsafe and replaced.
	Renamed bool `json:"renamed,omitempty"`
}

// Quarantined describes records put in quarantine.
type Quarantined struct {
	Why
	Topic     string
	Partition int32
	Offsets   []int64
	Locations []string
}

// Receiver consumes a topic with a consumer group and writes the files it
// carries into a directory.
type Receiver struct {
	o          ReceiverOptions
	log        *slog.Logger
	partialDir string
	journal    *journal

	startLW, startHW map[int32]int64

	mu     sync.Mutex
	caught map[int32]bool
	cancel context.CancelCauseFunc
}

var errCaughtUp = errors.New("caught up")

// NewReceiver checks o.
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	switch {
	case o.Dir == "" || o.Topic == "" || o.Group == "":
		return nil, errors.New("filetransfer: receiver needs Dir, Topic and Group")
	case o.Settings == nil || o.Kafka == nil || o.Opener == nil:
		return nil, errors.New("filetransfer: receiver needs Settings, Kafka and Opener")
	}
	if o.Quarantine == nil {
		o.Quarantine = &DirQuarantine{Dir: DefaultQuarantineDir}
	}
	if o.IncompleteTimeout <= 0 {
		o.IncompleteTimeout = DefaultIncompleteTimeout
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Receiver{o: o, log: o.Logger, partialDir: filepath.Join(o.Dir, StateDirName, "partial")}, nil
}

// prepare creates the directories, removes partial files left by a crash
// (their records were not committed and will be delivered again) and opens
// the journal.
func (r *Receiver) prepare() error {
	if err := os.MkdirAll(r.o.Dir, 0o755); err != nil {
		return fmt.Errorf("receive directory: %w", err)
	}
	if err := os.MkdirAll(r.partialDir, 0o700); err != nil {
		return fmt.Errorf("receive directory: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(r.partialDir, "partial-*"))
	for _, p := range old {
		_ = os.Remove(p)
	}
	j, err := openJournal(filepath.Join(r.o.Dir, StateDirName, "received.jsonl"))
	if err != nil {
		return err
	}
	r.journal = j
	return nil
}

// Run consumes until ctx ends (or, with Once, until caught up). It returns
// an error only for failures that must stop the receiver (a file or
// quarantine entry that cannot be written); their offsets are not
// committed.
func (r *Receiver) Run(ctx context.Context) error {
	if err := r.prepare(); err != nil {
		return err
	}
	defer r.journal.close()
	if r.o.Once {
		if err := r.watermarks(); err != nil {
			return err
		}
		if len(r.startHW) == 0 {
			return nil
		}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Prefetch is bounded so memory does not grow with the topic.
	g, err := kafka.JoinGroup(r.o.Settings, kafka.GroupOptions{
		Group: r.o.Group, Topic: r.o.Topic, Initial: kafka.OffsetOldest, AutoCommit: true, SmallPrefetch: true,
		SessionTimeout: r.o.SessionTimeout, RebalanceTimeout: r.o.RebalanceTimeout, InstanceID: r.o.InstanceID,
		BackoffMin: time.Second, BackoffMax: 30 * time.Second,
		OnRetry: func(err error, wait time.Duration) {
			r.log.Warn("consumer group session failed; retrying", "group", r.o.Group, "topic", r.o.Topic, "error", err, "retry_in", wait)
		},
		OnError: func(err error) {
			if runCtx.Err() == nil {
				r.log.Warn("consumer group", "group", r.o.Group, "error", err)
			}
		},
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cancel, r.caught = cancel, map[int32]bool{}
	r.mu.Unlock()
	_ = g.Run(runCtx, kafka.GroupHandler{Claim: r.consume, Cleanup: (*kafka.Session).Commit})
	cerr := g.Close()
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errCaughtUp):
		return nil
	case ctx.Err() != nil:
		return nil
	case cause != nil && !errors.Is(cause, context.Canceled):
		return cause
	}
	if cerr != nil {
		return fmt.Errorf("consumer group %s: %w", r.o.Group, cerr)
	}
	return nil
}

func (r *Receiver) watermarks() error {
	ps, err := r.o.Kafka.Partitions(r.o.Topic)
	if errors.Is(err, kafka.ErrUnknownTopic) {
		return nil
	}
	if err != nil {
		return err
	}
	r.startLW, r.startHW = map[int32]int64{}, map[int32]int64{}
	for _, p := range ps {
		lo, hi, err := r.o.Kafka.Watermarks(r.o.Topic, p)
		if err != nil {
			return err
		}
		r.startLW[p], r.startHW[p] = lo, hi
	}
	return nil
}

// stop ends Run with cause.
func (r *Receiver) stop(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(cause)
	}
}

// reportCaughtUp records a partition's state and ends a Once run when
// every partition is caught up.
func (r *Receiver) reportCaughtUp(ps *partition) {
	if !r.o.Once {
		return
	}
	hw, ok := r.startHW[ps.part]
	caught := !ok || (ps.next >= hw && len(ps.files) == 0)
	r.mu.Lock()
	r.caught[ps.part] = caught
	all := len(r.caught) >= len(r.startHW)
	for p := range r.startHW {
		all = all && r.caught[p]
	}
	cancel := r.cancel
	r.mu.Unlock()
	if all && cancel != nil {
		cancel(errCaughtUp)
	}
}

// consume processes one partition's records in order.
func (r *Receiver) consume(sess *kafka.Session, claim *kafka.Claim) {
	ctx := sess.Context()
	ps := &partition{r: r, topic: r.o.Topic, part: claim.Partition, files: map[string]*inFile{}, failed: newTombstones(4096),
		next: claim.InitialOffset, marked: -1, hwm: claim.HighWaterMark}
	if ps.next < 0 {
		ps.next = r.startLW[ps.part]
	}
	defer ps.abandon()
	tickEvery := min(max(r.o.IncompleteTimeout/4, 20*time.Millisecond), time.Second)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	r.reportCaughtUp(ps)
	for {
		var err error
		select {
		case rec, ok := <-claim.Records:
			if !ok {
				return
			}
			err = ps.handle(ctx, rec)
		case <-tick.C:
			err = ps.expire(ctx)
		case <-ctx.Done():
			return
		}
		if err != nil {
			// Nothing is marked past the failure, so the records are
			// delivered again to whoever consumes the partition next.
			if ctx.Err() == nil {
				r.log.Error("receiver stopped: a file or quarantine entry could not be written", "topic", ps.topic, "partition", ps.part, "error", err)
				r.stop(err)
			}
			return
		}
		ps.mark(sess)
		r.reportCaughtUp(ps)
	}
}

// inFile is a file in progress.
type inFile struct {
	id       string
	tmp      *os.File
	dec      *envelope.FileDecoder
	first    int64     // offset of its first chunk
	offsets  []int64   // offsets of its accepted chunks
	lastSeen time.Time // wall clock when its last chunk was handled
	lastTS   time.Time // timestamp of its last chunk record
}

// partition is the state of one claimed partition; only its goroutine
// touches it.
type partition struct {
	r      *Receiver
	topic  string
	part   int32
	files  map[string]*inFile
	failed *tombstones
	next   int64     // offset after the last record handled
	lastTS time.Time // timestamp of the last record handled
	marked int64
	hwm    func() int64 // the partition's high watermark as last fetched
}

// commitOffset is the offset up to which every record is done: the first
// chunk of the oldest file in progress, else the next record.
func (ps *partition) commitOffset() int64 {
	off := ps.next
	for _, f := range ps.files {
		off = min(off, f.first)
	}
	return off
}

func (ps *partition) mark(sess *kafka.Session) {
	if off := ps.commitOffset(); off > ps.marked && off >= 0 {
		sess.MarkOffset(ps.part, off, "")
		ps.marked = off
	}
}

// abandon drops the files in progress when the partition is released:
// their offsets were not committed, so the next owner reassembles them.
func (ps *partition) abandon() {
	for id, f := range ps.files {
		f.dec.Close()
		f.tmp.Close()
		_ = os.Remove(f.tmp.Name())
		delete(ps.files, id)
	}
}

func (ps *partition) handle(ctx context.Context, rec kafka.Record) error {
	ps.next = rec.Offset + 1
	if rec.Timestamp.After(ps.lastTS) {
		ps.lastTS = rec.Timestamp
	}
	format, err := envelope.DetectFormat(rec.Headers)
	if err != nil {
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: reasonFor(err), Err: err})
	}
	switch format {
	case envelope.FormatChunk:
		return ps.chunk(ctx, rec)
	case envelope.FormatRecord:
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: ReasonNotAFile, Err: errors.New("a record/1 message, not a file chunk")})
	}
	if format == envelope.FormatLegacy && !ps.r.o.AcceptLegacy {
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: ReasonNotAllowed, Err: errors.New("a legacy file message, and the topic's policy does not set legacy = accept")})
	}
	return ps.legacy(ctx, rec, format)
}

// transient reports errors that a retry may cure: Vault unavailable.
func transient(err error) bool { return errors.Is(err, vaultclient.ErrUnavailable) }

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// retry runs op until it succeeds, fails for good, or ctx ends, waiting
// while Vault is unavailable.
func (ps *partition) retry(ctx context.Context, what string, op func() error) error {
	backoff := ps.r.o.RetryBackoff
	for {
		err := op()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ps.r.log.Warn("vault unavailable; waiting before retrying", "topic", ps.topic, "partition", ps.part, "what", what, "retry_in", backoff, "error", err)
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (ps *partition) chunk(ctx context.Context, rec kafka.Record) error {
	info, err := envelope.ReadChunkInfo(rec.Headers)
	if err != nil {
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: reasonFor(err), Err: err})
	}
	if why, ok := ps.failed.get(info.FileID); ok {
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: why.Reason, Err: fmt.Errorf("chunk %d of a file quarantined earlier: %w", info.Index, why.Err), FileID: info.FileID})
	}
	f := ps.files[info.FileID]
	if f == nil {
		if len(ps.files) >= ps.r.o.MaxOpenFiles {
			var victim *inFile
			for _, o := range ps.files {
				if victim == nil || o.lastSeen.Before(victim.lastSeen) {
					victim = o
				}
			}
			err := fmt.Errorf("more than %d files in progress on partition %d", ps.r.o.MaxOpenFiles, ps.part)
			if err := ps.failFile(ctx, victim, nil, Why{Reason: ReasonTooManyFiles, Err: err, FileID: victim.id}); err != nil {
				return err
			}
		}
		tmp, err := os.CreateTemp(ps.r.partialDir, "partial-"+info.FileID+"-*")
		if err != nil {
			return fmt.Errorf("partial file: %w", err)
		}
		f = &inFile{id: info.FileID, tmp: tmp, dec: ps.r.o.Opener.NewFileDecoder(tmp), first: rec.Offset}
		ps.files[info.FileID] = f
	}
	var st envelope.ChunkStatus
	err = ps.retry(ctx, "unwrap the data key of file "+info.FileID, func() error {
		var err error
		st, err = f.dec.Write(ctx, rec)
		return err
	})
	if err != nil {
		if isCtxErr(err) {
			return err
		}
		return ps.failFile(ctx, f, &rec, Why{Reason: reasonFor(err), Err: err, FileID: f.id})
	}
	f.lastSeen, f.lastTS = time.Now(), rec.Timestamp
	if st == envelope.ChunkAccepted {
		f.offsets = append(f.offsets, rec.Offset)
	} else {
		ps.r.log.Debug("duplicate chunk ignored", "topic", ps.topic, "partition", ps.part, "offset", rec.Offset, "file_id", f.id, "chunk", info.Index)
	}
	if f.dec.Done() {
		return ps.finish(f)
	}
	return nil
}

// finish moves a verified file into place.
func (ps *partition) finish(f *inFile) error {
	m, err := f.dec.Finish()
	f.dec.Close()
	delete(ps.files, f.id)
	tmp := f.tmp.Name()
	if err == nil {
		err = f.tmp.Sync()
	}
	if cerr := f.tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("partial file of %s: %w", f.id, err)
	}
	name, kept := SafeName(m.Name, f.id)
	return ps.place(tmp, Received{Name: m.Name, FileID: f.id, Size: m.Size, SHA256: m.SHA256, Chunks: m.Chunks,
		Format: envelope.FormatChunk, Topic: ps.topic, Partition: ps.part, Renamed: !kept}, f.id, name)
}

// place moves tmp to dir/name (never overwriting), journals it and reports.
func (ps *partition) place(tmp string, got Received, journalID, name string) error {
	r := ps.r
	if prev, ok := r.journal.seen(journalID); ok {
		_ = os.Remove(tmp)
		got.Path, got.Duplicate = prev, true
		r.log.Info("file received again; already written, nothing new written", "topic", ps.topic, "partition", ps.part, "file_id", got.FileID, "path", prev)
		if r.o.OnFile != nil {
			r.o.OnFile(got)
		}
		return nil
	}
	if got.Renamed {
		r.log.Warn("unsafe file name replaced", "topic", ps.topic, "file_id", got.FileID, "sent_name", strconv.QuoteToASCII(got.Name), "written_as", name)
	}
	final, err := placeUnique(tmp, r.o.Dir, name)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	got.Path = final
	if err := r.journal.add(journalID, final, got.SHA256); err != nil {
		return err
	}
	r.log.Info("file received", "path", final, "file_id", got.FileID, "size", got.Size, "sha256", got.SHA256, "chunks", got.Chunks, "format", string(got.Format))
	if r.o.OnFile != nil {
		r.o.OnFile(got)
	}
	return nil
}

// failFile quarantines every record of a file that cannot complete: its
// accepted chunks (read again from Kafka) and cur, the record that failed.
func (ps *partition) failFile(ctx context.Context, f *inFile, cur *kafka.Record, why Why) error {
	f.dec.Close()
	f.tmp.Close()
	_ = os.Remove(f.tmp.Name())
	delete(ps.files, f.id)
	ps.failed.add(f.id, why)
	var locs []string
	var offs []int64
	err := ps.reread(ctx, f.offsets, func(recs []kafka.Record) error {
		l, err := ps.r.o.Quarantine.Put(ctx, recs, why)
		locs = append(locs, l...)
		for _, rec := range recs {
			offs = append(offs, rec.Offset)
		}
		return err
	})
	if err == nil && cur != nil {
		var l []string
		l, err = ps.r.o.Quarantine.Put(ctx, []kafka.Record{*cur}, why)
		locs = append(locs, l...)
		offs = append(offs, cur.Offset)
	}
	if err != nil {
		return fmt.Errorf("quarantine file %s: %w", f.id, err)
	}
	args := []any{"topic", ps.topic, "partition", ps.part, "file_id", f.id, "reason", why.Reason, "error", why.errText(), "records", len(locs)}
	if len(locs) > 0 {
		args = append(args, "first", locs[0], "last", locs[len(locs)-1])
	}
	ps.r.log.Warn("file not written; its records are quarantined", args...)
	if ps.r.o.OnQuarantine != nil {
		ps.r.o.OnQuarantine(Quarantined{Why: why, Topic: ps.topic, Partition: ps.part, Offsets: offs, Locations: locs})
	}
	return nil
}

// reread reads the records at offsets (ascending) again, in small batches.
func (ps *partition) reread(ctx context.Context, offsets []int64, fn func([]kafka.Record) error) error {
	const batch = 8
	for i := 0; i < len(offsets); {
		want := min(batch, int(offsets[len(offsets)-1]-offsets[i]+1))
		var recs []kafka.Record
		var err error
		for attempt := 0; attempt < 4; attempt++ {
			recs, err = ps.r.o.Kafka.Read(ctx, ps.topic, ps.part, offsets[i], want)
			if err == nil || errors.Is(err, kafka.ErrOffsetOutOfRange) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, time.Duration(attempt+1)*500*time.Millisecond)
		}
		if errors.Is(err, kafka.ErrOffsetOutOfRange) {
			lo, _, werr := ps.r.o.Kafka.Watermarks(ps.topic, ps.part)
			if werr != nil {
				return werr
			}
			j := i
			for j < len(offsets) && offsets[j] < lo {
				j++
			}
			if j == i {
				return err
			}
			ps.r.log.Error("records of a failed file are no longer in Kafka (retention); they cannot be quarantined",
				"topic", ps.topic, "partition", ps.part, "from", offsets[i], "to", offsets[j-1])
			i = j
			continue
		}
		if err != nil {
			return fmt.Errorf("read records again: %w", err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("read records again: nothing at %s/%d offset %d", ps.topic, ps.part, offsets[i])
		}
		var keep []kafka.Record
		for _, rec := range recs {
			for i < len(offsets) && offsets[i] < rec.Offset {
				ps.r.log.Error("record of a failed file not found again", "topic", ps.topic, "partition", ps.part, "offset", offsets[i])
				i++
			}
			if i < len(offsets) && offsets[i] == rec.Offset {
				keep = append(keep, rec)
				i++
			}
		}
		if len(keep) > 0 {
			if err := fn(keep); err != nil {
				return err
			}
		}
	}
	return nil
}

// expire quarantines files without a new chunk for IncompleteTimeout. A
// receiver that lags behind must not blame the sender: a file expires only
// if, besides no chunk having been handled for the timeout, the partition
// is caught up with its high watermark or holds records produced more than
// the timeout after the file's last chunk.
func (ps *partition) expire(ctx context.Context) error {
	now := time.Now()
	caughtUp := ps.hwm == nil || ps.next >= ps.hwm()
	for _, f := range ps.files {
		if now.Sub(f.lastSeen) < ps.r.o.IncompleteTimeout {
			continue
		}
		if !caughtUp && ps.lastTS.Sub(f.lastTS) < ps.r.o.IncompleteTimeout {
			continue
		}
		err := fmt.Errorf("%w: no chunk of file %s for %s; %d chunks accepted, final chunk missing",
			envelope.ErrTruncated, f.id, ps.r.o.IncompleteTimeout, len(f.offsets))
		if err := ps.failFile(ctx, f, nil, Why{Reason: ReasonIncomplete, Err: err, FileID: f.id}); err != nil {
			return err
		}
	}
	return nil
}

// quarantine keeps single records.
func (ps *partition) quarantine(ctx context.Context, recs []kafka.Record, why Why) error {
	locs, err := ps.r.o.Quarantine.Put(ctx, recs, why)
	if err != nil {
		return err
	}
	offs := make([]int64, len(recs))
	for i, rec := range recs {
		offs[i] = rec.Offset
		ps.r.log.Warn("record quarantined", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"reason", why.Reason, "error", why.errText(), "path", locs[i])
	}
	if ps.r.o.OnQuarantine != nil {
		ps.r.o.OnQuarantine(Quarantined{Why: why, Topic: ps.topic, Partition: ps.part, Offsets: offs, Locations: locs})
	}
	return nil
}

// legacy handles a record without a kafkagate format: the original demo's
// one-message format, written as received-<name> as the demo's consumer did.
func (ps *partition) legacy(ctx context.Context, rec kafka.Record, format envelope.Format) error {
	var lf envelope.LegacyFile
	err := ps.retry(ctx, "unwrap a legacy data key", func() error {
		var err error
		lf, err = ps.r.o.Opener.OpenLegacy(ctx, rec)
		return err
	})
	if err != nil {
		if isCtxErr(err) {
			return err
		}
		reason := reasonFor(err)
		if format == envelope.FormatNone {
			reason = ReasonNotAFile
			err = fmt.Errorf("no kafkagate.format and no legacy headers: %w", err)
		}
		return ps.quarantine(ctx, []kafka.Record{rec}, Why{Reason: reason, Err: err})
	}
	defer clear(lf.Data)
	id := fmt.Sprintf("legacy:%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	sum := sha256.Sum256(lf.Data)
	tmp, err := os.CreateTemp(ps.r.partialDir, "partial-legacy-*")
	if err != nil {
		return fmt.Errorf("partial file: %w", err)
	}
	_, err = tmp.Write(lf.Data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("partial file: %w", err)
	}
	name, kept := SafeName(lf.Name, fmt.Sprintf("legacy-%d-%d", rec.Partition, rec.Offset))
	return ps.place(tmp.Name(), Received{Name: lf.Name, Size: int64(len(lf.Data)), SHA256: hex.EncodeToString(sum[:]), Chunks: 1,
		Format: envelope.FormatLegacy, Topic: ps.topic, Partition: ps.part, Renamed: !kept}, id, LegacyPrefix+name)
}

// LegacyPrefix starts the name of every file received in the legacy
// format, as consumer_file_transfer.py wrote them.
const LegacyPrefix = "received-"

// tombstones remembers recently failed file ids (bounded).
type tombstones struct {
	max   int
	why   map[string]Why
	order []string
}

func newTombstones(n int) *tombstones { return &tombstones{max: n, why: map[string]Why{}} }

func (t *tombstones) add(id string, w Why) {
	if _, ok := t.why[id]; !ok {
		t.order = append(t.order, id)
	}
	t.why[id] = w
	for len(t.order) > t.max {
		delete(t.why, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *tombstones) get(id string) (Why, bool) { w, ok := t.why[id]; return w, ok }

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool { return kafka.Sleep(ctx, d) == nil }
