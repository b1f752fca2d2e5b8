package transit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// wrapVault sits between the transit client and the real Vault client: it
// counts batch calls and their items, can delay them, and can fail the
// calls that carry a poison plaintext.
type wrapVault struct {
	vaultclient.Logical
	calls, items atomic.Int64
	delay        time.Duration
	poison       string // base64 plaintext or ciphertext that fails its call
	poisonErr    error
	cancelled    atomic.Int64 // calls whose context ended while in flight
}

func (w *wrapVault) Write(ctx context.Context, path string, data map[string]any) (map[string]any, error) {
	in, batched := data["batch_input"].([]map[string]any)
	if batched {
		w.calls.Add(1)
		w.items.Add(int64(len(in)))
		if w.poison != "" {
			for _, m := range in {
				if m["plaintext"] == w.poison || m["ciphertext"] == w.poison {
					return nil, w.poisonErr
				}
			}
		}
	}
	if w.delay > 0 {
		select {
		case <-time.After(w.delay):
		case <-ctx.Done():
			w.cancelled.Add(1)
			return nil, vaultclient.Classify("write "+path, ctx.Err())
		}
	}
	return w.Logical.Write(ctx, path, data)
}

func newWrapped(t *testing.T, o transit.Options) (*transit.Client, *wrapVault) {
	t.Helper()
	_, vc := testkit.VaultClient(t)
	w := &wrapVault{Logical: vc}
	tc := transit.New(w, o)
	for _, k := range []string{"k1", "k2"} {
		if err := tc.EnsureKey(context.Background(), k, transit.KeySpec{}); err != nil {
			t.Fatal(err)
		}
	}
	return tc, w
}

// together runs fn in n goroutines released at the same moment.
func together(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestCoalescedCallersGetTheirOwnResults(t *testing.T) {
	tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 20 * time.Millisecond}})
	ctx := context.Background()
	const callers, per = 120, 3
	pts := func(i, j int) []byte {
		return []byte(fmt.Sprintf("caller-%03d-field-%d-%s", i, j, strings.Repeat("x", i%17)))
	}
	aad := func(i, j int) []byte { return []byte(fmt.Sprintf("topic\x00field-%d-%d", i, j)) }
	cts := make([][]transit.Sealed, callers)
	errs := make([]error, callers)
	w.calls.Store(0)
	together(callers, func(i int) {
		items := make([]transit.Item, per)
		for j := range items {
			items[j] = transit.Item{Plaintext: pts(i, j), AAD: aad(i, j)}
		}
		cts[i], errs[i] = tc.Encrypt(ctx, "k1", items)
	})
	encCalls := w.calls.Load()
	for i := range callers {
		if errs[i] != nil || len(cts[i]) != per {
			t.Fatalf("caller %d: %v (%d results)", i, errs[i], len(cts[i]))
		}
	}
	if encCalls >= callers/4 {
		t.Fatalf("%d concurrent callers took %d encrypt calls: not coalesced", callers, encCalls)
	}

	// Decrypt concurrently too, each caller its own ciphertexts, and compare
	// bytes: a mix-up between callers would show here (the AAD differs per
	// item, so a swapped ciphertext cannot even authenticate).
	w.calls.Store(0)
	opened := make([][]transit.Opened, callers)
	together(callers, func(i int) {
		in := make([]transit.Ciphertext, per)
		for j := range in {
			in[j] = transit.Ciphertext{Ciphertext: cts[i][j].Ciphertext, AAD: aad(i, j)}
		}
		opened[i], errs[i] = tc.Decrypt(ctx, "k1", in)
	})
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("decrypt caller %d: %v", i, errs[i])
		}
		for j, o := range opened[i] {
			if o.Err != nil || !bytes.Equal(o.Plaintext, pts(i, j)) || o.KeyVersion != 1 {
				t.Fatalf("caller %d item %d: %q %v, want %q", i, j, o.Plaintext, o.Err, pts(i, j))
			}
		}
	}
	if got := w.calls.Load(); got >= callers/4 {
		t.Fatalf("%d concurrent decrypt callers took %d calls", callers, got)
	}
	t.Logf("%d callers x %d items: %d encrypt calls", callers, per, encCalls)
}

func TestCoalescedBadItemFailsOnlyItself(t *testing.T) {
	tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 20 * time.Millisecond}})
	ctx := context.Background()
	const callers = 40
	sealed, err := tc.Encrypt(ctx, "k1", []transit.Item{{Plaintext: []byte("secret"), AAD: []byte("right")}})
	if err != nil || sealed[0].Err != nil {
		t.Fatal(err)
	}
	ct := sealed[0].Ciphertext
	res := make([][]transit.Opened, callers)
	errs := make([]error, callers)
	w.calls.Store(0)
	together(callers, func(i int) {
		in := []transit.Ciphertext{{Ciphertext: ct, AAD: []byte("right")}, {Ciphertext: ct, AAD: []byte("right")}}
		if i == 7 {
			in[1].AAD = []byte("wrong") // this record's second field is bad
		}
		res[i], errs[i] = tc.Decrypt(ctx, "k1", in)
	})
	if w.calls.Load() >= callers/2 {
		t.Fatalf("%d callers took %d calls: the bad item was not in a shared call", callers, w.calls.Load())
	}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: whole-call error %v", i, errs[i])
		}
		for j, o := range res[i] {
			bad := i == 7 && j == 1
			switch {
			case bad && !errors.Is(o.Err, transit.ErrDecrypt):
				t.Fatalf("bad item: %v, want ErrDecrypt", o.Err)
			case bad:
				var ie *transit.ItemError
				if !errors.As(o.Err, &ie) || ie.Index != 1 {
					t.Fatalf("bad item error %v does not name its own index 1", o.Err)
				}
			case o.Err != nil || string(o.Plaintext) != "secret":
				t.Fatalf("caller %d item %d: %q %v", i, j, o.Plaintext, o.Err)
			}
		}
	}
}

func TestVaultErrorFailsOnlyItsOwnBatch(t *testing.T) {
	poison := base64.StdEncoding.EncodeToString([]byte("poison"))
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"unavailable", &vaultclient.Error{Op: "write", Status: 500, Kind: vaultclient.ErrUnavailable}},
		{"refused", &vaultclient.Error{Op: "write", Status: 400, Kind: vaultclient.ErrInvalid}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 20 * time.Millisecond}})
			w.poison, w.poisonErr = poison, tt.err
			ctx := context.Background()
			const callers = 30
			errs := make([]error, callers)
			res := make([][]transit.Sealed, callers)
			together(callers, func(i int) {
				key, pt := "k1", fmt.Sprintf("ok-%d", i)
				switch {
				case i == 0:
					key, pt = "k2", "poison" // the failing batch
				case i%3 == 0:
					key = "k2" // shares k2's batch with the poison
				}
				res[i], errs[i] = tc.Encrypt(ctx, key, []transit.Item{{Plaintext: []byte(pt)}})
			})
			kind := tt.err.(*vaultclient.Error).Kind
			shared := 0
			for i := range callers {
				ok := errs[i] == nil && res[i][0].Err == nil && transit.IsCiphertext(res[i][0].Ciphertext)
				switch {
				case i == 0:
					if !errors.Is(errs[i], kind) {
						t.Fatalf("poison caller: %v, want %v", errs[i], kind)
					}
				case i%3 == 0 && !ok:
					// A k2 caller merged with the poison shares its fate
					// when Vault is unavailable; when Vault refuses the
					// request, each caller is asked again alone and only
					// the poison fails.
					if tt.name == "refused" || !errors.Is(errs[i], kind) {
						t.Fatalf("k2 caller %d: %v", i, errs[i])
					}
					shared++
				case !ok:
					t.Fatalf("k1 caller %d failed with k2's batch: %v", i, errs[i])
				}
			}
			t.Logf("%s: %d k2 callers shared the failed call", tt.name, shared)
			// The failure left nothing behind: k2 works again.
			if r, err := tc.Encrypt(ctx, "k2", []transit.Item{{Plaintext: []byte("after")}}); err != nil || r[0].Err != nil {
				t.Fatalf("after the failure: %v", err)
			}
		})
	}
}

func TestCallerCancellationLeavesOthersAlone(t *testing.T) {
	tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 10 * time.Millisecond, MaxInFlight: 1}})
	w.delay = 300 * time.Millisecond
	ctx := context.Background()

	// A first call holds the only slot; the callers below then share one
	// call. One of them leaves before it is sent, one while it is in
	// flight; the rest get their results.
	blocked := make(chan error, 1)
	go func() {
		_, err := tc.Encrypt(ctx, "k1", []transit.Item{{Plaintext: []byte("first")}})
		blocked <- err
	}()
	time.Sleep(20 * time.Millisecond)
	const callers = 12
	errs := make([]error, callers)
	res := make([][]transit.Sealed, callers)
	took := make([]time.Duration, callers)
	together(callers, func(i int) {
		cctx := ctx
		switch i {
		case 0: // leaves while the shared call is in flight
			c, cancel := context.WithTimeout(ctx, 450*time.Millisecond)
			defer cancel()
			cctx = c
		case 1: // leaves while its batch waits for the slot
			c, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			cctx = c
		}
		start := time.Now()
		res[i], errs[i] = tc.Encrypt(cctx, "k1", []transit.Item{{Plaintext: []byte(fmt.Sprint("v", i))}})
		took[i] = time.Since(start)
	})
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], context.DeadlineExceeded) || took[0] >= 580*time.Millisecond {
		t.Fatalf("caller 0: %v after %v, want its own deadline before the shared call ends", errs[0], took[0])
	}
	if !errors.Is(errs[1], context.DeadlineExceeded) || took[1] >= 250*time.Millisecond {
		t.Fatalf("caller 1: %v after %v, want its own deadline while queued", errs[1], took[1])
	}
	for i := 2; i < callers; i++ {
		if errs[i] != nil || res[i][0].Err != nil {
			t.Fatalf("caller %d broken by another's cancellation: %v", i, errs[i])
		}
	}
	if n := w.cancelled.Load(); n != 0 {
		t.Fatalf("%d calls were cancelled by one caller leaving", n)
	}

	// When every caller of a call leaves, the call itself is abandoned,
	// and the client keeps working afterwards.
	c, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	together(4, func(i int) {
		_, _ = tc.Encrypt(c, "k1", []transit.Item{{Plaintext: []byte("gone")}})
	})
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for w.cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.cancelled.Load() == 0 {
		t.Fatal("a call whose callers all left was not cancelled")
	}
	w.delay = 0
	if r, err := tc.Encrypt(ctx, "k1", []transit.Item{{Plaintext: []byte("later")}}); err != nil || r[0].Err != nil {
		t.Fatalf("after cancellations: %v", err)
	}
}

func TestRewrapAndHMACCoalesce(t *testing.T) {
	tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 20 * time.Millisecond}})
	ctx := context.Background()
	const callers = 50
	items := make([]transit.Item, callers)
	for i := range items {
		items[i] = transit.Item{Plaintext: []byte(fmt.Sprint("value-", i))}
	}
	sealed, err := tc.Encrypt(ctx, "k1", items)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Rotate(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	// Reference HMACs from one uncoalesced call.
	inputs := make([][]byte, callers)
	for i := range inputs {
		inputs[i] = items[i].Plaintext
	}
	want, _, err := tc.HMAC(ctx, "k1", inputs)
	if err != nil {
		t.Fatal(err)
	}
	w.calls.Store(0)
	rw := make([][]transit.Sealed, callers)
	hm := make([][]string, callers)
	errs := make([]error, 2*callers)
	together(2*callers, func(i int) {
		if i < callers {
			rw[i], errs[i] = tc.Rewrap(ctx, "k1", []transit.Ciphertext{{Ciphertext: sealed[i].Ciphertext}})
			return
		}
		j := i - callers
		var ierrs []error
		hm[j], ierrs, errs[i] = tc.HMAC(ctx, "k1", [][]byte{inputs[j]})
		if errs[i] == nil && ierrs[0] != nil {
			errs[i] = ierrs[0]
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if got := w.calls.Load(); got >= callers/2 {
		t.Fatalf("%d rewrap and %d hmac callers took %d calls", callers, callers, got)
	}
	for i := range callers {
		if hm[i][0] != want[i] {
			t.Fatalf("hmac %d: %s, want %s", i, hm[i][0], want[i])
		}
		if rw[i][0].Err != nil || rw[i][0].KeyVersion != 2 {
			t.Fatalf("rewrap %d: %+v", i, rw[i][0])
		}
	}
	// Rewrapped values still decrypt to their own plaintexts.
	cts := make([]transit.Ciphertext, callers)
	for i := range cts {
		cts[i] = transit.Ciphertext{Ciphertext: rw[i][0].Ciphertext}
	}
	back, err := tc.Decrypt(ctx, "k1", cts)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range back {
		if o.Err != nil || !bytes.Equal(o.Plaintext, items[i].Plaintext) {
			t.Fatalf("rewrapped %d: %q %v", i, o.Plaintext, o.Err)
		}
	}
}

func TestDerivedAndPlainItemsNeverShareACall(t *testing.T) {
	tc, _ := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Wait: 20 * time.Millisecond}})
	ctx := context.Background()
	if err := tc.EnsureKey(ctx, "d", transit.KeySpec{Derived: true}); err != nil {
		t.Fatal(err)
	}
	// Vault refuses a batch where only some items carry a context; the
	// coalescer keeps such callers apart. Non-derived callers on the
	// derived key fail on their own.
	errs := make([]error, 20)
	res := make([][]transit.Sealed, 20)
	together(20, func(i int) {
		it := transit.Item{Plaintext: []byte("x")}
		if i%2 == 0 {
			it.Context = []byte(fmt.Sprint("ctx-", i))
		}
		res[i], errs[i] = tc.Encrypt(ctx, "d", []transit.Item{it})
	})
	for i := range 20 {
		if i%2 == 0 && (errs[i] != nil || res[i][0].Err != nil) {
			t.Fatalf("derived caller %d: %v %+v", i, errs[i], res[i])
		}
		if i%2 == 1 && errs[i] == nil && res[i][0].Err == nil {
			t.Fatalf("caller %d without context succeeded on a derived key", i)
		}
	}
}

func TestCoalescingDisabled(t *testing.T) {
	tc, w := newWrapped(t, transit.Options{Coalesce: transit.Coalescing{Disable: true}})
	w.calls.Store(0)
	together(10, func(i int) {
		_, _ = tc.Encrypt(context.Background(), "k1", []transit.Item{{Plaintext: []byte("x")}})
	})
	if got := w.calls.Load(); got != 10 {
		t.Fatalf("disabled coalescing: %d calls for 10 callers", got)
	}
}
