package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Key purposes (KeyRef.Purpose).
const (
	PurposeFields   = "fields"   // transit fields of a fields-mode policy
	PurposeEnvelope = "envelope" // KEK wrapping envelope data keys (derived)
	PurposeIndex    = "index"    // blind index HMAC key
)

// KeyRef is a transit key the policies use.
type KeyRef struct {
	Name    string   `json:"name"`
	Purpose string   `json:"purpose"`
	Topics  []string `json:"topics"`
}

// PolicyKeys lists the transit keys ps uses (sorted by name): the transit
// key of every fields policy with a transit field, every envelope KEK,
// and the index key of every policy with an index=hmac field.
func PolicyKeys(ps *policy.Set) []KeyRef {
	refs := map[string]*KeyRef{}
	add := func(name, purpose, topic string) {
		r := refs[name]
		if r == nil {
			r = &KeyRef{Name: name, Purpose: purpose}
			refs[name] = r
		}
		if !slices.Contains(r.Topics, topic) {
			r.Topics = append(r.Topics, topic)
		}
	}
	for _, t := range ps.Topics() {
		p, _ := ps.For(t)
		switch p.Mode {
		case policy.Envelope:
			add(p.Envelope.Key, PurposeEnvelope, t)
		case policy.Fields:
			for _, f := range p.Fields {
				if f.Mode != policy.Transit {
					continue
				}
				add(p.TransitKey, PurposeFields, t)
				if f.Options["index"] == "hmac" {
					add(p.IndexKey, PurposeIndex, t)
				}
			}
		}
	}
	out := make([]KeyRef, 0, len(refs))
	for _, r := range refs {
		slices.Sort(r.Topics)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b KeyRef) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// KeyStatus is a transit key's state in Vault.
type KeyStatus struct {
	Name                 string   `json:"name"`
	Purpose              string   `json:"purpose,omitempty"`
	Topics               []string `json:"topics,omitempty"`
	Exists               bool     `json:"exists"`
	Type                 string   `json:"type,omitempty"`
	Derived              bool     `json:"derived"`
	LatestVersion        int      `json:"latest_version"`
	MinDecryptionVersion int      `json:"min_decryption_version"`
	MinEncryptionVersion int      `json:"min_encryption_version"`
	Versions             []int    `json:"versions"`
	AutoRotatePeriod     string   `json:"auto_rotate_period"`
	DeletionAllowed      bool     `json:"deletion_allowed"`
}

// ShowKey reads one transit key. A missing key is Exists=false, not an
// error; Vault being unavailable or refusing is an error.
func ShowKey(ctx context.Context, tc *transit.Client, name string) (KeyStatus, error) {
	ks := KeyStatus{Name: name}
	ki, err := tc.ReadKey(ctx, name)
	if errors.Is(err, vaultclient.ErrNotFound) {
		return ks, nil
	}
	if err != nil {
		return ks, err
	}
	ks.Exists, ks.Type, ks.Derived = true, ki.Type, ki.Derived
	ks.LatestVersion, ks.MinDecryptionVersion, ks.MinEncryptionVersion = ki.LatestVersion, ki.MinDecryptionVersion, ki.MinEncryptionVersion
	ks.Versions, ks.DeletionAllowed = ki.Versions, ki.DeletionAllowed
	ks.AutoRotatePeriod = periodString(ki.AutoRotatePeriod)
	return ks, nil
}

// periodString turns Vault's auto_rotate_period (seconds) into a Go
// duration string ("0s": off).
func periodString(s string) string {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return (time.Duration(n) * time.Second).String()
	}
	return s
}

// ListKeys reads every key the policies use.
func ListKeys(ctx context.Context, tc *transit.Client, ps *policy.Set) ([]KeyStatus, error) {
	var out []KeyStatus
	for _, r := range PolicyKeys(ps) {
		ks, err := ShowKey(ctx, tc, r.Name)
		if err != nil {
			return out, err
		}
		ks.Purpose, ks.Topics = r.Purpose, r.Topics
		out = append(out, ks)
	}
	return out, nil
}

// KeyConfig is a change to a transit key's configuration; nil fields are
// left alone.
type KeyConfig struct {
	MinDecryptionVersion *int           `json:"min_decryption_version,omitempty"`
	MinEncryptionVersion *int           `json:"min_encryption_version,omitempty"`
	AutoRotatePeriod     *time.Duration `json:"auto_rotate_period,omitempty"`
}

// ConfigureKey applies c to key and returns its new state. Vault refuses
// a min_decryption_version above the latest version; AutoRotatePeriod 0
// turns auto-rotation off, otherwise it must be at least an hour.
func ConfigureKey(ctx context.Context, tc *transit.Client, key string, c KeyConfig) (KeyStatus, error) {
	m := map[string]any{}
	if c.MinDecryptionVersion != nil {
		m["min_decryption_version"] = *c.MinDecryptionVersion
	}
	if c.MinEncryptionVersion != nil {
		m["min_encryption_version"] = *c.MinEncryptionVersion
	}
	if c.AutoRotatePeriod != nil {
		d := *c.AutoRotatePeriod
		if d != 0 && d < time.Hour {
			return KeyStatus{}, fmt.Errorf("auto_rotate_period %s: want 0 (off) or at least 1h", d)
		}
		m["auto_rotate_period"] = int64(d / time.Second)
	}
	if len(m) == 0 {
		return KeyStatus{}, errors.New("nothing to configure: give min_decryption_version, min_encryption_version or auto_rotate_period")
	}
	if err := tc.Configure(ctx, key, m); err != nil {
		return KeyStatus{}, err
	}
	return ShowKey(ctx, tc, key)
}

// ErrUnknownKey: a key the policies do not use (the admin endpoints
// manage only those).
var ErrUnknownKey = errors.New("not a transit key of any policy")

// CheckPolicyKey returns ErrUnknownKey unless ps uses key.
func CheckPolicyKey(ps *policy.Set, key string) error {
	for _, r := range PolicyKeys(ps) {
		if r.Name == key {
			return nil
		}
	}
	return fmt.Errorf("transit key %q: %w", key, ErrUnknownKey)
}

// Rotated is a key version created by a topic rotation.
type Rotated struct {
	Kind    string `json:"kind"`             // "transit" or "fpe"
	Key     string `json:"key,omitempty"`    // transit key
	Domain  string `json:"domain,omitempty"` // FPE domain
	Version int    `json:"version"`          // the version new records now use
}

// TopicKeys lists the keys new records of a policy are encrypted with:
// transit keys (the policy's transit key when a field uses transit; the
// KEK in envelope mode) and FPE domains.
func TopicKeys(p *policy.Policy) (transitKeys, fpeDomains []string) {
	switch p.Mode {
	case policy.Envelope:
		return []string{p.Envelope.Key}, nil
	case policy.Passthrough:
		return nil, nil
	}
	for _, f := range p.Fields {
		switch f.Mode {
		case policy.Transit:
			if !slices.Contains(transitKeys, p.TransitKey) {
				transitKeys = append(transitKeys, p.TransitKey)
			}
		case policy.FPE:
			if d := f.Options["domain"]; !slices.Contains(fpeDomains, d) {
				fpeDomains = append(fpeDomains, d)
			}
		}
	}
	return transitKeys, fpeDomains
}

// DomainRotator adds a version to an FPE domain's key (*fpe.Keyring).
type DomainRotator interface {
	Rotate(ctx context.Context, domain string) (int, error)
}

// RotateTopic adds a version to every key that topic's policy in ps
// encrypts new records with (see TopicKeys): transit keys with tc, FPE
// domains with the keyring fpeKeys returns (called only when the policy
// has FPE domains). It returns the versions created, also those created
// before a failure. An envelope KEK may be shared by several topics: they
// all move to the new version.
func RotateTopic(ctx context.Context, tc *transit.Client, fpeKeys func() DomainRotator, ps *policy.Set, topic string) ([]Rotated, error) {
	p, ok := ps.For(topic)
	if !ok {
		return nil, fmt.Errorf("topic %q: no keys to rotate: %w", topic, ErrNoPolicy)
	}
	keys, domains := TopicKeys(p)
	var out []Rotated
	for _, k := range keys {
		v, err := tc.Rotate(ctx, k)
		if err != nil {
			return out, fmt.Errorf("rotate transit key %s: %w", k, err)
		}
		out = append(out, Rotated{Kind: "transit", Key: k, Version: v})
	}
	if len(domains) == 0 {
		return out, nil
	}
	kr := fpeKeys()
	for _, d := range domains {
		v, err := kr.Rotate(ctx, d)
		if err != nil {
			return out, fmt.Errorf("rotate fpe domain %s: %w", d, err)
		}
		out = append(out, Rotated{Kind: "fpe", Domain: d, Version: v})
	}
	return out, nil
}

// ErrNoPolicy: the topic has no policy, so no keys.
var ErrNoPolicy = errors.New("topic has no policy")
