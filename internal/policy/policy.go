// Package policy is the model of kafkagate's per-topic encryption policies:
// which JSON field paths of a record are encrypted, by which mode and key,
// or whether the whole value is enveloped or passed through. It parses and
// validates policy sections; applying a policy is the protect package's job.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RecordMode says what happens to a record value.
type RecordMode string

// Record modes.
const (
	// Fields encrypts the listed JSON fields in place; the value must be a
	// JSON object.
	Fields RecordMode = "fields"
	// Envelope encrypts the whole value locally under a data key.
	Envelope RecordMode = "envelope"
	// Passthrough produces values unchanged (explicit opt-out).
	Passthrough RecordMode = "passthrough"
)

// FieldMode says how one field is protected.
type FieldMode string

// Field modes.
const (
	Transit FieldMode = "transit" // Vault transit ciphertext in place
	Plain   FieldMode = "plain"   // explicitly left in clear
	FPE     FieldMode = "fpe"     // format-preserving encryption
)

// ErrInvalid wraps every policy validation error.
var ErrInvalid = errors.New("invalid policy")

// Field is one protected field.
type Field struct {
	Path    []string          // object keys from the root
	Mode    FieldMode         // how it is protected
	Options map[string]string // mode options (fpe: format, domain, fallback)
}

// PathString is the dotted form of the path, with literal dots escaped.
func (f Field) PathString() string { return JoinPath(f.Path) }

// EnvelopeOptions configure envelope mode.
type EnvelopeOptions struct {
	Key        string        // transit KEK name
	DEK        string        // per-message or cached
	MaxRecords int           // cached DEK: records per key
	MaxBytes   int64         // cached DEK: bytes per key
	MaxAge     time.Duration // cached DEK: lifetime
}

// Policy is one topic's policy.
type Policy struct {
	Topic      string
	Mode       RecordMode
	TransitKey string // resolved transit key name for transit fields
	AAD        bool   // bind transit ciphertexts to topic and field path
	Fields     []Field
	Envelope   EnvelopeOptions
	// IndexKey is the transit key of the blind indexes (fields with
	// index=hmac), default DefaultIndexKey resolved for the topic.
	IndexKey string
	// RewrappedFrom lists topics whose envelope records this topic may hold
	// (copied here by gateway rewrap with a kafkagate.origin header).
	RewrappedFrom []string
	// AcceptLegacy lets readers open the original demo's file records
	// (X-encryptionkey headers) on this topic: legacy = accept. Off by
	// default, so a legacy record copied into any other topic stays shut.
	AcceptLegacy bool
	// FetchFailed says what the Kafka proxy returns for a record it cannot
	// decrypt (fetch_failed): FetchStored (default) or FetchError.
	FetchFailed FetchRule
	// FetchDenied says what the Kafka proxy returns to a principal without
	// the consume right (fetch_denied): FetchError (default) or FetchStored.
	FetchDenied FetchRule
}

// FetchRule is what the Kafka proxy returns instead of plaintext.
type FetchRule string

// Fetch rules.
const (
	// FetchStored returns the record as stored (ciphertext), never
	// plaintext.
	FetchStored FetchRule = "stored"
	// FetchError returns a Kafka error for the partition instead.
	FetchError FetchRule = "error"
)

// Field returns the policy field with the dotted path.
func (p *Policy) Field(path string) (Field, bool) {
	for _, f := range p.Fields {
		if f.PathString() == path {
			return f, true
		}
	}
	return Field{}, false
}

// Defaults.
const (
	DefaultTransitKey  = "kafka-{topic}"
	DefaultEnvelopeKEK = "kafkagate-envelope"
	DefaultFPEDomain   = "payments.card_number"
	DefaultIndexKey    = "kafkagate-index-{topic}"
	// IndexSuffix names a blind index: field "name" gets "name_bidx".
	IndexSuffix = "_bidx"
)

var knownKeys = []string{"mode", "transit_key", "aad", "fields", "envelope_key", "dek", "dek_max_records", "dek_max_bytes", "dek_max_age", "index_key", "rewrapped_from", "legacy", "fetch_failed", "fetch_denied"}

// Parse builds a policy for topic from its section's key/value pairs
// (keys lower-case). Unknown keys are errors: a typo must not silently
// weaken protection.
func Parse(topic string, kv map[string]string) (*Policy, error) {
	if topic == "" {
		return nil, fmt.Errorf("%w: empty topic name", ErrInvalid)
	}
	for k := range kv {
		if !slices.Contains(knownKeys, k) {
			return nil, fmt.Errorf("%w: [policy:%s]: unknown key %q (known: %s)", ErrInvalid, topic, k, strings.Join(knownKeys, ", "))
		}
	}
	p := &Policy{Topic: topic, Mode: Fields, AAD: true}
	if m, ok := kv["mode"]; ok {
		p.Mode = RecordMode(strings.ToLower(strings.TrimSpace(m)))
	}
	switch p.Mode {
	case Fields, Envelope, Passthrough:
	default:
		return nil, fmt.Errorf("%w: [policy:%s]: mode %q is not fields, envelope or passthrough", ErrInvalid, topic, p.Mode)
	}
	key := strings.TrimSpace(kv["transit_key"])
	if key == "" {
		key = DefaultTransitKey
	}
	p.TransitKey = strings.ReplaceAll(key, "{topic}", topic)
	if strings.ContainsAny(p.TransitKey, "/?#% {}") {
		return nil, fmt.Errorf("%w: [policy:%s]: transit_key %q is not a valid key name", ErrInvalid, topic, p.TransitKey)
	}
	if a, ok := kv["aad"]; ok {
		b, err := parseBool(a)
		if err != nil {
			return nil, fmt.Errorf("%w: [policy:%s]: aad: %v", ErrInvalid, topic, err)
		}
		p.AAD = b
	}
	switch v := strings.ToLower(strings.TrimSpace(kv["legacy"])); v {
	case "", "refuse":
	case "accept":
		p.AcceptLegacy = true
	default:
		return nil, fmt.Errorf("%w: [policy:%s]: legacy %q is not accept or refuse", ErrInvalid, topic, v)
	}
	if err := p.parseEnvelope(kv); err != nil {
		return nil, err
	}
	var err error
	if p.FetchFailed, err = parseFetchRule(topic, "fetch_failed", kv["fetch_failed"], FetchStored); err != nil {
		return nil, err
	}
	if p.FetchDenied, err = parseFetchRule(topic, "fetch_denied", kv["fetch_denied"], FetchError); err != nil {
		return nil, err
	}
	fields, err := ParseFields(kv["fields"])
	if err != nil {
		return nil, fmt.Errorf("%w: [policy:%s]: %v", ErrInvalid, topic, err)
	}
	p.Fields = fields
	if err := p.parseIndex(kv); err != nil {
		return nil, err
	}
	switch p.Mode {
	case Fields:
		if len(p.Fields) == 0 {
			return nil, fmt.Errorf("%w: [policy:%s]: mode fields needs at least one entry in fields", ErrInvalid, topic)
		}
	case Passthrough, Envelope:
		if len(p.Fields) > 0 {
			return nil, fmt.Errorf("%w: [policy:%s]: fields is only used with mode = fields", ErrInvalid, topic)
		}
	}
	return p, nil
}

// parseFetchRule reads a fetch rule: stored, error, or def when empty.
func parseFetchRule(topic, key, v string, def FetchRule) (FetchRule, error) {
	switch r := FetchRule(strings.ToLower(strings.TrimSpace(v))); r {
	case "":
		return def, nil
	case FetchStored, FetchError:
		return r, nil
	}
	return "", fmt.Errorf("%w: [policy:%s]: %s %q is not stored or error", ErrInvalid, topic, key, v)
}

// parseIndex reads index_key and rewrapped_from, and checks that no blind
// index sibling (<name>_bidx) collides with a policy path.
func (p *Policy) parseIndex(kv map[string]string) error {
	key := strings.TrimSpace(kv["index_key"])
	if key == "" {
		key = DefaultIndexKey
	}
	p.IndexKey = strings.ReplaceAll(key, "{topic}", p.Topic)
	if strings.ContainsAny(p.IndexKey, "/?#% {}") {
		return fmt.Errorf("%w: [policy:%s]: index_key %q is not a valid key name", ErrInvalid, p.Topic, p.IndexKey)
	}
	p.RewrappedFrom = strings.FieldsFunc(kv["rewrapped_from"], func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
	for _, f := range p.Fields {
		if f.Options["index"] == "" {
			continue
		}
		sib := f.IndexPath()
		for _, g := range p.Fields {
			n := min(len(sib), len(g.Path))
			if slices.Equal(sib[:n], g.Path[:n]) {
				return fmt.Errorf("%w: [policy:%s]: the blind index of %s would be written at %s, which is (or overlaps) the policy field %s", ErrInvalid, p.Topic, f.PathString(), JoinPath(sib), g.PathString())
			}
		}
	}
	return nil
}

// IndexPath is where the blind index of an index=hmac field is stored: a
// sibling named <name>_bidx.
func (f Field) IndexPath() []string {
	out := slices.Clone(f.Path)
	out[len(out)-1] += IndexSuffix
	return out
}

func (p *Policy) parseEnvelope(kv map[string]string) error {
	e := EnvelopeOptions{Key: DefaultEnvelopeKEK, DEK: "cached", MaxRecords: 10000, MaxBytes: 64 << 20, MaxAge: 5 * time.Minute}
	if v := strings.TrimSpace(kv["envelope_key"]); v != "" {
		e.Key = strings.ReplaceAll(v, "{topic}", p.Topic)
	}
	if v := strings.TrimSpace(kv["dek"]); v != "" {
		e.DEK = strings.ToLower(v)
		if e.DEK != "cached" && e.DEK != "per-message" {
			return fmt.Errorf("%w: [policy:%s]: dek %q is not cached or per-message", ErrInvalid, p.Topic, v)
		}
	}
	if v := strings.TrimSpace(kv["dek_max_records"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: [policy:%s]: dek_max_records %q is not a positive integer", ErrInvalid, p.Topic, v)
		}
		e.MaxRecords = n
	}
	if v := strings.TrimSpace(kv["dek_max_bytes"]); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: [policy:%s]: dek_max_bytes %q is not a positive integer", ErrInvalid, p.Topic, v)
		}
		e.MaxBytes = n
	}
	if v := strings.TrimSpace(kv["dek_max_age"]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: [policy:%s]: dek_max_age %q is not a positive duration", ErrInvalid, p.Topic, v)
		}
		e.MaxAge = d
	}
	p.Envelope = e
	return nil
}

// ParseFields parses a fields list: entries separated by newlines or
// commas, each "<path> <mode> [opt=value ...]" or "<path>:<mode>".
func ParseFields(s string) ([]Field, error) {
	var out []Field
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		toks := strings.Fields(line)
		if len(toks) == 1 {
			path, mode, ok := cutLastUnescaped(toks[0], ':')
			if !ok {
				return nil, fmt.Errorf("field entry %q: want \"<path> <mode>\"", line)
			}
			toks = []string{path, mode}
		}
		path, err := SplitPath(toks[0])
		if err != nil {
			return nil, fmt.Errorf("field entry %q: %v", line, err)
		}
		f := Field{Path: path, Mode: FieldMode(strings.ToLower(toks[1])), Options: map[string]string{}}
		for _, opt := range toks[2:] {
			k, v, ok := strings.Cut(opt, "=")
			if !ok || k == "" || v == "" {
				return nil, fmt.Errorf("field %s: option %q: want name=value", toks[0], opt)
			}
			f.Options[strings.ToLower(k)] = v
		}
		if err := checkField(f); err != nil {
			return nil, fmt.Errorf("field %s: %v", toks[0], err)
		}
		out = append(out, f)
	}
	// No two fields may be the same or nested in each other.
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			a, b := out[i].Path, out[j].Path
			n := min(len(a), len(b))
			if slices.Equal(a[:n], b[:n]) {
				return nil, fmt.Errorf("fields %s and %s overlap", JoinPath(a), JoinPath(b))
			}
		}
	}
	return out, nil
}

var fpeFormats = []string{"full", "keep-bin-last4", "keep-bin-last4-no-luhn", "digits"}

func checkField(f Field) error {
	allowed := map[FieldMode][]string{
		Transit: {"index"},
		Plain:   nil,
		FPE:     {"format", "domain", "fallback", "default_version", "untweaked"},
	}
	opts, ok := allowed[f.Mode]
	if !ok {
		return fmt.Errorf("mode %q is not transit, fpe or plain", f.Mode)
	}
	for k, v := range f.Options {
		if !slices.Contains(opts, k) {
			return fmt.Errorf("mode %s has no option %q", f.Mode, k)
		}
		switch k {
		case "format":
			if !slices.Contains(fpeFormats, v) {
				return fmt.Errorf("format %q is not one of %s", v, strings.Join(fpeFormats, ", "))
			}
		case "fallback":
			if v != "full" && v != "none" {
				return fmt.Errorf("fallback %q is not full or none", v)
			}
		case "default_version":
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return fmt.Errorf("default_version %q is not a positive integer", v)
			}
		case "untweaked":
			if v != "accept" && v != "refuse" {
				return fmt.Errorf("untweaked %q is not accept or refuse", v)
			}
		case "index":
			if v != "hmac" {
				return fmt.Errorf("index %q: the only blind index is hmac", v)
			}
		}
	}
	if f.Mode == FPE {
		if f.Options["format"] == "" {
			f.Options["format"] = "full"
		}
		if f.Options["domain"] == "" {
			f.Options["domain"] = DefaultFPEDomain
		}
	}
	return nil
}

// SplitPath splits a dotted path; "\." is a literal dot and "\\" a
// backslash.
func SplitPath(s string) ([]string, error) {
	var (
		out []string
		cur strings.Builder
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '.' || s[i+1] == '\\'):
			cur.WriteByte(s[i+1])
			i++
		case c == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	out = append(out, cur.String())
	for _, p := range out {
		if p == "" {
			return nil, fmt.Errorf("path %q has an empty component", s)
		}
	}
	return out, nil
}

// JoinPath is the inverse of SplitPath.
// It is on the hot path (every encrypted field of every record), so it
// escapes by hand instead of building a strings.Replacer per call.
func JoinPath(p []string) string {
	if len(p) == 1 && !strings.ContainsAny(p[0], `\.`) {
		return p[0]
	}
	var b strings.Builder
	for i, c := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(c); j++ {
			if c[j] == '\\' || c[j] == '.' {
				b.WriteByte('\\')
			}
			b.WriteByte(c[j])
		}
	}
	return b.String()
}

func cutLastUnescaped(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (on/off)", s)
}

// Set holds the policies of all topics.
type Set struct {
	byTopic map[string]*Policy
}

// NewSet builds a set; a topic may appear once.
func NewSet(ps ...*Policy) (*Set, error) {
	s := &Set{byTopic: map[string]*Policy{}}
	for _, p := range ps {
		if _, dup := s.byTopic[p.Topic]; dup {
			return nil, fmt.Errorf("%w: two policies for topic %q", ErrInvalid, p.Topic)
		}
		s.byTopic[p.Topic] = p
	}
	return s, nil
}

// For returns topic's policy.
func (s *Set) For(topic string) (*Policy, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.byTopic[topic]
	return p, ok
}

// Topics lists the topics with a policy, sorted.
func (s *Set) Topics() []string {
	out := make([]string, 0, len(s.byTopic))
	for t := range s.byTopic {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// FPEDomains lists the distinct FPE key domains the policies' fpe fields
// use, sorted.
func (s *Set) FPEDomains() []string {
	var out []string
	for _, p := range s.byTopic {
		for _, f := range p.Fields {
			if f.Mode == FPE && !slices.Contains(out, f.Options["domain"]) {
				out = append(out, f.Options["domain"])
			}
		}
	}
	slices.Sort(out)
	return out
}

// TransitKeys lists the distinct transit keys the policies use, sorted.
func (s *Set) TransitKeys() []string {
	var out []string
	for _, p := range s.byTopic {
		if p.Mode != Fields {
			continue
		}
		for _, f := range p.Fields {
			if f.Mode == Transit && !slices.Contains(out, p.TransitKey) {
				out = append(out, p.TransitKey)
			}
		}
	}
	slices.Sort(out)
	return out
}
