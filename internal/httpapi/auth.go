package httpapi

// The access middleware: a request's bearer token or verified client
// certificate maps to a principal of the access file (package access),
// and each endpoint needs a right of it. The access file format is
// documented in docs/security.md ("Access control").

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/kafkagate/kafkagate/internal/access"
)

// ErrAccess wraps every access file and rights syntax error.
var ErrAccess = access.ErrAccess

// Right is something a principal may do.
type Right = access.Right

// The rights of the access file, by the endpoints that need them.
const (
	RightProduce = access.RightProduce // POST .../topics/{topic}/records and records:batch
	RightConsume = access.RightConsume // GET .../topics/{topic}/records and .../records:stream, the v2 consumer API
	RightAdmin   = access.RightAdmin   // /admin/..., /v3/admin/... and any endpoint not listed in docs/security.md
	RightMetrics = access.RightMetrics // /metrics
)

// Grant is one right; produce and consume name a topic pattern.
type Grant = access.Grant

// Principal is an authenticated caller.
type Principal = access.Principal

// ParseGrant parses one right: produce:<topic>, consume:<topic>, admin or
// metrics.
func ParseGrant(s string) (Grant, error) { return access.ParseGrant(s) }

// ParseGrants parses rights separated by spaces or commas.
func ParseGrants(s string) ([]Grant, error) { return access.ParseGrants(s) }

// CheckPrincipalName accepts 1–128 characters of letters, digits and
// ". _ - @".
func CheckPrincipalName(s string) error { return access.CheckPrincipalName(s) }

// TokenPrefix starts every token made by NewToken.
const TokenPrefix = access.TokenPrefix

// NewToken returns a fresh random bearer token and its hash in access file
// form.
func NewToken() (token, hash string, err error) { return access.NewToken() }

// HashToken is a token's form in the access file: sha256:<hex>.
func HashToken(token string) string { return access.HashToken(token) }

// TokenLine is the access file line of a token.
func TokenLine(hash, principal string, grants []Grant) string {
	return access.TokenLine(hash, principal, grants)
}

// anonymous is the principal of every request when authentication is off.
func anonymous() *Principal { return access.Anonymous() }

type principalKey struct{}

// PrincipalFrom returns the request's principal (set by the access
// middleware on every endpoint but /healthz and /readyz).
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Access is a parsed access file (package access) with the HTTP
// authentication on top. It is immutable and safe for concurrent use.
type Access struct {
	*access.Access
}

// LoadAccess reads an access file.
func LoadAccess(path string) (*Access, error) {
	a, err := access.Load(path)
	if err != nil {
		return nil, err
	}
	return &Access{a}, nil
}

// ParseAccess parses access file text. Errors name the line, never a
// token.
func ParseAccess(r io.Reader) (*Access, error) {
	a, err := access.Parse(r)
	if err != nil {
		return nil, err
	}
	return &Access{a}, nil
}

// Rules is the parsed access file, for the servers beside the API (the
// Kafka proxy); nil when a is nil (authentication off).
func (a *Access) Rules() *access.Access {
	if a == nil {
		return nil
	}
	return a.Access
}

func (a *Access) byToken(token string) *Principal { return a.ByToken(token) }

func (a *Access) byCert(c *x509.Certificate) *Principal { return a.ByCert(c) }

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
