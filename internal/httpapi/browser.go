package httpapi

// Browser guard: what keeps a web page the user happens to visit from
// using the gateway through the user's browser (cross-site request
// forgery, and DNS rebinding when authentication is off). The API and the
// viewer (ui) both serve behind it.
//
//   - A state-changing request (any method but GET, HEAD and OPTIONS)
//     must carry the body type of its endpoint: application/json (or a
//     +json type), or application/octet-stream for the file upload. A
//     page can send a cross-site form or text/plain body without asking,
//     but not these types: the browser first asks with a CORS preflight,
//     which the gateway never grants. A missing Content-Type is refused
//     too. 415.
//   - A state-changing request that a browser marks as cross-site
//     (Sec-Fetch-Site other than same-origin or none), or whose Origin is
//     not the gateway's own, is refused: 403, 40303.
//   - With authentication off, every request's Host must be a loopback
//     name (localhost, 127.0.0.0/8 or [::1], any port): a page whose name
//     was rebound to 127.0.0.1 sends its own name. 403, 40304.

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Error codes of the browser guard (docs/errors.md).
const (
	CodeCrossSite     = 40303 // a state-changing request from another site
	CodeHostNotLocal  = 40304 // authentication is off and Host is not a loopback name
	MediaJSON         = "application/json"
	MediaOctetStream  = "application/octet-stream"
	ContentTypeHeader = "Content-Type"
)

// BrowserGuard returns the guard middleware. authOff turns the Host check
// on. bodyType says which media type a state-changing request must carry
// (MediaJSON or MediaOctetStream); "" skips the Content-Type check (a
// route that does not exist, answered 404 or 405 by the handler).
func BrowserGuard(authOff bool, bodyType func(r *http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if authOff && !LoopbackHost(r.Host) {
				writeErr(w, newErr(CodeHostNotLocal, "authentication is off: the Host header must name this machine (localhost, 127.0.0.1 or [::1])"))
				return
			}
			if !StateChanging(r.Method) {
				next.ServeHTTP(w, r)
				return
			}
			if msg := crossSite(r); msg != "" {
				writeErr(w, newErr(CodeCrossSite, msg))
				return
			}
			if want := bodyType(r); want != "" {
				if e := checkContentType(r.Header.Get(ContentTypeHeader), want); e != nil {
					writeErr(w, e)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// StateChanging reports whether a request with this method may change
// state: every method but GET, HEAD and OPTIONS.
func StateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// crossSite says why a request comes from another site, or "".
func crossSite(r *http.Request) string {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return "cross-site request refused (header Sec-Fetch-Site: " + s + ")"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return "cross-site request refused (header Origin is not this gateway)"
		}
	}
	return ""
}

// checkContentType accepts want, or for MediaJSON any +json type.
func checkContentType(ct, want string) *apiError {
	msg := "header Content-Type must be " + want
	if ct == "" {
		return newErr(CodeContentType, msg+" (it is missing)")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != want && !(want == MediaJSON && strings.HasSuffix(mt, "+json"))) {
		return newErr(CodeContentType, msg)
	}
	return nil
}

// LoopbackHost reports whether a Host header names this machine:
// localhost, an address in 127.0.0.0/8 or ::1, with or without a port.
func LoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// bodyType is the API's body type for a request: application/octet-stream
// for the file upload, application/json for every other route, "" when no
// route matches.
func (s *Server) bodyType(r *http.Request) string {
	pattern := s.router.Find(chi.NewRouteContext(), r.Method, routePath(r))
	switch {
	case pattern == "":
		return ""
	case strings.HasSuffix(pattern, "/topics/{topic}/files"):
		return MediaOctetStream
	case r.Method == http.MethodDelete && underPrefix(pattern, "/consumers"):
		// A v2 DELETE carries no body, and no page can send DELETE
		// cross-site without a CORS preflight, which is never granted.
		return ""
	}
	return MediaJSON
}

// routePath is the path chi routes by.
func routePath(r *http.Request) string {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	if path == "" {
		path = "/"
	}
	return path
}
