package httpapi

// Access control: bearer tokens and client certificates map to principals,
// each with rights per topic. The access file format is documented in
// docs/security.md ("Access control"):
//
//	# comment
//	token sha256:<64 hex digits> <principal> <right> [<right> ...]
//	cert  <subject>              <principal> <right> [<right> ...]
//
// Rights are produce:<topic>, consume:<topic> (a topic may be "*" or end
// with "*" for a prefix), admin and metrics. A subject is CN=<name>
// (matches the certificate's Common Name) or a whole subject in RFC 2253
// form, double-quoted when it holds spaces ("CN=Bridge 1,O=Acme").

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// ErrAccess wraps every access file and rights syntax error.
var ErrAccess = errors.New("access control")

// Right is something a principal may do.
type Right string

// The rights of the access file.
const (
	RightProduce Right = "produce" // POST .../topics/{topic}/records and records:batch
	RightConsume Right = "consume" // GET .../topics/{topic}/records and .../records:stream, the v2 consumer API
	RightAdmin   Right = "admin"   // /admin/..., /v3/admin/... and any endpoint not listed in docs/security.md
	RightMetrics Right = "metrics" // /metrics
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
		if err := checkTopicPattern(topic); err != nil {
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

// checkTopicPattern accepts Kafka topic names ([A-Za-z0-9._-], at most 249
// characters), optionally ending with "*", and "*" itself.
func checkTopicPattern(p string) error {
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
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%w: principal name must be 1 to 128 characters", ErrAccess)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return fmt.Errorf("%w: principal name %q: use letters, digits and . _ - @", ErrAccess, s)
		}
	}
	return nil
}

// Principal is an authenticated caller.
type Principal struct {
	Name   string
	Method string // "token", "cert", or "none" when authentication is off
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

// anonymous is the principal of every request when authentication is off.
func anonymous() *Principal { return &Principal{Name: "anonymous", Method: "none", all: true} }

type principalKey struct{}

// PrincipalFrom returns the request's principal (set by the access
// middleware on every endpoint but /healthz and /readyz).
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Access is a parsed access file. It is immutable and safe for concurrent
// use.
type Access struct {
	tokens []tokenEntry
	certs  []certEntry
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
func (a *Access) Principals() int { return len(a.tokens) + len(a.certs) }

// LoadAccess reads an access file.
func LoadAccess(path string) (*Access, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: access file: %w", ErrAccess, err)
	}
	defer f.Close()
	a, err := ParseAccess(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseAccess parses access file text. Errors name the line, never a
// token.
func ParseAccess(r io.Reader) (*Access, error) {
	a := &Access{}
	seenHash := map[[sha256.Size]byte]int{}
	seenCert := map[string]int{}
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
		if len(fields) < 4 {
			return nil, fmt.Errorf("%w: line %d: want `token sha256:<hex> <principal> <rights...>` or `cert <subject> <principal> <rights...>`", ErrAccess, n)
		}
		if err := CheckPrincipalName(fields[2]); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		p := &Principal{Name: fields[2], Method: fields[0]}
		for _, f := range fields[3:] {
			g, err := ParseGrant(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			p.Grants = append(p.Grants, g)
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
			// Not echoed: it may be a pasted token.
			return nil, fmt.Errorf("%w: line %d: a line starts with token or cert", ErrAccess, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: access file: %w", ErrAccess, err)
	}
	return a, nil
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

func parseTokenHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hx, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		// Never echo the field: it may be a token pasted by mistake.
		return h, errors.New("the token field must be sha256:<64 hex digits> (the hash printed by `gateway token new`, never the token itself)")
	}
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != sha256.Size {
		return h, errors.New("the token field must be sha256:<64 hex digits>")
	}
	copy(h[:], b)
	return h, nil
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

// TokenPrefix starts every token made by NewToken, so secret scanners can
// recognise them.
const TokenPrefix = "kgt_"

// NewToken returns a fresh random bearer token (256 bits) and its hash in
// access file form.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is a token's form in the access file: sha256:<hex>. SHA-256
// without salt suffices because tokens are 256-bit random values, not
// passwords.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:])
}

// TokenLine is the access file line of a token.
func TokenLine(hash, principal string, grants []Grant) string {
	parts := []string{"token", hash, principal}
	for _, g := range grants {
		parts = append(parts, g.String())
	}
	return strings.Join(parts, " ")
}

// byToken finds a token's principal. Every entry is compared, in constant
// time, whatever matches.
func (a *Access) byToken(token string) *Principal {
	h := sha256.Sum256([]byte(token))
	var found *Principal
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			found = a.tokens[i].p
		}
	}
	return found
}

// byCert finds a verified client certificate's principal: an exact
// subject entry first, else a CN entry.
func (a *Access) byCert(c *x509.Certificate) *Principal {
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

// authFailure is why a request could not be authenticated; challenge is
// the WWW-Authenticate value.
type authFailure struct {
	msg, challenge, reason string
}

// authenticate finds the request's principal. A bearer token, when sent,
// decides alone: an invalid token is refused even if a valid client
// certificate came with it. Only verified certificates count.
func (a *Access) authenticate(r *http.Request) (*Principal, *authFailure) {
	if hs := r.Header.Values("Authorization"); len(hs) > 0 {
		scheme, tok, ok := strings.Cut(hs[0], " ")
		tok = strings.TrimLeft(tok, " ")
		if len(hs) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
			return nil, &authFailure{msg: "malformed Authorization header: want `Authorization: Bearer <token>`",
				challenge: `Bearer realm="kafkagate", error="invalid_request"`, reason: "malformed authorization header"}
		}
		if p := a.byToken(tok); p != nil {
			return p, nil
		}
		return nil, &authFailure{msg: "invalid bearer token", challenge: `Bearer realm="kafkagate", error="invalid_token"`, reason: "unknown token"}
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if p := a.byCert(r.TLS.VerifiedChains[0][0]); p != nil {
			return p, nil
		}
		return nil, &authFailure{msg: "the client certificate's subject is not in the access file", challenge: `Bearer realm="kafkagate"`, reason: "unknown certificate subject"}
	}
	return nil, &authFailure{msg: "authentication required: send `Authorization: Bearer <token>` or a client certificate", challenge: `Bearer realm="kafkagate"`, reason: "no credentials"}
}

// need is what an endpoint requires.
type need struct {
	open  bool  // no authentication (probes)
	right Right // "" with open false: any authenticated principal
	topic string
}

// needFor maps a matched route pattern to what it requires. An endpoint
// that is not listed needs admin, so a route added without thought is
// closed rather than open. pattern is "" for unknown paths and methods:
// they need authentication only, then answer 404 or 405.
func needFor(method, pattern, topic string) need {
	switch {
	case pattern == "":
		return need{}
	case pattern == "/healthz" || pattern == "/readyz":
		return need{open: true}
	case pattern == "/metrics":
		return need{right: RightMetrics}
	case underPrefix(pattern, "/admin") || underPrefix(pattern, "/v3/admin"):
		return need{right: RightAdmin}
	case underPrefix(pattern, "/consumers"):
		// The v2 consumer API checks consume rights itself: any at
		// create, the topic's at subscribe and offsets (v2consumer.go).
		return need{}
	case pattern == "/v3/clusters" || pattern == "/v3/clusters/" || pattern == "/v3/clusters/{cluster_id}" || pattern == "/v3/clusters/{cluster_id}/":
		return need{}
	case strings.HasSuffix(pattern, "/topics/{topic}/records:stream"):
		return need{right: RightConsume, topic: topic}
	case strings.HasSuffix(pattern, "/topics/{topic}/files") && method == http.MethodPost:
		// A file upload produces the file's records to the topic.
		return need{right: RightProduce, topic: topic}
	case strings.HasSuffix(pattern, "/topics/{topic}/records") || strings.HasSuffix(pattern, "/topics/{topic}/records:batch"):
		switch method {
		case http.MethodPost:
			return need{right: RightProduce, topic: topic}
		case http.MethodGet, http.MethodHead:
			return need{right: RightConsume, topic: topic}
		}
	}
	return need{right: RightAdmin}
}

func underPrefix(pattern, prefix string) bool {
	return pattern == prefix || strings.HasPrefix(pattern, prefix+"/")
}

// routeNeed matches the request against the router the way chi will route
// it, so the topic checked is the topic the handler gets.
func (s *Server) routeNeed(r *http.Request) need {
	rctx := chi.NewRouteContext()
	pattern := s.router.Find(rctx, r.Method, routePath(r))
	return needFor(r.Method, pattern, rctx.URLParam("topic"))
}

// logSlot lets the access middleware hand the principal back to
// logRequests, which runs before it.
type logSlot struct {
	principal string
	known     bool // the access middleware found the principal
}

type logSlotKey struct{}

func withLogSlot(r *http.Request) (*http.Request, *logSlot) {
	slot := &logSlot{principal: "-"}
	return r.WithContext(context.WithValue(r.Context(), logSlotKey{}, slot)), slot
}

func setLogPrincipal(r *http.Request, name string) {
	if slot, ok := r.Context().Value(logSlotKey{}).(*logSlot); ok {
		slot.principal, slot.known = name, true
	}
}

// access authenticates the caller and checks the endpoint's right. With no
// Access configured every request is the principal "anonymous" with every
// right (the gateway then listens on loopback only).
func (s *Server) access(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nd := s.routeNeed(r)
		if nd.open {
			next.ServeHTTP(w, r)
			return
		}
		p := anonymous()
		if s.cfg.Access != nil {
			var fail *authFailure
			if p, fail = s.cfg.Access.authenticate(r); fail != nil {
				s.log.Warn("authentication failed", "reason", fail.reason, "method", r.Method, "path", r.URL.Path,
					"remote", r.RemoteAddr, "request_id", middleware.GetReqID(r.Context()))
				w.Header().Set("WWW-Authenticate", fail.challenge)
				writeErr(w, newErr(CodeUnauthenticated, fail.msg))
				return
			}
		}
		setLogPrincipal(r, p.Name)
		if nd.right != "" && !p.Can(nd.right, nd.topic) {
			want := Grant{Right: nd.right, Topic: nd.topic}
			s.log.Warn("access denied", "principal", p.Name, "needs", want.String(), "method", r.Method, "path", r.URL.Path,
				"request_id", middleware.GetReqID(r.Context()))
			writeErr(w, newErr(CodeForbidden, "principal "+p.Name+" lacks the right "+want.String()))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}
