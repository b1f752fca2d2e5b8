package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Metrics is what the API reports to and serves at /metrics (the metrics
// package's *Metrics).
type Metrics interface {
	// ObserveHTTP counts one request by route pattern ("" when no route
	// matched), method and status.
	ObserveHTTP(route, method string, status int, d time.Duration)
	// Handler serves the metrics.
	Handler() http.Handler
}

// instrument counts every request and its latency by route pattern (never
// the path, which holds topic names and ids) and status. It runs outside
// access control, so refused requests are counted too.
func (s *Server) instrument(next http.Handler) http.Handler {
	if s.cfg.Metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		if route == "" {
			// Refused before routing (authentication, rate limit): find
			// the route it asked for.
			path := r.URL.RawPath
			if path == "" {
				path = r.URL.Path
			}
			route = s.router.Find(chi.NewRouteContext(), r.Method, path)
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		s.cfg.Metrics.ObserveHTTP(route, r.Method, status, time.Since(start))
	})
}

// metrics serves /metrics (the metrics right, see auth.go); 404 when the
// gateway keeps no metrics.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeErr(w, newErr(40400, "metrics are not enabled"))
		return
	}
	s.cfg.Metrics.Handler().ServeHTTP(w, r)
}
