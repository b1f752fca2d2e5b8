package transit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Coalescing configures the batcher that merges the items of concurrent
// calls (HTTP requests, bridge fetches, DEK unwraps) into shared
// batch_input calls. Zero values take the defaults; it is on unless
// Disable is set.
type Coalescing struct {
	// Disable sends every call's batches as they are, as before.
	Disable bool
	// MaxItems bounds the items of one merged call; default the client's
	// MaxBatch. A caller's batch is never split: one that reaches the
	// bound alone is sent as it is.
	MaxItems int
	// MaxBytes bounds the (approximate) request size of one merged call;
	// default 1 MiB, well below Vault's 32 MB request and 1 MiB JSON
	// string limits.
	MaxBytes int
	// Wait is how long a partial batch waits for more items while other
	// calls are in flight; default 1 ms. With nothing in flight a batch
	// is sent at once, so an idle client adds no latency.
	Wait time.Duration
	// MaxInFlight bounds the merged calls in flight for the whole client;
	// default the client's MaxInFlight. Batches that are due while every
	// slot is busy keep growing until a slot frees.
	MaxInFlight int
}

// Observer receives telemetry of the Vault calls a Client makes. Methods
// are called concurrently and must not block. The metrics package
// implements it; transit imports nothing of Prometheus.
type Observer interface {
	// VaultCall reports one batch_input call: the operation (encrypt,
	// decrypt, rewrap, hmac), the items it carried, how many callers'
	// batches were merged into it, how long it took and its whole-call
	// error (nil when Vault answered, even if some items failed).
	VaultCall(op string, items, callers int, d time.Duration, err error)
}

// groupKey identifies the calls that may share one batch_input call:
// same operation and key, and context in all items or in none (Vault
// refuses a batch that mixes them).
type groupKey struct {
	op, key string
	derived bool
}

// request is one caller's batch waiting for its results.
type request struct {
	ctx   context.Context
	in    []entry
	bytes int
	done  chan reply // buffered: the sender never blocks on a caller that left
}

type reply struct {
	res []result
	err error
}

// batch is the requests merged into one call.
type batch struct {
	gk     groupKey
	reqs   []*request
	items  int
	bytes  int
	timer  *time.Timer
	queued bool // in the ready queue, waiting for a slot
	sealed bool // full: takes no more requests
	sent   bool
}

// coalescer merges concurrent batches of the same group. It owns no
// long-lived goroutine: a batch is sent by the caller or timer that makes
// it due when a slot is free, and each running call sends the batches
// that became due meanwhile before it gives its slot back.
type coalescer struct {
	c        *Client
	maxItems int
	maxBytes int
	wait     time.Duration
	slots    int

	mu       sync.Mutex
	open     map[groupKey]*batch // the batch still taking requests, per group
	ready    []*batch            // due, waiting for a slot (FIFO)
	inflight int
}

func newCoalescer(c *Client, o Coalescing) *coalescer {
	if o.MaxItems <= 0 {
		o.MaxItems = c.maxBatch
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.Wait <= 0 {
		o.Wait = time.Millisecond
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = c.inFlight
	}
	return &coalescer{c: c, maxItems: o.MaxItems, maxBytes: o.MaxBytes, wait: o.Wait, slots: o.MaxInFlight, open: map[groupKey]*batch{}}
}

// submit queues in for a merged call and waits for its results, or for
// ctx to end. Leaving early never disturbs the other callers of the batch.
func (q *coalescer) submit(ctx context.Context, op, key string, in []entry) ([]result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transit %s with key %q: %w", op, key, err)
	}
	r := &request{ctx: ctx, in: in, done: make(chan reply, 1)}
	for i := range in {
		r.bytes += in[i].size()
	}
	gk := groupKey{op: op, key: key, derived: in[0].context != nil}

	q.mu.Lock()
	b := q.open[gk]
	if b != nil && (b.items+len(in) > q.maxItems || b.bytes+r.bytes > q.maxBytes) {
		// No room: the open batch is due now, this request starts a new one.
		q.sealLocked(b)
		b = nil
	}
	if b == nil {
		b = &batch{gk: gk}
		q.open[gk] = b
	}
	b.reqs = append(b.reqs, r)
	b.items += len(in)
	b.bytes += r.bytes
	switch {
	case b.items >= q.maxItems || b.bytes >= q.maxBytes:
		q.sealLocked(b)
	case q.inflight == 0:
		// Idle: nothing to wait for, send at once.
		q.dueLocked(b)
	case b.timer == nil && !b.queued:
		b.timer = time.AfterFunc(q.wait, func() { q.expire(b) })
	}
	q.mu.Unlock()

	select {
	case rep := <-r.done:
		return rep.res, rep.err
	case <-ctx.Done():
		return nil, fmt.Errorf("transit %s with key %q: %w", op, key, ctx.Err())
	}
}

// expire makes a batch due when its wait has passed.
func (q *coalescer) expire(b *batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !b.sent && !b.queued {
		q.dueLocked(b)
	}
}

// sealLocked closes b to new requests and makes it due.
func (q *coalescer) sealLocked(b *batch) {
	b.sealed = true
	if q.open[b.gk] == b {
		delete(q.open, b.gk)
	}
	if !b.queued {
		q.dueLocked(b)
	}
}

// dueLocked sends b if a slot is free, else queues it; a queued batch that
// is not sealed keeps taking requests until a slot frees.
func (q *coalescer) dueLocked(b *batch) {
	if b.timer != nil {
		b.timer.Stop()
	}
	if q.inflight < q.slots {
		q.takeLocked(b)
		q.inflight++
		go q.run(b)
		return
	}
	b.queued = true
	q.ready = append(q.ready, b)
}

// takeLocked detaches b for sending.
func (q *coalescer) takeLocked(b *batch) {
	b.sent = true
	if q.open[b.gk] == b {
		delete(q.open, b.gk)
	}
}

// run sends b, then every batch that became due while it ran, and gives
// its slot back when none is left.
func (q *coalescer) run(b *batch) {
	for b != nil {
		q.send(b)
		q.mu.Lock()
		b = nil
		if len(q.ready) > 0 {
			b = q.ready[0]
			q.ready[0] = nil
			q.ready = q.ready[1:]
			q.takeLocked(b)
		} else {
			q.inflight--
		}
		q.mu.Unlock()
	}
}

// send makes one call for the live requests of b and routes each its
// slice of the results, or the whole-call error.
func (q *coalescer) send(b *batch) {
	live := b.reqs[:0]
	n := 0
	for _, r := range b.reqs {
		if r.ctx.Err() == nil { // a caller that left gets nothing sent
			live = append(live, r)
			n += len(r.in)
		}
	}
	if len(live) == 0 {
		return
	}
	in := live[0].in
	if len(live) > 1 {
		in = make([]entry, 0, n)
		for _, r := range live {
			in = append(in, r.in...)
		}
	}
	ctx, stop := callContext(live)
	res, err := q.c.call(ctx, b.gk.op, b.gk.key, in, len(live))
	stop()
	if err != nil && len(live) > 1 && errors.Is(err, vaultclient.ErrInvalid) {
		// Vault refused the request as a whole: it may be one caller's
		// items, so each caller is asked again on its own and only the
		// culprit fails.
		for _, r := range live {
			if r.ctx.Err() != nil {
				continue
			}
			res, err := q.c.call(r.ctx, b.gk.op, b.gk.key, r.in, 1)
			r.done <- reply{res: res, err: err}
		}
		return
	}
	off := 0
	for _, r := range live {
		if err != nil {
			r.done <- reply{err: err}
			continue
		}
		r.done <- reply{res: res[off : off+len(r.in) : off+len(r.in)]}
		off += len(r.in)
	}
}

// callContext is the context of a merged call: it carries no single
// caller's deadline or cancellation, and ends only when every caller
// has left. stop releases it.
func callContext(reqs []*request) (context.Context, func()) {
	if len(reqs) == 1 {
		return reqs[0].ctx, func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(reqs[0].ctx))
	var mu sync.Mutex
	left := len(reqs)
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			mu.Lock()
			left--
			last := left == 0
			mu.Unlock()
			if last {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
