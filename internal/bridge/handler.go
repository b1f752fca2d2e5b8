package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// handler serves the consumer group: claim runs once per claimed
// partition, concurrently.
type handler struct {
	b        *Bridge
	producer *kafka.Producer // shared, at-least-once mode
	admin    *kafka.Admin    // reads commit metadata
}

// setup logs the partitions of a new session. With the cooperative
// protocol a session lasts across rebalances, so each claim logs itself
// too.
func (h *handler) setup(sess *kafka.Session) {
	h.b.log.Info("partitions claimed", "partitions", fmt.Sprint(sess.Partitions()), "generation", sess.Generation())
}

// cleanup commits what the claims marked.
func (h *handler) cleanup(sess *kafka.Session) {
	if !h.b.cfg.ExactlyOnce {
		sess.Commit()
	}
}

// inflight reads, for at-least-once mode, the commit metadata of a
// partition: "inflight=N" at offset c means the previous owner may have
// written records c..N without committing them.
func (h *handler) inflight(partition int32) (from, to int64, ok bool) {
	if h.admin == nil {
		return 0, 0, false
	}
	offs, err := h.admin.CommittedOffsets(h.b.cfg.Group, h.b.cfg.Source, []int32{partition})
	if err != nil {
		h.b.log.Warn("cannot read commit metadata; duplicates after an unclean stop will not be counted", "partition", partition, "error", err)
		return 0, 0, false
	}
	c, found := offs[partition]
	if !found || c.Offset < 0 {
		return 0, 0, false
	}
	s, found := strings.CutPrefix(c.Metadata, metaInflight)
	if !found {
		return 0, 0, false
	}
	last, err := strconv.ParseInt(s, 10, 64)
	if err != nil || last < c.Offset {
		return 0, 0, false
	}
	return c.Offset, last, true
}

// claim processes one partition in batches until the claim ends (a stop,
// or a rebalance that moves the partition), then commits what it marked.
// It returns only then: returning earlier would end the whole session.
func (h *handler) claim(sess *kafka.Session, claim *kafka.Claim) {
	b := h.b
	w := &worker{b: b, h: h, sess: sess, topic: b.cfg.Source, partition: claim.Partition, suspectTo: -1}
	w.log = b.log.With("partition", w.partition)
	if from, to, ok := h.inflight(w.partition); ok && from == claim.InitialOffset {
		w.suspectTo = to
		w.log.Warn("resuming after an unclean stop: records may be written twice",
			"from_offset", from, "to_offset", to, "suspected", to-from+1)
	}
	w.log.Info("partition claim started", "offset", claim.InitialOffset, "generation", sess.Generation())
	defer w.log.Info("partition claim ended")
	if !b.cfg.ExactlyOnce {
		defer sess.Commit()
	}

	// The in-flight batch may finish for DrainTimeout after the session
	// ends (stop or rebalance); nothing new is taken then.
	wctx, release := drainContext(sess.Context(), b.cfg.DrainTimeout)
	defer release()
	defer w.closeTxn()
	for {
		batch, open := w.collect(sess.Context(), claim.Records)
		if len(batch) > 0 {
			if err := w.process(wctx, batch); err != nil {
				// Only a drain deadline gets here: the batch is not
				// committed and will be read again by the next owner.
				w.log.Warn("in-flight batch abandoned at stop; it will be processed again",
					"from_offset", batch[0].Offset, "to_offset", batch[len(batch)-1].Offset, "error", err)
				return
			}
		}
		if !open {
			return
		}
	}
}

// worker is the state of one claim.
type worker struct {
	b         *Bridge
	h         *handler
	sess      *kafka.Session
	topic     string
	partition int32
	suspectTo int64 // records up to this offset may be duplicates
	log       *slog.Logger
	txn       *kafka.Producer // exactly-once mode
}

// collect waits for a first record, then gathers more for BatchWait or
// until BatchSize. open is false when the claim or the session ended.
func (w *worker) collect(ctx context.Context, msgs <-chan kafka.Record) (batch []kafka.Record, open bool) {
	select {
	case m, ok := <-msgs:
		if !ok {
			return nil, false
		}
		batch = append(batch, m)
	case <-ctx.Done():
		return nil, false
	}
	if ctx.Err() != nil {
		return batch, false
	}
	t := time.NewTimer(w.b.cfg.BatchWait)
	defer t.Stop()
	for len(batch) < w.b.cfg.BatchSize {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, false
			}
			batch = append(batch, m)
		case <-t.C:
			return batch, true
		case <-ctx.Done():
			return batch, false
		}
	}
	return batch, true
}

// out is one record to produce for one source record.
type out struct {
	src  kafka.Record
	kind outKind
	msg  kafka.Message
}

type outKind int

const (
	toTarget outKind = iota
	toDLQ
)

// process encrypts a batch, writes it, and commits its offsets. It
// returns an error only when ctx ends first.
func (w *worker) process(ctx context.Context, batch []kafka.Record) error {
	b := w.b
	recs := make([]protect.Record, 0, len(batch))
	idx := make([]int, 0, len(batch)) // batch index of each record to encrypt
	carried := make([][]kafka.Header, len(batch))
	for i, m := range batch {
		b.stats.Consumed.Add(1)
		if m.Offset <= w.suspectTo {
			b.stats.DuplicatesSuspected.Add(1)
		}
		carried[i] = carryHeaders(m.Headers)
		if m.Value == nil {
			continue // a tombstone has nothing to encrypt: it is passed on
		}
		recs = append(recs, protect.Record{Topic: b.cfg.Target, Key: m.Key, Value: m.Value, Headers: carried[i]})
		idx = append(idx, i)
	}
	var sealed []protect.Sealed
	if len(recs) > 0 {
		err := w.retry(ctx, "vault encrypt", func() (err error) {
			sealed, err = b.cfg.Engine.EncryptRecords(ctx, b.cfg.Policy, recs)
			return err
		})
		if err != nil {
			return err
		}
	}
	outs := make([]*out, len(batch))
	for i, m := range batch {
		outs[i] = &out{src: m, kind: toTarget, msg: w.targetMessage(m, carried[i], nil, nil)}
	}
	var dead []int
	reasons := map[int]error{}
	for j, s := range sealed {
		i := idx[j]
		if s.Err != nil {
			dead = append(dead, i)
			reasons[i] = s.Err
			continue
		}
		outs[i].msg = w.targetMessage(batch[i], carried[i], s.Value, s.Headers)
	}
	if err := w.deadLetter(ctx, outs, dead, reasons); err != nil {
		return err
	}
	if b.cfg.ExactlyOnce {
		return w.deliverTxn(ctx, batch, outs)
	}
	return w.deliver(ctx, batch, outs)
}

// targetMessage is the target record: the source key and timestamp, the
// carried headers, then kafkagate's (which envelope mode authenticates,
// with the key), then the source coordinates as an annotation.
func (w *worker) targetMessage(m kafka.Record, carried []kafka.Header, value []byte, hs []protect.Header) kafka.Message {
	headers := make([]kafka.Header, 0, len(carried)+len(hs)+1)
	headers = append(headers, carried...)
	headers = append(headers, hs...)
	headers = append(headers, kafka.Header{Key: HeaderSource, Value: []byte(kafka.SourceRef(m))})
	return kafka.Message{Topic: w.b.cfg.Target, Partition: -1, Key: m.Key, Value: value, Headers: headers, Timestamp: m.Timestamp}
}

// deadLetter turns outs[dead] into dead-letter records: the source value
// sealed whole with the target policy's transit key (bound to the DLQ
// topic), with headers saying why.
func (w *worker) deadLetter(ctx context.Context, outs []*out, dead []int, reasons map[int]error) error {
	if len(dead) == 0 {
		return nil
	}
	b := w.b
	vals := make([][]byte, len(dead))
	for j, i := range dead {
		vals[j] = outs[i].src.Value
		if vals[j] == nil {
			vals[j] = []byte{}
		}
	}
	var sealed []protect.Sealed
	err := w.retry(ctx, "vault seal dead letters", func() error {
		s, err := b.cfg.Engine.SealValues(ctx, b.cfg.Policy.TransitKey, b.cfg.DLQ, vals)
		if err != nil {
			return err
		}
		for _, x := range s {
			if x.Err != nil { // never written in clear: retry until Vault seals it
				return x.Err
			}
		}
		sealed = s
		return nil
	})
	if err != nil {
		return err
	}
	for j, i := range dead {
		m := outs[i].src
		code, field, reason := "record_refused", "", reasons[i].Error()
		var pe *protect.Error
		if errors.As(reasons[i], &pe) {
			code, field = pe.Code, pe.Field
		}
		headers := append(carryHeaders(m.Headers), sealed[j].Headers...)
		headers = append(headers,
			kafka.Header{Key: HeaderDLQCode, Value: []byte(code)},
			kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
			kafka.Header{Key: HeaderDLQSource, Value: []byte(kafka.SourceRef(m))},
		)
		if field != "" {
			headers = append(headers, kafka.Header{Key: HeaderDLQField, Value: []byte(field)})
		}
		msg := kafka.Message{Topic: b.cfg.DLQ, Partition: -1, Key: m.Key, Value: sealed[j].Value, Headers: headers, Timestamp: m.Timestamp}
		outs[i].kind, outs[i].msg = toDLQ, msg
		w.log.Warn("record dead-lettered", "offset", m.Offset, "code", code, "field", field)
	}
	return nil
}

// omitValue is the last resort for a dead letter too large even sealed:
// the record keeps its headers and source coordinates, without a value.
func omitValue(o *out) {
	hs := make([]kafka.Header, 0, len(o.msg.Headers)+1)
	for _, h := range o.msg.Headers {
		if h.Key != protect.HeaderSealed {
			hs = append(hs, h)
		}
	}
	o.msg.Headers = append(hs, kafka.Header{Key: HeaderDLQValue, Value: []byte("omitted")})
	o.msg.Value = nil
}

// tooLarge handles records Kafka refused as too large: a target record is
// dead-lettered (sealed), a dead letter loses its value. It returns the
// error when ctx ends.
func (w *worker) tooLarge(ctx context.Context, outs []*out, bad []int) error {
	var dead []int
	reasons := map[int]error{}
	for _, i := range bad {
		if outs[i].kind == toDLQ {
			omitValue(outs[i])
			w.log.Warn("dead letter too large: value omitted", "offset", outs[i].src.Offset)
			continue
		}
		dead = append(dead, i)
		reasons[i] = &protect.Error{Code: CodeTooLarge, Msg: "the encrypted record exceeds the size limit of the target topic"}
	}
	return w.deadLetter(ctx, outs, dead, reasons)
}

// deliver writes the batch with the shared idempotent producer (at-least-
// once). Before sending it commits "inflight" metadata so that a
// successor can count possible duplicates; it retries only the failed
// records, and marks the offset after the last one is acknowledged.
func (w *worker) deliver(ctx context.Context, batch []kafka.Record, outs []*out) error {
	b := w.b
	first, last := batch[0].Offset, batch[len(batch)-1].Offset
	meta := metaInflight + strconv.FormatInt(last, 10)
	w.sess.MarkOffset(w.partition, first, meta)
	w.sess.ResetOffset(w.partition, first, meta)
	w.sess.Commit()

	pending := make([]int, len(outs))
	for i := range pending {
		pending[i] = i
	}
	bo := b.backoff()
	for len(pending) > 0 {
		msgs := make([]kafka.Message, len(pending))
		for j, i := range pending {
			msgs[j] = outs[i].msg
		}
		errs := w.h.producer.Send(msgs)
		if errs == nil {
			break
		}
		var failed, large []int
		var cause error
		for j, e := range errs {
			if e == nil {
				continue
			}
			i := pending[j]
			if errors.Is(e, kafka.ErrTooLarge) && !(outs[i].kind == toDLQ && outs[i].msg.Value == nil) {
				large = append(large, i)
			} else {
				failed = append(failed, i)
				cause = e
			}
		}
		if err := w.tooLarge(ctx, outs, large); err != nil {
			return err
		}
		pending = append(failed, large...)
		if len(failed) == 0 {
			continue
		}
		b.stats.Retries.Add(1)
		d := bo.Next()
		w.log.Warn("bridge paused: kafka did not acknowledge, retrying the failed records",
			"failed", len(failed), "of", len(outs), "error", cause, "backoff", d)
		if err := kafka.Sleep(ctx, d); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	w.count(outs)
	w.sess.MarkOffset(w.partition, last+1, metaClean)
	return nil
}

func (w *worker) count(outs []*out) {
	for _, o := range outs {
		if o.kind == toDLQ {
			w.b.stats.DeadLettered.Add(1)
		} else {
			w.b.stats.Produced.Add(1)
		}
	}
	w.b.stats.Batches.Add(1)
}

// deliverTxn writes the batch and commits its source offsets in one Kafka
// transaction with this partition's transactional producer; on failure the
// transaction is aborted and the whole batch retried.
func (w *worker) deliverTxn(ctx context.Context, batch []kafka.Record, outs []*out) error {
	b := w.b
	bo := b.backoff()
	lastRec := batch[len(batch)-1]
	for {
		if w.txn == nil {
			err := w.retry(ctx, "transactional producer", func() error {
				p, err := kafka.NewProducer(b.cfg.Kafka, b.producerOptions(TransactionalID(b.cfg.Group, w.topic, w.partition)))
				if err != nil {
					return err
				}
				w.txn = p
				return nil
			})
			if err != nil {
				return err
			}
		}
		msgs := make([]kafka.Message, len(outs))
		for i, o := range outs {
			msgs[i] = o.msg
		}
		err := w.txn.BeginTxn()
		var large []int
		if err == nil {
			for i, e := range w.txn.Send(msgs) {
				if e == nil {
					continue
				}
				if err == nil {
					err = e
				}
				if errors.Is(e, kafka.ErrTooLarge) {
					large = append(large, i)
				}
			}
		}
		if err == nil {
			err = w.txn.AddOffsetToTxn(lastRec, b.cfg.Group)
		}
		if err == nil {
			if err = w.txn.CommitTxn(); err != nil && w.committedPast(lastRec.Offset) {
				err = nil // the commit's answer was lost, not the commit
			}
		}
		if err == nil {
			w.count(outs)
			return nil
		}
		w.abort()
		if len(large) > 0 {
			if err := w.tooLarge(ctx, outs, large); err != nil {
				return err
			}
			continue
		}
		b.stats.Retries.Add(1)
		d := bo.Next()
		w.log.Warn("bridge paused: transaction failed and was aborted, retrying the batch",
			"records", len(outs), "error", kafka.Classify(err), "backoff", d)
		if err := kafka.Sleep(ctx, d); err != nil {
			return fmt.Errorf("transaction: %w", err)
		}
	}
}

// committedPast reports whether the group's committed offset for this
// partition is already beyond offset (a transaction whose commit answer was
// lost did commit).
func (w *worker) committedPast(offset int64) bool {
	if w.h.admin == nil {
		return false
	}
	offs, err := w.h.admin.CommittedOffsets(w.b.cfg.Group, w.topic, []int32{w.partition})
	if err != nil {
		return false
	}
	c, ok := offs[w.partition]
	return ok && c.Err == nil && c.Offset > offset
}

// abort ends a failed transaction; a producer in a fatal state (fenced,
// or unable to abort) is replaced, which bumps its epoch.
func (w *worker) abort() {
	if w.txn == nil {
		return
	}
	if !w.txn.AbortTxn() {
		w.closeTxn()
	}
}

func (w *worker) closeTxn() {
	if w.txn != nil {
		_ = w.txn.Close()
		w.txn = nil
	}
}

// retry runs fn until it succeeds, backing off between attempts; it gives
// up only when ctx ends. Errors are logged by kind, never with values.
func (w *worker) retry(ctx context.Context, op string, fn func() error) error {
	bo := w.b.backoff()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		w.b.stats.Retries.Add(1)
		d := bo.Next()
		w.log.Warn("bridge paused: "+op+" failed, retrying", "error", err, "backoff", d)
		if err := kafka.Sleep(ctx, d); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}
