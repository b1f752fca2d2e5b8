// Package transit encrypts, decrypts and manages keys with HashiCorp Vault's
// transit secrets engine. Values travel in batch_input calls (always with
// partial_failure_response_code, so one bad item fails only itself), large
// batches are split and sent a few at a time, the items of concurrent calls
// are merged into shared calls (batcher.go), and every item's result or error
// is routed back to its caller. It knows nothing of HTTP or Kafka.
//
// It is the Vault implementation of package kms: its item types and errors
// are kms's (aliased here), Vault's per-item messages map onto the kms
// per-item errors (itemErr) and whole-call failures onto the kms call
// errors (through vaultclient).
package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Per-item errors: the neutral ones of package kms, onto which itemErr
// maps Vault's per-item messages. An *ItemError wraps one of these.
var (
	ErrDecrypt        = kms.ErrDecrypt
	ErrVersionRetired = kms.ErrVersionRetired
	ErrMalformed      = kms.ErrMalformed
	ErrItem           = kms.ErrItem
)

// The values transit exchanges are kms's.
type (
	// ItemError is the failure of one item in a batch.
	ItemError = kms.ItemError
	// Item is one value to encrypt.
	Item = kms.Item
	// Sealed is one encrypted value.
	Sealed = kms.Sealed
	// Ciphertext is one value to decrypt.
	Ciphertext = kms.Ciphertext
	// Opened is one decrypted value.
	Opened = kms.Opened
	// DataKey is a fresh data-encryption key from transit/datakey.
	DataKey = kms.DataKey
	// KeyInfo describes a transit key.
	KeyInfo = kms.KeyInfo
	// KeySpec says how to create a key.
	KeySpec = kms.KeySpec
)

// Options tune batching.
type Options struct {
	Mount       string // transit mount path, default "transit"
	MaxBatch    int    // items per Vault call, default 500
	MaxInFlight int    // concurrent Vault calls per operation, default 4
	// Coalesce merges the items of concurrent calls into shared
	// batch_input calls (on by default; see Coalescing).
	Coalesce Coalescing
	// Observer, when set, is told about every batch_input call.
	Observer Observer
}

// Client talks to one transit mount.
type Client struct {
	v        vaultclient.Logical
	mount    string
	maxBatch int
	inFlight int
	coal     *coalescer // nil: coalescing disabled
	obs      Observer
}

// New returns a transit client over v.
func New(v vaultclient.Logical, o Options) *Client {
	if o.Mount == "" {
		o.Mount = "transit"
	}
	o.MaxBatch = positiveOr(o.MaxBatch, 500)
	o.MaxInFlight = positiveOr(o.MaxInFlight, 4)
	c := &Client{v: v, mount: strings.Trim(o.Mount, "/"), maxBatch: o.MaxBatch, inFlight: o.MaxInFlight, obs: o.Observer}
	if !o.Coalesce.Disable {
		c.coal = newCoalescer(c, o.Coalesce)
	}
	return c
}

// Mount is the transit mount path.
func (c *Client) Mount() string { return c.mount }

// Encrypt encrypts items with key. The returned slice has one entry per item,
// in order; the error is non-nil only when the whole operation failed (Vault
// unreachable, permission denied, ...), wrapping a vaultclient error.
func (c *Client) Encrypt(ctx context.Context, key string, items []Item) ([]Sealed, error) {
	return c.seal(ctx, "encrypt", key, len(items), func(i int) entry {
		it := items[i]
		return entry{name: "plaintext", raw: it.Plaintext, b64: true, aad: it.AAD, context: it.Context}
	})
}

// Decrypt decrypts items with key; see Encrypt for the error contract.
// Malformed ciphertexts fail locally without being sent.
func (c *Client) Decrypt(ctx context.Context, key string, items []Ciphertext) ([]Opened, error) {
	if err := checkKeyName(key); err != nil {
		return nil, err
	}
	out := make([]Opened, len(items))
	// Only well-formed items go to Vault.
	send := make([]int, 0, len(items))
	for i, it := range items {
		v, err := Version(it.Ciphertext)
		if err != nil {
			out[i].Err = &ItemError{Index: i, Msg: err.Error(), Kind: ErrMalformed}
			continue
		}
		out[i].KeyVersion = v
		send = append(send, i)
	}
	err := c.batchOp(ctx, "decrypt", key, len(send), func(i int) entry {
		it := items[send[i]]
		return entry{name: "ciphertext", text: it.Ciphertext, aad: it.AAD, context: it.Context}
	}, func(i int, r *result) {
		idx := send[i]
		if r.Error != "" {
			out[idx].Err = itemErr(idx, r.Error)
			return
		}
		b, derr := base64.StdEncoding.DecodeString(r.Plaintext)
		if derr != nil {
			out[idx].Err = &ItemError{Index: idx, Msg: "vault returned invalid base64", Kind: ErrItem}
			return
		}
		out[idx].Plaintext = b
	})
	return out, err
}

// Rewrap moves ciphertexts to the key's latest version without exposing the
// plaintext. Items carry context for derived keys; AAD is not supported by
// Vault's rewrap.
func (c *Client) Rewrap(ctx context.Context, key string, items []Ciphertext) ([]Sealed, error) {
	return c.seal(ctx, "rewrap", key, len(items), func(i int) entry {
		return entry{name: "ciphertext", text: items[i].Ciphertext, context: items[i].Context}
	})
}

// seal runs an operation whose results carry ciphertexts (encrypt, rewrap)
// over n items, input(i) being item i's batch_input entry.
func (c *Client) seal(ctx context.Context, op, key string, n int, input func(i int) entry) ([]Sealed, error) {
	if err := checkKeyName(key); err != nil {
		return nil, err
	}
	out := make([]Sealed, n)
	err := c.batchOp(ctx, op, key, n, input, func(idx int, r *result) {
		if r.Error != "" {
			out[idx].Err = itemErr(idx, r.Error)
			return
		}
		ct := r.Ciphertext
		v, err := Version(ct)
		if err != nil {
			out[idx].Err = &ItemError{Index: idx, Msg: "vault returned no ciphertext", Kind: ErrItem}
			return
		}
		out[idx] = Sealed{Ciphertext: ct, KeyVersion: v}
	})
	return out, err
}

// batchOp sends n items to op in batch_input calls (see batches): input(i)
// is item i's entry, and result(i, r) receives item i's batch result.
func (c *Client) batchOp(ctx context.Context, op, key string, n int, input func(i int) entry, result func(i int, r *result)) error {
	return c.batches(ctx, n, func(ctx context.Context, lo, hi int) error {
		in := make([]entry, 0, hi-lo)
		for i := lo; i < hi; i++ {
			in = append(in, input(i))
		}
		res, err := c.batchCall(ctx, op, key, in)
		if err != nil {
			return err
		}
		for i := range res {
			result(lo+i, &res[i])
		}
		return nil
	})
}

// batches splits n items into chunks of maxBatch and runs fn on them, at
// most inFlight at a time. The first whole-batch error cancels the rest.
func (c *Client) batches(ctx context.Context, n int, fn func(ctx context.Context, lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	if n <= c.maxBatch {
		return fn(ctx, 0, n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.inFlight)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for lo := 0; lo < n; lo += c.maxBatch {
		hi := min(lo+c.maxBatch, n)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, lo, hi); err != nil {
				mu.Lock()
				if ferr == nil {
					ferr = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if ferr == nil && ctx.Err() != nil {
		ferr = ctx.Err()
	}
	return ferr
}

// batchCall returns the batch_results of in, which are checked to match
// the input in length: through the coalescer, which may merge in with
// other callers' items, or in a call of its own.
func (c *Client) batchCall(ctx context.Context, op, key string, in []entry) ([]result, error) {
	if c.coal != nil {
		return c.coal.submit(ctx, op, key, in)
	}
	return c.call(ctx, op, key, in, 1)
}

// call sends one batch_input call carrying the items of callers callers.
func (c *Client) call(ctx context.Context, op, key string, in []entry, callers int) ([]result, error) {
	path := c.mount + "/" + op + "/" + key
	if op == "hmac" {
		path += "/sha2-256"
	}
	start := time.Now()
	res, err := c.write(ctx, path, in)
	if c.obs != nil {
		c.obs.VaultCall(op, len(in), callers, time.Since(start), err)
	}
	if err != nil {
		// Vault answers 400 when every item failed even with the partial
		// failure code; that case still carries no per-item results.
		return nil, fmt.Errorf("transit %s with key %q: %w", op, key, err)
	}
	if len(res) != len(in) {
		return nil, fmt.Errorf("transit %s with key %q: %d results for %d items: %w", op, key, len(res), len(in), vaultclient.ErrUnavailable)
	}
	return res, nil
}

func itemErr(idx int, msg string) error {
	kind := ErrItem
	switch {
	case strings.Contains(msg, "message authentication failed"):
		kind = ErrDecrypt
	case strings.Contains(msg, "disallowed by policy (too old)"), strings.Contains(msg, "version is too old"):
		kind = ErrVersionRetired
	case strings.Contains(msg, "invalid ciphertext"), strings.Contains(msg, "illegal base64"):
		kind = ErrMalformed
	}
	return &ItemError{Index: idx, Msg: msg, Kind: kind}
}

// Version returns N from a "vault:vN:..." ciphertext (kms.Version).
func Version(ct string) (int, error) { return kms.Version(ct) }

// IsCiphertext reports whether s looks like a transit ciphertext.
func IsCiphertext(s string) bool { return kms.IsCiphertext(s) }

func checkKeyName(key string) error { return kms.CheckKeyName(key) }

// ReadKey reads a key's metadata.
func (c *Client) ReadKey(ctx context.Context, key string) (KeyInfo, error) {
	if err := checkKeyName(key); err != nil {
		return KeyInfo{}, err
	}
	d, err := c.v.Read(ctx, c.mount+"/keys/"+key)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("read transit key %q: %w", key, err)
	}
	ki := KeyInfo{
		Name:                 key,
		Type:                 str(d["type"]),
		LatestVersion:        num(d["latest_version"]),
		MinDecryptionVersion: num(d["min_decryption_version"]),
		MinEncryptionVersion: num(d["min_encryption_version"]),
		Derived:              d["derived"] == true,
		DeletionAllowed:      d["deletion_allowed"] == true,
		AutoRotatePeriod:     fmt.Sprint(d["auto_rotate_period"]),
	}
	if keys, ok := d["keys"].(map[string]any); ok {
		for k := range keys {
			if v, err := strconv.Atoi(k); err == nil {
				ki.Versions = append(ki.Versions, v)
			}
		}
	}
	slices.Sort(ki.Versions)
	return ki, nil
}

// EnsureKey creates key if it does not exist; an existing key is left alone.
func (c *Client) EnsureKey(ctx context.Context, key string, spec KeySpec) error {
	if _, err := c.ReadKey(ctx, key); err == nil {
		return nil
	} else if !errors.Is(err, vaultclient.ErrNotFound) {
		return err
	}
	t := spec.Type
	if t == "" {
		t = "aes256-gcm96"
	}
	if _, err := c.v.Write(ctx, c.mount+"/keys/"+key, map[string]any{"type": t, "derived": spec.Derived}); err != nil {
		return fmt.Errorf("create transit key %q: %w", key, err)
	}
	return nil
}

// Rotate adds a new version to key and returns the new latest version.
func (c *Client) Rotate(ctx context.Context, key string) (int, error) {
	if err := checkKeyName(key); err != nil {
		return 0, err
	}
	d, err := c.v.Write(ctx, c.mount+"/keys/"+key+"/rotate", nil)
	if err != nil {
		return 0, fmt.Errorf("rotate transit key %q: %w", key, err)
	}
	if v := num(d["latest_version"]); v > 0 {
		return v, nil
	}
	ki, err := c.ReadKey(ctx, key)
	if err != nil {
		return 0, err
	}
	return ki.LatestVersion, nil
}

// Configure writes key configuration (min_decryption_version, ...).
func (c *Client) Configure(ctx context.Context, key string, cfg map[string]any) error {
	if err := checkKeyName(key); err != nil {
		return err
	}
	if _, err := c.v.Write(ctx, c.mount+"/keys/"+key+"/config", cfg); err != nil {
		return fmt.Errorf("configure transit key %q: %w", key, err)
	}
	return nil
}

// NewDataKey asks Vault for a data key of bits (128, 256 or 512) under key.
// With wrappedOnly Vault returns only the wrapped form. ctxt is the
// derivation context for derived keys (nil otherwise).
func (c *Client) NewDataKey(ctx context.Context, key string, bits int, wrappedOnly bool, ctxt []byte) (DataKey, error) {
	if err := checkKeyName(key); err != nil {
		return DataKey{}, err
	}
	kind := "plaintext"
	if wrappedOnly {
		kind = "wrapped"
	}
	body := map[string]any{"bits": bits}
	if ctxt != nil {
		body["context"] = base64.StdEncoding.EncodeToString(ctxt)
	}
	d, err := c.v.Write(ctx, c.mount+"/datakey/"+kind+"/"+key, body)
	if err != nil {
		return DataKey{}, fmt.Errorf("transit datakey with key %q: %w", key, err)
	}
	dk := DataKey{Ciphertext: str(d["ciphertext"]), KeyVersion: num(d["key_version"])}
	if dk.KeyVersion == 0 {
		dk.KeyVersion, _ = Version(dk.Ciphertext)
	}
	if !wrappedOnly {
		pt, err := base64.StdEncoding.DecodeString(str(d["plaintext"]))
		if err != nil || len(pt) != bits/8 {
			return DataKey{}, fmt.Errorf("transit datakey with key %q: bad plaintext key in response: %w", key, vaultclient.ErrUnavailable)
		}
		dk.Plaintext = pt
	}
	if !IsCiphertext(dk.Ciphertext) {
		return DataKey{}, fmt.Errorf("transit datakey with key %q: no wrapped key in response: %w", key, vaultclient.ErrUnavailable)
	}
	return dk, nil
}

// HMAC computes transit HMACs (sha2-256) of inputs with key, batched.
func (c *Client) HMAC(ctx context.Context, key string, inputs [][]byte) ([]string, []error, error) {
	if err := checkKeyName(key); err != nil {
		return nil, nil, err
	}
	out := make([]string, len(inputs))
	errs := make([]error, len(inputs))
	err := c.batchOp(ctx, "hmac", key, len(inputs), func(i int) entry {
		return entry{name: "input", raw: inputs[i], b64: true}
	}, func(i int, r *result) {
		if r.Error != "" {
			errs[i] = itemErr(i, r.Error)
			return
		}
		out[i] = r.HMAC
	})
	return out, errs, err
}

// positiveOr is n when it is above zero, else def.
func positiveOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return 0
}
