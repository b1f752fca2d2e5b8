package httpapi

// Request limits that are not checked by the handlers themselves: the
// per-principal rate limit, the per-principal caps on concurrent
// long-lived requests (streams, uploads) and the deadline for reading a
// request body.
// Body size, records per request, record headers and JSON depth are
// checked where the body is parsed (produce.go, protect).

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per principal. Principals come from
// the access file (or are the single "anonymous"), so the map is bounded.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// newRateLimiter returns nil (no limit) when perSecond <= 0. burst
// defaults to max(1, ceil(perSecond)).
func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

func (rl *rateLimiter) bucket(principal string) *rate.Limiter {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b, ok := rl.buckets[principal]
	if !ok {
		b = rate.NewLimiter(rl.limit, rl.burst)
		rl.buckets[principal] = b
	}
	return b
}

// allow takes a token from principal's bucket, or says how long to wait.
func (rl *rateLimiter) allow(principal string) (bool, time.Duration) {
	now := rl.now()
	res := rl.bucket(principal).ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// rateLimit refuses a principal's requests over the limit with 429 and
// Retry-After (whole seconds, rounded up). Open endpoints (/healthz,
// /readyz) carry no principal and are not limited.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	if s.limiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := PrincipalFrom(r.Context()); ok && !s.Admit(w, r, p) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Admit takes a token from p's bucket of the API's rate limit, or answers
// 429 with Retry-After and returns false. Handlers served beside the API
// that authenticate themselves (the viewer's /ui/api) call it, so one
// principal's requests to both share one limit.
func (s *Server) Admit(w http.ResponseWriter, r *http.Request, p *Principal) bool {
	if s.limiter == nil {
		return true
	}
	ok, wait := s.limiter.allow(p.Name)
	if ok {
		return true
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	s.log.Warn("rate limited", "principal", p.Name, "retry_after_s", secs, "request_id", middleware.GetReqID(r.Context()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeErr(w, newErr(CodeRateLimited, "rate limit exceeded for principal "+p.Name+"; retry after "+strconv.Itoa(secs)+" s"))
	return false
}

// bodyDeadline bounds the time spent reading a request body by the request
// timeout: the timeout's context alone does not interrupt a client that
// trickles its body. Only requests that carry a body are affected.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			// Not every ResponseWriter supports deadlines (httptest's
			// recorder does not); the context timeout still applies then.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// principalSlots caps one principal's concurrent long-lived requests
// (streams, uploads). Entries are removed when a principal has none open,
// so the map holds only principals with open requests.
type principalSlots struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newPrincipalSlots(max int) *principalSlots {
	return &principalSlots{max: max, open: map[string]int{}}
}

// acquire takes one of principal's slots; release gives it back.
func (ps *principalSlots) acquire(principal string) (release func(), ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.open[principal] >= ps.max {
		return nil, false
	}
	ps.open[principal]++
	return func() {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if ps.open[principal]--; ps.open[principal] <= 0 {
			delete(ps.open, principal)
		}
	}, true
}

// principalName is the request's principal ("anonymous" with
// authentication off).
func principalName(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.Name
	}
	return anonymous().Name
}

// writeBusy answers 429 with Retry-After: too many concurrent requests.
func writeBusy(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Retry-After", RetryAfterSeconds)
	writeErr(w, newErr(code, msg))
}
