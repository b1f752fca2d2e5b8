package access

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Access is a parsed access file. It is immutable and safe for concurrent
// use.
type Access struct {
	tokens []tokenEntry
	certs  []certEntry
	sasl   map[string]*SASLUser
}

type tokenEntry struct {
	hash [sha256.Size]byte
	p    *Principal
}

type certEntry struct {
	subject string // CN value when cnOnly, else the RFC 2253 subject
	cnOnly  bool
	p       *Principal
}

// Principals is the number of credentials (lines) in the file.
func (a *Access) Principals() int { return len(a.tokens) + len(a.certs) + len(a.sasl) }

// Certs is the number of certificate subject lines.
func (a *Access) Certs() int { return len(a.certs) }

// Load reads an access file.
func Load(path string) (*Access, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: access file: %w", ErrAccess, err)
	}
	defer f.Close()
	a, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Parse parses access file text. Errors name the line, never a token or
// a credential.
func Parse(r io.Reader) (*Access, error) {
	a := &Access{sasl: map[string]*SASLUser{}}
	seenHash := map[[sha256.Size]byte]int{}
	seenCert := map[string]int{}
	seenUser := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields, err := splitFields(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrAccess, n, err)
		}
		if fields[0] == "sasl" {
			u, err := parseSASLLine(fields)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if prev, dup := seenUser[u.Username]; dup {
				return nil, fmt.Errorf("%w: line %d: same SASL username as line %d", ErrAccess, n, prev)
			}
			seenUser[u.Username] = n
			a.sasl[u.Username] = u
			continue
		}
		if len(fields) < 4 {
			return nil, fmt.Errorf("%w: line %d: want `token sha256:<hex> <principal> <rights...>`, `cert <subject> <principal> <rights...>` or `sasl <username> <credentials> <principal> <rights...>`", ErrAccess, n)
		}
		p, err := parsePrincipal(fields[0], fields[2], fields[3:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		switch fields[0] {
		case "token":
			h, err := parseTokenHash(fields[1])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrAccess, n, err)
			}
			if prev, dup := seenHash[h]; dup {
				return nil, fmt.Errorf("%w: line %d: same token hash as line %d", ErrAccess, n, prev)
			}
			seenHash[h] = n
			a.tokens = append(a.tokens, tokenEntry{hash: h, p: p})
		case "cert":
			e, err := parseSubject(fields[1])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrAccess, n, err)
			}
			e.p = p
			k := strconv.FormatBool(e.cnOnly) + "\x00" + e.subject
			if prev, dup := seenCert[k]; dup {
				return nil, fmt.Errorf("%w: line %d: same certificate subject as line %d", ErrAccess, n, prev)
			}
			seenCert[k] = n
			a.certs = append(a.certs, e)
		default:
			// Not echoed: it may be a pasted token or password.
			return nil, fmt.Errorf("%w: line %d: a line starts with token or cert (or sasl, for a Kafka SASL user)", ErrAccess, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: access file: %w", ErrAccess, err)
	}
	return a, nil
}

// parsePrincipal checks a line's principal name and rights.
func parsePrincipal(method, name string, rights []string) (*Principal, error) {
	if err := CheckPrincipalName(name); err != nil {
		return nil, err
	}
	p := &Principal{Name: name, Method: method}
	for _, f := range rights {
		g, err := ParseGrant(f)
		if err != nil {
			return nil, err
		}
		p.Grants = append(p.Grants, g)
	}
	return p, nil
}

// splitFields splits on blanks; a field may be double-quoted (Go syntax).
func splitFields(line string) ([]string, error) {
	var out []string
	for line = strings.TrimLeft(line, " \t"); line != ""; line = strings.TrimLeft(line, " \t") {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, errors.New("unterminated or invalid quoted field")
			}
			s, _ := strconv.Unquote(q)
			out = append(out, s)
			line = line[len(q):]
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				return nil, errors.New("a quoted field must be followed by a blank")
			}
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	return out, nil
}

func parseSubject(s string) (certEntry, error) {
	if s == "" || strings.ContainsAny(s, "\x00\r\n") {
		return certEntry{}, errors.New("empty or invalid certificate subject")
	}
	if cn, ok := strings.CutPrefix(s, "CN="); ok && !strings.ContainsAny(cn, ",+\\") {
		if cn == "" {
			return certEntry{}, errors.New("empty CN")
		}
		return certEntry{subject: cn, cnOnly: true}, nil
	}
	if !strings.Contains(s, "=") {
		return certEntry{}, fmt.Errorf("certificate subject %q: want CN=<name> or an RFC 2253 subject such as \"CN=bridge,O=Acme\"", s)
	}
	return certEntry{subject: s}, nil
}

// ByToken finds a bearer token's principal, or nil. Every entry is
// compared, in constant time, whatever matches.
func (a *Access) ByToken(token string) *Principal {
	h := sha256.Sum256([]byte(token))
	var found *Principal
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			found = a.tokens[i].p
		}
	}
	return found
}

// ByCert finds a verified client certificate's principal, or nil: an
// exact subject entry first, else a CN entry. The caller verifies the
// certificate (the TLS handshake does).
func (a *Access) ByCert(c *x509.Certificate) *Principal {
	subject := c.Subject.String()
	for _, e := range a.certs {
		if !e.cnOnly && e.subject == subject {
			return e.p
		}
	}
	for _, e := range a.certs {
		if e.cnOnly && e.subject == c.Subject.CommonName {
			return e.p
		}
	}
	return nil
}

// ByConn finds the principal of a TLS connection's verified client
// certificate (see ByCert), or nil when the client sent none or the
// handshake did not verify it.
func (a *Access) ByConn(cs tls.ConnectionState) *Principal {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return a.ByCert(cs.VerifiedChains[0][0])
}
