package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrAccess wraps every access file and rights syntax error.
var ErrAccess = errors.New("access control")

// Right is something a principal may do.
type Right string

// The rights of the access file.
const (
	RightProduce Right = "produce" // write records to a topic
	RightConsume Right = "consume" // read a topic's records in clear
	RightAdmin   Right = "admin"   // administration, and anything not listed in docs/security.md
	RightMetrics Right = "metrics" // the metrics endpoint
)

// Grant is one right; produce and consume name a topic pattern.
type Grant struct {
	Right Right
	Topic string // a topic, "prefix*" or "*" for produce and consume; empty otherwise
}

func (g Grant) String() string {
	if g.Topic == "" {
		return string(g.Right)
	}
	return string(g.Right) + ":" + g.Topic
}

func (g Grant) allows(r Right, topic string) bool {
	if g.Right != r {
		return false
	}
	if r != RightProduce && r != RightConsume {
		return true
	}
	if topic == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(g.Topic, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return g.Topic == topic
}

// ParseGrant parses one right: produce:<topic>, consume:<topic>, admin or
// metrics.
func ParseGrant(s string) (Grant, error) {
	name, topic, hasTopic := strings.Cut(s, ":")
	switch r := Right(name); r {
	case RightProduce, RightConsume:
		if !hasTopic || topic == "" {
			return Grant{}, fmt.Errorf("%w: right %q needs a topic: %s:<topic>, %s:<prefix>* or %s:*", ErrAccess, s, r, r, r)
		}
		if err := CheckTopicPattern(topic); err != nil {
			return Grant{}, fmt.Errorf("%w: right %q: %v", ErrAccess, s, err)
		}
		return Grant{Right: r, Topic: topic}, nil
	case RightAdmin, RightMetrics:
		if hasTopic {
			return Grant{}, fmt.Errorf("%w: right %q: %s takes no topic", ErrAccess, s, r)
		}
		return Grant{Right: r}, nil
	}
	return Grant{}, fmt.Errorf("%w: unknown right %q (want produce:<topic>, consume:<topic>, admin or metrics)", ErrAccess, s)
}

// ParseGrants parses rights separated by spaces or commas.
func ParseGrants(s string) ([]Grant, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: no rights given", ErrAccess)
	}
	out := make([]Grant, 0, len(fields))
	for _, f := range fields {
		g, err := ParseGrant(f)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// CheckTopicPattern accepts Kafka topic names ([A-Za-z0-9._-], at most 249
// characters), optionally ending with "*", and "*" itself.
func CheckTopicPattern(p string) error {
	name := strings.TrimSuffix(p, "*")
	if len(name) > 249 {
		return errors.New("topic longer than 249 characters")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic pattern %q: a topic name has only letters, digits, '.', '_' and '-', and '*' only at the end", p)
		}
	}
	return nil
}

// CheckPrincipalName accepts 1–128 characters of letters, digits and
// ". _ - @".
func CheckPrincipalName(s string) error {
	if err := checkName(s); err != nil {
		return fmt.Errorf("%w: principal name %w", ErrAccess, err)
	}
	return nil
}

// checkName accepts 1–128 characters of letters, digits and ". _ - @":
// principal names and SASL usernames.
func checkName(s string) error {
	if s == "" || len(s) > 128 {
		return errors.New("must be 1 to 128 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return fmt.Errorf("%q: use letters, digits and . _ - @", s)
		}
	}
	return nil
}

// Principal is an authenticated caller.
type Principal struct {
	Name   string
	Method string // "token", "cert", "sasl", or "none" when authentication is off
	Grants []Grant
	all    bool // authentication is off: every right
}

// Can reports whether p holds right r (on topic, for produce and consume).
func (p *Principal) Can(r Right, topic string) bool {
	if p.all {
		return true
	}
	for _, g := range p.Grants {
		if g.allows(r, topic) {
			return true
		}
	}
	return false
}

// HoldsAny reports whether p holds right r on at least one topic (every
// right when authentication is off).
func (p *Principal) HoldsAny(r Right) bool {
	return p.all || slices.ContainsFunc(p.Grants, func(g Grant) bool { return g.Right == r })
}

// Anonymous is the principal of every caller when authentication is off:
// named "anonymous", with every right.
func Anonymous() *Principal { return &Principal{Name: "anonymous", Method: "none", all: true} }
