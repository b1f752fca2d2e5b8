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

// Route labels of requests that did not reach a route's handler.
const (
	RouteUnmatched       = "unmatched"       // no route matches the path and method
	RouteUnauthenticated = "unauthenticated" // refused before the principal was known
)

// instrument counts every request and its latency by route pattern (never
// the path, which holds topic names and ids), method and status. Every
// label value comes from a fixed set, so no request can add series at
// will: the method is one of MetricMethod's, the route a pattern of the
// router, RouteUnmatched or RouteUnauthenticated (a request refused by
// authentication, whatever path it asked for). It runs inside logRequests,
// whose slot tells it whether the access middleware found a principal.
func (s *Server) instrument(next http.Handler) http.Handler {
	if s.cfg.Metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		s.cfg.Metrics.ObserveHTTP(s.routeLabel(r), MetricMethod(r.Method), status, time.Since(start))
	})
}

// routeLabel is the request's route label (see instrument).
func (s *Server) routeLabel(r *http.Request) string {
	route := ""
	if rc := chi.RouteContext(r.Context()); rc != nil {
		route = rc.RoutePattern()
	}
	if route == "" {
		// Refused before routing (authentication, rate limit): find the
		// route it asked for.
		route = s.router.Find(chi.NewRouteContext(), r.Method, routePath(r))
	}
	if slot, ok := r.Context().Value(logSlotKey{}).(*logSlot); ok && !slot.known && (route == "" || !needFor(r.Method, route, "").open) {
		return RouteUnauthenticated
	}
	if route == "" {
		return RouteUnmatched
	}
	return route
}

// MetricMethod maps an HTTP method to a label value: the standard methods
// the API serves, or OTHER.
func MetricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// metrics serves /metrics (the metrics right, see auth.go); 404 when the
// gateway keeps no metrics.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeErr(w, newErr(CodeNotFound, "metrics are not enabled"))
		return
	}
	s.cfg.Metrics.Handler().ServeHTTP(w, r)
}
