package fpe

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Service encrypts and decrypts with the keys of several domains, each with
// one or more versions of which one is current. It is safe for concurrent
// use; key changes (SetDomains, AddKey) swap an immutable snapshot, so
// Encrypt and Decrypt never block on them.
type Service struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[snapshot]
}

type snapshot struct {
	domains map[string]*domainKeys
}

type domainKeys struct {
	current int
	ciphers map[int]*Cipher
}

// NewService returns a Service with no keys. Keys come from a keyring that
// loads them from a KMS (fpe/vaultkeyring) through SetDomains, or from
// AddKey.
func NewService() *Service {
	s := &Service{}
	s.snap.Store(&snapshot{domains: map[string]*domainKeys{}})
	return s
}

// AddKey adds version of domain with a raw 32-byte key, and makes it the
// domain's current version when makeCurrent is set (the first version of a
// domain is always current). A version that is already loaded is refused.
// Keyrings call it for keys from Vault; tests call it directly.
func (s *Service) AddKey(domain string, version int, key []byte, makeCurrent bool) error {
	c, err := NewCipher(key, domain, version)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	dk := &domainKeys{current: version, ciphers: map[int]*Cipher{}}
	if prev := old.domains[domain]; prev != nil {
		if prev.ciphers[version] != nil {
			return fmt.Errorf("fpe: version %d of domain %q is already loaded", version, domain)
		}
		maps.Copy(dk.ciphers, prev.ciphers)
		if !makeCurrent {
			dk.current = prev.current
		}
	}
	dk.ciphers[version] = c
	s.setDomainsLocked(map[string]*domainKeys{domain: dk})
	return nil
}

// DomainKeys are the loaded key versions of one domain.
type DomainKeys struct {
	Current int             // the version Encrypt uses; must be in Ciphers
	Ciphers map[int]*Cipher // version -> cipher of that domain and version
}

// SetDomains replaces the keys of the domains in ds in one step; other
// domains keep theirs. Encrypt and Decrypt see either all of the old keys
// or all of the new ones. A domain whose current version has no cipher, or
// whose cipher belongs to another domain or version, is refused and nothing
// changes.
func (s *Service) SetDomains(ds map[string]DomainKeys) error {
	next := make(map[string]*domainKeys, len(ds))
	for d, k := range ds {
		if k.Ciphers[k.Current] == nil {
			return newErr("load", CodeUnknownVersion, "current version %d of domain %q has no key", k.Current, d)
		}
		for v, c := range k.Ciphers {
			if c == nil || c.domain != d || c.version != v {
				return newErr("load", CodeInvalidKey, "version %d of domain %q has no key or another domain's", v, d)
			}
		}
		next[d] = &domainKeys{current: k.Current, ciphers: maps.Clone(k.Ciphers)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setDomainsLocked(next)
	return nil
}

// setDomainsLocked replaces the given domains in a new snapshot; s.mu is held.
func (s *Service) setDomainsLocked(ds map[string]*domainKeys) {
	old := s.snap.Load()
	next := &snapshot{domains: maps.Clone(old.domains)}
	maps.Copy(next.domains, ds)
	s.snap.Store(next)
}

func (s *Service) lookup(op, domain string) (*domainKeys, error) {
	dk := s.snap.Load().domains[domain]
	if dk == nil {
		return nil, newErr(op, CodeUnknownDomain, "domain %q is not loaded", domain)
	}
	return dk, nil
}

// Encrypt encrypts value with the current key version of domain and returns
// the token and that version, which the caller must keep with the token
// (kafkagate puts it in the kafkagate.fields header): Decrypt needs it.
func (s *Service) Encrypt(domain string, f Format, value string) (out string, version int, err error) {
	dk, err := s.lookup("encrypt", domain)
	if err != nil {
		return "", 0, err
	}
	out, err = dk.ciphers[dk.current].Encrypt(f, value)
	if err != nil {
		return "", 0, err
	}
	return out, dk.current, nil
}

// Decrypt decrypts a token made by Encrypt with the given version of
// domain's key and the same format.
func (s *Service) Decrypt(domain string, f Format, version int, value string) (string, error) {
	dk, err := s.lookup("decrypt", domain)
	if err != nil {
		return "", err
	}
	c := dk.ciphers[version]
	if c == nil {
		return "", newErr("decrypt", CodeUnknownVersion, "version %d of domain %q is not loaded (loaded: %s)", version, domain, versionList(dk))
	}
	return c.Decrypt(f, value)
}

// Current returns domain's current key version.
func (s *Service) Current(domain string) (int, error) {
	dk, err := s.lookup("current", domain)
	if err != nil {
		return 0, err
	}
	return dk.current, nil
}

// Domains lists the loaded domains, sorted.
func (s *Service) Domains() []string {
	return slices.Sorted(maps.Keys(s.snap.Load().domains))
}

func versionList(dk *domainKeys) string {
	vs := slices.Sorted(maps.Keys(dk.ciphers))
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}
