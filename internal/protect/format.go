package protect

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/record"
)

// Format is the stored format of a record, as its headers describe it.
type Format string

// Record formats. Every read path (Decrypt, KeyUses, Rewrap, the viewer's
// inspector) learns a record's format from Classify, the one place where
// formats are told apart.
const (
	FormatPlain    Format = "plaintext" // no kafkagate header
	FormatFields   Format = "fields"    // kafkagate.fields: JSON fields encrypted in place
	FormatEnvelope Format = "record/1"  // kafkagate.format record/1: whole value under a data key
	FormatChunk    Format = "chunk/1"   // kafkagate.format chunk/1: one chunk of a file
	FormatLegacy   Format = "legacy"    // the original demo's file message (X-encryptionkey)
	FormatSealed   Format = "sealed"    // kafkagate.sealed: the whole value is a transit ciphertext
)

// CodeNotAllowed is the status of a record whose headers name a format,
// mode, key, AAD setting or FPE domain that its topic's policy does not
// allow. Such a record fails alone and is never sent to Vault.
const CodeNotAllowed = "not_allowed"

// CodeNotEncrypted is the status of a policy field that a record holds in
// clear: the record is never reported as decrypted.
const CodeNotEncrypted = "not_encrypted"

// ErrNotAllowed is the cause of every CodeNotAllowed failure.
var ErrNotAllowed = errors.New("not allowed by the topic's policy")

// Classified is what a record's headers claim, checked against the policy
// of the topic it was read from.
type Classified struct {
	Format Format
	// Policy is the reading topic's policy (nil when it has none).
	Policy *policy.Policy
	// Err, an *Error, is set when the record cannot be opened on its
	// topic: damaged headers (CodeBadHeader) or anything outside the
	// policy's allow-list (CodeNotAllowed). Nothing of it may reach Vault.
	Err error

	fields   record.FieldsHeader
	byPolicy bool   // fields derived from the policy (no header)
	sealedK  string // FormatSealed: the transit key
	kek      string // FormatEnvelope/Chunk: the KEK header (mount/key)
}

// Classify tells r's format from its headers and checks it against the
// policy of r.Topic: the policy decides, headers only describe.
//
//   - fields records open only on a fields topic, and only when every
//     listed field is a policy field with the policy's mode, transit key,
//     AAD setting, FPE domain and format;
//   - envelope records and file chunks open only on an envelope topic,
//     under the policy's KEK (or a rewrapped_from origin's);
//   - legacy records open only where the policy sets legacy = accept;
//   - sealed values open only with the transit key of the topic's policy,
//     or of the topic it is the dead-letter topic of (<topic>.dlq);
//   - a record carrying more than one kafkagate format is damaged.
func (e *Engine) Classify(r Record) Classified {
	var c Classified
	if e.policies != nil {
		c.Policy, _ = e.policies.For(r.Topic)
	}
	f, err := DetectFormat(r.Headers)
	c.Format = f
	if err != nil {
		c.Err = err
		return c
	}
	switch f {
	case FormatEnvelope, FormatChunk:
		c.classifyEnvelope(r, e.policies)
	case FormatLegacy:
		if c.Policy == nil || !c.Policy.AcceptLegacy {
			c.Err = notAllowed("legacy file records are not accepted on topic %q (its policy does not set legacy = accept)", r.Topic)
		}
	case FormatSealed:
		sv, _ := header(r.Headers, HeaderSealed)
		sh, err := record.DecodeSealedHeader(sv)
		if err != nil {
			c.Err = &Error{Code: CodeBadHeader, Msg: "kafkagate.sealed header: " + err.Error(), Err: err}
			return c
		}
		c.sealedK = sh.K
		if !slices.Contains(e.sealKeys(r.Topic), sh.K) {
			c.Err = notAllowed("a sealed value under key %q is not accepted on topic %q", sh.K, r.Topic)
		}
	case FormatFields:
		fv, _ := header(r.Headers, HeaderFields)
		h, err := decodeFieldsHeader(fv)
		if err != nil {
			c.Err = &Error{Code: CodeBadHeader, Msg: "kafkagate.fields header: " + err.Error(), Err: err}
			return c
		}
		c.fields = h
		c.Err = allowFields(c.Policy, h, r.Topic)
	default:
		h, ok, err := e.headerFromPolicy(r, c.Policy)
		switch {
		case err != nil:
			c.Err = err
		case ok:
			c.Format, c.fields, c.byPolicy = FormatFields, h, true
		}
	}
	return c
}

// DetectFormat is the format r's headers claim, without any policy: the
// viewer shows it, Classify checks it. A record claiming two formats, or
// with a damaged kafkagate.format header, is an *Error (bad_header).
func DetectFormat(hs []Header) (Format, error) {
	_, hasFields := header(hs, HeaderFields)
	_, hasSealed := header(hs, HeaderSealed)
	ef := envelopeFormat(hs)
	n := 0
	for _, b := range []bool{hasFields, hasSealed, ef != envelope.FormatNone} {
		if b {
			n++
		}
	}
	switch {
	case n > 1:
		return FormatPlain, &Error{Code: CodeBadHeader, Msg: "the record carries more than one kafkagate format"}
	case ef == envelope.FormatRecord:
		return FormatEnvelope, nil
	case ef == envelope.FormatChunk:
		return FormatChunk, nil
	case ef == envelope.FormatLegacy:
		return FormatLegacy, nil
	case hasSealed:
		return FormatSealed, nil
	case hasFields:
		return FormatFields, nil
	}
	return FormatPlain, nil
}

func notAllowed(format string, args ...any) *Error {
	return &Error{Code: CodeNotAllowed, Msg: fmt.Sprintf(format, args...), Err: ErrNotAllowed}
}

// classifyEnvelope checks an envelope record's or chunk's KEK against the
// topic's policy and the policies of the topics it accepts records from.
func (c *Classified) classifyEnvelope(r Record, ps *policy.Set) {
	kek, _ := header(r.Headers, envelope.HeaderKEK)
	c.kek = string(kek)
	if c.Policy == nil || c.Policy.Mode != policy.Envelope {
		c.Err = notAllowed("%s records are not accepted on topic %q (its policy is not mode = envelope)", c.Format, r.Topic)
		return
	}
	name := c.kek
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	allowed := []string{c.Policy.Envelope.Key}
	for _, t := range c.Policy.RewrappedFrom {
		if p, ok := ps.For(t); ok && p.Mode == policy.Envelope {
			allowed = append(allowed, p.Envelope.Key)
		}
	}
	if !slices.Contains(allowed, name) {
		c.Err = notAllowed("an envelope record under KEK %q is not accepted on topic %q", name, r.Topic)
	}
}

// allowFields checks every field a kafkagate.fields header lists against
// policy p: the same path, mode, transit key and AAD setting, FPE domain
// and format. Fields outside the list never reach Vault.
func allowFields(p *policy.Policy, h record.FieldsHeader, topic string) error {
	if p == nil || p.Mode != policy.Fields {
		return notAllowed("fields records are not accepted on topic %q (its policy is not mode = fields)", topic)
	}
	seen := make(map[string]bool, len(h.F))
	for _, hf := range h.F {
		if seen[hf.P] {
			return &Error{Code: CodeBadHeader, Field: hf.P, Msg: "kafkagate.fields header lists the field twice"}
		}
		seen[hf.P] = true
		pf, ok := p.Field(hf.P)
		if !ok {
			return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: "not a policy field of topic " + topic, Err: ErrNotAllowed}
		}
		if string(pf.Mode) != hf.M {
			return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: fmt.Sprintf("mode %q where the policy says %q", hf.M, pf.Mode), Err: ErrNotAllowed}
		}
		switch pf.Mode {
		case policy.Transit:
			if hf.K != p.TransitKey {
				return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: fmt.Sprintf("transit key %q where the policy says %q", hf.K, p.TransitKey), Err: ErrNotAllowed}
			}
			if (hf.A == 1) != p.AAD {
				return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: "associated data setting differs from the policy's", Err: ErrNotAllowed}
			}
		case policy.FPE:
			if hf.D != pf.Options["domain"] {
				return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: fmt.Sprintf("fpe domain %q where the policy says %q", hf.D, pf.Options["domain"]), Err: ErrNotAllowed}
			}
			if !fpeFormatAllowed(pf, hf.Fmt) {
				return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: fmt.Sprintf("fpe format %q is not the policy's", hf.Fmt), Err: ErrNotAllowed}
			}
			if hf.B != 1 && pf.Options["untweaked"] == "refuse" {
				return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: "fpe token not bound to its topic, and the policy refuses unbound tokens", Err: ErrNotAllowed}
			}
		default:
			return &Error{Code: CodeNotAllowed, Field: hf.P, Msg: fmt.Sprintf("mode %q carries no ciphertext", pf.Mode), Err: ErrNotAllowed}
		}
	}
	return nil
}

// fpeFormatAllowed reports whether a header's applied format (the mode
// actually used, possibly with ",fallback=full" in policy-derived headers)
// is one the policy field can produce.
func fpeFormatAllowed(pf policy.Field, applied string) bool {
	want := pf.Options["format"]
	if want == "" {
		want = "full"
	}
	mode, fb, hasFB := strings.Cut(applied, ",fallback=")
	if hasFB && (fb != "full" || pf.Options["fallback"] != "full") {
		return false
	}
	if mode == want {
		return true
	}
	// A keep mode with fallback=full encrypts short cards in mode full.
	return mode == "full" && pf.Options["fallback"] == "full"
}

// sealKeys are the transit keys a sealed (dead-letter) value may be under
// on topic: those of its own policy and of the topic it is the
// dead-letter topic of.
func (e *Engine) sealKeys(topic string) []string {
	if e.policies == nil {
		return nil
	}
	var keys []string
	for _, t := range []string{topic, strings.TrimSuffix(topic, ".dlq")} {
		if p, ok := e.policies.For(t); ok && p.Mode != policy.Passthrough {
			keys = append(keys, p.TransitKey)
		}
	}
	return keys
}
