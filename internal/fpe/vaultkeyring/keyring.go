// Package vaultkeyring keeps the FPE keys of package fpe in HashiCorp Vault:
// each key is a data key made by transit/datakey/wrapped under a derived KEK
// (context "<domain>|v<version>"), stored wrapped in KV v2 with
// check-and-set, and unwrapped only into the memory of an fpe.Service.
//
// It is the Vault side of FPE key storage: package fpe itself (ciphers,
// formats, Service) imports no Vault package. Vault failures wrap
// vaultclient's typed errors, which are the kms ones (ErrDenied,
// ErrUnavailable, ...).
package vaultkeyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/fpe"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Defaults for Options.
const (
	DefaultKEK      = "kafkagate-fpe-kek"
	DefaultKVMount  = "secret"
	DefaultKVPrefix = "kafkagate/fpe"
)

// ErrNotProvisioned means a domain has no key record in KV: run
// Keyring.Ensure for it first. It is returned wrapped together with the
// vaultclient.ErrNotFound that caused it.
var ErrNotProvisioned = errors.New("fpe domain not provisioned")

// Options say where the keys live. Zero fields take the defaults.
type Options struct {
	TransitMount string // transit mount of the KEK; default "transit"
	KEK          string // transit key wrapping the FPE keys (derived=true); default DefaultKEK
	KVMount      string // KV v2 mount; default "secret"
	KVPrefix     string // record of domain d at <KVPrefix>/<d>; default "kafkagate/fpe"
}

// Keyring loads FPE keys from Vault into an fpe.Service and manages them.
//
// Each domain has one KV v2 record at <KVMount>/data/<KVPrefix>/<domain>
// with fields "v1", "v2", ... holding the key of that version wrapped by the
// KEK ("vault:vN:..." from transit/datakey/wrapped with context
// "<domain>|v<version>"), "current" (the version new values use) and "kek"
// (the KEK's name). Plaintext keys exist only in this process's memory.
//
// The methods are safe for concurrent use; the Service keeps serving while
// they run.
type Keyring struct {
	v   vaultclient.Logical
	tr  *transit.Client
	o   Options
	svc *fpe.Service

	mu     sync.Mutex                   // serialises Load, Refresh, Rotate
	loaded map[string]map[int]loadedKey // domain -> version -> key
}

// loadedKey is an unwrapped key and the wrapped form it came from.
type loadedKey struct {
	wrapped string
	c       *fpe.Cipher
}

// New returns a keyring over v. It does not contact Vault: call Load.
func New(v vaultclient.Logical, o Options) *Keyring {
	if o.TransitMount == "" {
		o.TransitMount = "transit"
	}
	if o.KEK == "" {
		o.KEK = DefaultKEK
	}
	if o.KVMount == "" {
		o.KVMount = DefaultKVMount
	}
	if o.KVPrefix == "" {
		o.KVPrefix = DefaultKVPrefix
	}
	o.TransitMount = strings.Trim(o.TransitMount, "/")
	o.KVMount = strings.Trim(o.KVMount, "/")
	o.KVPrefix = strings.Trim(o.KVPrefix, "/")
	return &Keyring{
		v:      v,
		tr:     transit.New(v, transit.Options{Mount: o.TransitMount}),
		o:      o,
		svc:    fpe.NewService(),
		loaded: map[string]map[int]loadedKey{},
	}
}

// Service is the keyring's Service. It is the same value for the keyring's
// whole life and sees every Load, Refresh and Rotate.
func (k *Keyring) Service() *fpe.Service { return k.svc }

// EnsureKEK creates the KEK (aes256-gcm96, derived=true) if it does not
// exist, and refuses an existing KEK that is not derived (its context would
// not bind a wrapped key to its domain and version). Needs read and create
// rights on transit/keys/<KEK>: an administrative step, not the gateway's.
func (k *Keyring) EnsureKEK(ctx context.Context) error {
	if err := k.tr.EnsureKey(ctx, k.o.KEK, transit.KeySpec{Derived: true}); err != nil {
		return fmt.Errorf("fpe: ensure KEK %q: %w", k.o.KEK, err)
	}
	ki, err := k.tr.ReadKey(ctx, k.o.KEK)
	if err != nil {
		return fmt.Errorf("fpe: read KEK %q: %w", k.o.KEK, err)
	}
	if !ki.Derived {
		return fmt.Errorf("fpe: KEK %q exists but is not derived (derived=true is required): %w", k.o.KEK, vaultclient.ErrInvalid)
	}
	return nil
}

// Ensure creates version 1 of domain's key if the domain has no record, and
// reports whether it did. The key is made by transit/datakey/wrapped, so
// Vault never returns its plaintext here: a provisioning token needs only
// update on transit/datakey/wrapped/<KEK> and read/create on the KV path.
// It does not load the key; call Load.
func (k *Keyring) Ensure(ctx context.Context, domain string) (created bool, err error) {
	if err := fpe.CheckDomain("ensure", domain); err != nil {
		return false, err
	}
	for attempt := 0; attempt < casAttempts; attempt++ {
		if err := casBackoff(ctx, attempt); err != nil {
			return false, err
		}
		_, err := k.read(ctx, domain)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, ErrNotProvisioned) {
			return false, err
		}
		rec := &record{wrapped: map[int]string{}}
		if err := k.addVersion(ctx, domain, rec, 1); err != nil {
			return false, err
		}
		err = k.write(ctx, domain, rec, 0)
		if isCASMismatch(err) {
			continue // someone else created it meanwhile: read theirs
		}
		if err != nil {
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("fpe: ensure domain %q: concurrent writers kept winning", domain)
}

// Rotate creates the next key version of domain, makes it current, and
// returns it. Values encrypted from then on get different tokens (see
// docs/fpe.md on joins); older versions stay in the record and keep
// decrypting. When this keyring has domain loaded, it reloads it, so its
// Service uses the new version at once; other processes pick it up at their
// next Refresh. The KV write uses check-and-set, so concurrent rotations
// cannot lose a version.
func (k *Keyring) Rotate(ctx context.Context, domain string) (int, error) {
	if err := fpe.CheckDomain("rotate", domain); err != nil {
		return 0, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	next := 0
	for attempt := 0; ; attempt++ {
		if attempt == casAttempts {
			return 0, fmt.Errorf("fpe: rotate domain %q: concurrent writers kept winning", domain)
		}
		if err := casBackoff(ctx, attempt); err != nil {
			return 0, err
		}
		rec, err := k.read(ctx, domain)
		if err != nil {
			return 0, err
		}
		next = slices.Max(slices.Collect(maps.Keys(rec.wrapped))) + 1
		if err := k.addVersion(ctx, domain, rec, next); err != nil {
			return 0, err
		}
		err = k.write(ctx, domain, rec, rec.kvVersion)
		if isCASMismatch(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	if _, ok := k.loaded[domain]; ok {
		if err := k.loadLocked(ctx, []string{domain}); err != nil {
			return next, fmt.Errorf("fpe: rotated domain %q to version %d, but reloading it failed: %w", domain, next, err)
		}
	}
	return next, nil
}

// Load reads the records of domains from KV, unwraps every version with
// transit/decrypt (context "<domain>|v<version>"), and makes them available
// to the Service, all or nothing. Loading an already loaded domain picks up
// its changes. A token that may not decrypt with the KEK gets an error
// wrapping vaultclient.ErrDenied; a domain without a record gets one
// wrapping ErrNotProvisioned.
func (k *Keyring) Load(ctx context.Context, domains ...string) error {
	for _, d := range domains {
		if err := fpe.CheckDomain("load", d); err != nil {
			return err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked(ctx, domains)
}

// Refresh reloads every loaded domain: new versions and a new current
// version take effect without a restart, versions removed from the record
// stop decrypting. Keys whose wrapped form did not change are not
// unwrapped again. On error nothing changes.
func (k *Keyring) Refresh(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked(ctx, slices.Sorted(maps.Keys(k.loaded)))
}

func (k *Keyring) loadLocked(ctx context.Context, domains []string) error {
	type job struct {
		domain  string
		version int
	}
	recs := make(map[string]*record, len(domains))
	var (
		jobs  []job
		items []transit.Ciphertext
	)
	for _, d := range domains {
		rec, err := k.read(ctx, d)
		if err != nil {
			return err
		}
		recs[d] = rec
		for _, v := range slices.Sorted(maps.Keys(rec.wrapped)) {
			if w := rec.wrapped[v]; k.loaded[d][v].wrapped != w {
				jobs = append(jobs, job{d, v})
				items = append(items, transit.Ciphertext{Ciphertext: w, Context: kekContext(d, v)})
			}
		}
	}
	opened, err := k.tr.Decrypt(ctx, k.o.KEK, items)
	if err != nil {
		return fmt.Errorf("fpe: unwrap keys with KEK %q: %w", k.o.KEK, err)
	}
	fresh := make(map[job]*fpe.Cipher, len(jobs))
	for i, j := range jobs {
		if opened[i].Err != nil {
			return fmt.Errorf("fpe: unwrap version %d of domain %q with KEK %q: %w", j.version, j.domain, k.o.KEK, opened[i].Err)
		}
		c, err := fpe.NewCipher(opened[i].Plaintext, j.domain, j.version)
		clear(opened[i].Plaintext)
		if err != nil {
			return fmt.Errorf("fpe: version %d of domain %q: %w", j.version, j.domain, err)
		}
		fresh[j] = c
	}
	ds := make(map[string]fpe.DomainKeys, len(domains))
	lks := make(map[string]map[int]loadedKey, len(domains))
	for _, d := range domains {
		rec := recs[d]
		dk := fpe.DomainKeys{Current: rec.current, Ciphers: make(map[int]*fpe.Cipher, len(rec.wrapped))}
		lk := make(map[int]loadedKey, len(rec.wrapped))
		for v, w := range rec.wrapped {
			c := fresh[job{d, v}]
			if c == nil {
				c = k.loaded[d][v].c // wrapped form unchanged: keep the key
			}
			dk.Ciphers[v] = c
			lk[v] = loadedKey{wrapped: w, c: c}
		}
		ds[d], lks[d] = dk, lk
	}
	if err := k.svc.SetDomains(ds); err != nil {
		return err
	}
	maps.Copy(k.loaded, lks)
	return nil
}

// addVersion asks Vault for a new wrapped key for version v and makes it
// current in rec.
func (k *Keyring) addVersion(ctx context.Context, domain string, rec *record, v int) error {
	dk, err := k.tr.NewDataKey(ctx, k.o.KEK, fpe.KeySize*8, true, kekContext(domain, v))
	if err != nil {
		return fmt.Errorf("fpe: new wrapped key for version %d of domain %q (does KEK %q exist? see EnsureKEK): %w", v, domain, k.o.KEK, err)
	}
	rec.wrapped[v] = dk.Ciphertext
	rec.current = v
	return nil
}

func kekContext(domain string, version int) []byte {
	return []byte(domain + "|v" + strconv.Itoa(version))
}

// record is one domain's KV entry.
type record struct {
	current   int
	wrapped   map[int]string // version -> vault:vN:...
	kvVersion int            // KV v2 metadata version, for check-and-set
}

func (k *Keyring) dataPath(domain string) string {
	return k.o.KVMount + "/data/" + k.o.KVPrefix + "/" + domain
}

func (k *Keyring) read(ctx context.Context, domain string) (*record, error) {
	path := k.dataPath(domain)
	d, err := k.v.Read(ctx, path)
	if errors.Is(err, vaultclient.ErrNotFound) {
		return nil, fmt.Errorf("fpe: domain %q: no key record at %s: %w: %w", domain, path, ErrNotProvisioned, err)
	}
	if err != nil {
		return nil, fmt.Errorf("fpe: read key record of domain %q: %w", domain, err)
	}
	meta, _ := d["metadata"].(map[string]any)
	data, _ := d["data"].(map[string]any)
	if data == nil {
		// KV v2 answers a deleted latest version with metadata and no data.
		// Creating a new v1 over it would orphan every token of the old
		// keys, so refuse and let an operator undelete or destroy it.
		return nil, invalidKey("key record of domain %q at %s is deleted or has no data: undelete it, or destroy its metadata to start over", domain, path)
	}
	rec := &record{wrapped: map[int]string{}, kvVersion: toInt(meta["version"])}
	bad := func(format string, args ...any) error {
		return invalidKey("key record of domain %q at %s: %s", domain, path, fmt.Sprintf(format, args...))
	}
	for name, val := range data {
		switch {
		case name == "current":
			rec.current = toInt(val)
		case name == "kek":
			if s, _ := val.(string); s != k.o.KEK {
				return nil, bad("wrapped with KEK %q, this keyring uses %q", s, k.o.KEK)
			}
		case strings.HasPrefix(name, "v"):
			v, err := strconv.Atoi(name[1:])
			s, _ := val.(string)
			if err != nil || v < 1 || strconv.Itoa(v) != name[1:] {
				return nil, bad("field %q is not a version", name)
			}
			if !transit.IsCiphertext(s) {
				return nil, bad("field %q is not a wrapped key (vault:vN:...)", name)
			}
			rec.wrapped[v] = s
		}
	}
	if len(rec.wrapped) == 0 {
		return nil, bad("no key versions")
	}
	if _, ok := rec.wrapped[rec.current]; !ok {
		return nil, bad("current version %d has no key", rec.current)
	}
	return rec, nil
}

// write stores rec if the record's KV version is still cas (0: the record
// must not exist).
func (k *Keyring) write(ctx context.Context, domain string, rec *record, cas int) error {
	data := map[string]any{"current": rec.current, "kek": k.o.KEK}
	for v, w := range rec.wrapped {
		data["v"+strconv.Itoa(v)] = w
	}
	_, err := k.v.Write(ctx, k.dataPath(domain), map[string]any{
		"options": map[string]any{"cas": cas},
		"data":    data,
	})
	if err != nil {
		return fmt.Errorf("fpe: write key record of domain %q: %w", domain, err)
	}
	return nil
}

// casAttempts bounds check-and-set retries.
const casAttempts = 10

// casBackoff waits before retry attempt (none before the first): a random
// 0-20 ms per earlier attempt, so competing writers spread out.
func casBackoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isCASMismatch recognises KV v2's check-and-set refusal.
func isCASMismatch(err error) bool {
	var ve *vaultclient.Error
	if !errors.As(err, &ve) || !errors.Is(err, vaultclient.ErrInvalid) {
		return false
	}
	for _, m := range ve.Msgs {
		if strings.Contains(m, "check-and-set") {
			return true
		}
	}
	return false
}

func toInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0
		}
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// invalidKey is the fpe refusal of a malformed key record.
func invalidKey(format string, args ...any) *fpe.Error {
	return &fpe.Error{Op: "load", Code: fpe.CodeInvalidKey, Detail: fmt.Sprintf(format, args...)}
}
