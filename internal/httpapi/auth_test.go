package httpapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// fakeKafka serves the cluster id; it never holds records (these tests
// produce nothing: the gateway tests do, against real Vault and kfake).
type fakeKafka struct{}

func (fakeKafka) Produce(context.Context, []kafka.Message) ([]kafka.Delivery, error) {
	return nil, errors.New("fakeKafka: no produce in these tests")
}
func (fakeKafka) Read(context.Context, string, int32, int64, int) ([]kafka.Record, error) {
	return nil, nil
}
func (fakeKafka) ClusterID(context.Context) (string, error) { return "c1", nil }
func (fakeKafka) Ping(context.Context) error                { return nil }

type fakeVault struct{}

func (fakeVault) Health(context.Context) error { return nil }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustAccess(t *testing.T, text string) *Access {
	t.Helper()
	a, err := ParseAccess(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseAccessValid(t *testing.T) {
	a := mustAccess(t, `
# operators
token `+HashToken("kgt_alice")+` alice produce:purchases consume:purch* metrics
   token sha256:`+strings.ToUpper(HashToken("kgt_ops")[7:])+`   ops	admin
cert CN=bridge bridge produce:*
cert "CN=Bridge Two,O=Acme" bridge2 consume:orders

`)
	if a.Principals() != 4 {
		t.Fatalf("credentials: %d", a.Principals())
	}
	p := a.byToken("kgt_alice")
	if p == nil || p.Name != "alice" || p.Method != "token" {
		t.Fatalf("alice: %+v", p)
	}
	for _, c := range []struct {
		r     Right
		topic string
		want  bool
	}{
		{RightProduce, "purchases", true}, {RightProduce, "purchases2", false}, {RightConsume, "purchases_encrypted", true},
		{RightConsume, "orders", false}, {RightMetrics, "", true}, {RightAdmin, "", false}, {RightProduce, "", false},
	} {
		if got := p.Can(c.r, c.topic); got != c.want {
			t.Errorf("alice Can(%s, %q) = %v", c.r, c.topic, got)
		}
	}
	if a.byToken("kgt_alice ") != nil || a.byToken("") != nil || a.byToken("sha256:"+HashToken("kgt_alice")[7:]) != nil {
		t.Fatal("a near-miss or the hash itself authenticated")
	}
	if p := a.byToken("kgt_ops"); p == nil || !p.Can(RightAdmin, "") || p.Can(RightProduce, "x") {
		t.Fatalf("ops: %+v", p)
	}
}

func TestParseAccessErrors(t *testing.T) {
	h := HashToken("kgt_a")
	for _, c := range []struct{ name, text, want string }{
		{"plaintext token", "token kgt_secretvalue alice produce:x", "sha256:<64 hex digits>"},
		{"short hash", "token sha256:abcd alice produce:x", "sha256:<64 hex digits>"},
		{"no rights", "token " + h + " alice", "want `token"},
		{"unknown right", "token " + h + " alice write:x", `unknown right "write:x"`},
		{"produce without topic", "token " + h + " alice produce", "needs a topic"},
		{"admin with topic", "token " + h + " alice admin:x", "takes no topic"},
		{"bad topic", "token " + h + " alice produce:a/b", "topic name"},
		{"star inside", "token " + h + " alice produce:a*b", "topic name"},
		{"bad principal", "token " + h + " al/ice produce:x", "principal name"},
		{"duplicate hash", "token " + h + " a produce:x\ntoken " + h + " b produce:y", "line 3: same token hash as line 2"},
		{"duplicate cert", "cert CN=x a produce:x\ncert CN=x b produce:y", "line 3: same certificate subject as line 2"},
		{"unknown kind", "kgt_secretvalue x alice produce:x", "starts with token or cert"},
		{"unterminated quote", `cert "CN=x a produce:x`, "quoted"},
		{"trailing comment", "token " + h + " alice admin # ops", `unknown right "#"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAccess(strings.NewReader("# header\n" + c.text))
			if err == nil || !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "kgt_secretvalue") {
				t.Fatalf("error echoes a token: %v", err)
			}
		})
	}
}

func TestNeedFor(t *testing.T) {
	for _, c := range []struct {
		method, pattern, topic string
		want                   need
	}{
		{"GET", "/healthz", "", need{open: true}},
		{"GET", "/readyz", "", need{open: true}},
		{"GET", "/metrics", "", need{right: RightMetrics}},
		{"POST", "/v3/admin/keys/{key}/rotate", "", need{right: RightAdmin}},
		{"GET", "/admin/*", "", need{right: RightAdmin}},
		{"GET", "/v3/clusters", "", need{}},
		{"GET", "/v3/clusters/{cluster_id}/", "", need{}},
		{"POST", "/v3/clusters/{cluster_id}/topics/{topic}/records", "t", need{right: RightProduce, topic: "t"}},
		{"POST", "/v3/clusters/{cluster_id}/topics/{topic}/records:batch", "t", need{right: RightProduce, topic: "t"}},
		{"GET", "/v3/clusters/{cluster_id}/topics/{topic}/records", "t", need{right: RightConsume, topic: "t"}},
		{"GET", "/v3/clusters/{cluster_id}/topics/{topic}/records:stream", "t", need{right: RightConsume, topic: "t"}},
		{"POST", "/v3/clusters/{cluster_id}/topics/{topic}/records:stream", "t", need{right: RightConsume, topic: "t"}},
		{"DELETE", "/v3/clusters/{cluster_id}/topics/{topic}/records", "t", need{right: RightAdmin}},
		{"POST", "/v3/clusters/{cluster_id}/topics/{topic}/files", "t", need{right: RightProduce, topic: "t"}},
		{"GET", "/v3/clusters/{cluster_id}/topics/{topic}/files", "t", need{right: RightAdmin}},
		{"GET", "/v3/clusters/{cluster_id}/topics", "", need{right: RightAdmin}}, // unlisted: admin
		{"GET", "", "", need{}}, // unknown path: authentication, then 404
	} {
		if got := needFor(c.method, c.pattern, c.topic); got != c.want {
			t.Errorf("needFor(%s %s) = %+v, want %+v", c.method, c.pattern, got, c.want)
		}
	}
}

// authServer is an API with the given access file and extra routes for
// endpoints that other parts of kafkagate add (metrics, admin, stream).
func authServer(t *testing.T, a *Access, log io.Writer, rateLimit float64, burst int) *httptest.Server {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	s := New(Config{Kafka: fakeKafka{}, Vault: fakeVault{}, Access: a, RateLimit: rateLimit, RateBurst: burst,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	ok := func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		writeJSON(w, 200, map[string]string{"principal": p.Name})
	}
	s.router.Get("/metrics", ok)
	s.router.Post("/v3/admin/keys/{key}/rotate", ok)
	s.router.Get("/v3/clusters/{cluster_id}/topics/{topic}/records:stream", ok)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestAccessEndpoints checks the endpoints that need no Vault or Kafka
// records: probes open, cluster listing for any principal, metrics and
// admin by right, unknown paths only after authentication.
func TestAccessEndpoints(t *testing.T) {
	logs := &syncBuf{}
	srv := authServer(t, mustAccess(t, `
token `+HashToken("kgt_alice")+` alice produce:purchases
token `+HashToken("kgt_ops")+` ops metrics admin
`), logs, 0, 0)
	cases := []struct {
		name, method, path string
		hdr                http.Header
		status, code       int
		challenge          string
	}{
		{"healthz open", "GET", "/healthz", nil, 200, 0, ""},
		{"healthz open with a bad token", "GET", "/healthz", bearer("nope"), 200, 0, ""},
		{"clusters need a token", "GET", "/v3/clusters", nil, 401, CodeUnauthenticated, `Bearer realm="kafkagate"`},
		{"clusters with token", "GET", "/v3/clusters", bearer("kgt_alice"), 200, 0, ""},
		{"invalid token", "GET", "/v3/clusters", bearer("kgt_mallory"), 401, CodeUnauthenticated, `error="invalid_token"`},
		{"basic scheme", "GET", "/v3/clusters", http.Header{"Authorization": {"Basic YWxpY2U6eA=="}}, 401, CodeUnauthenticated, `error="invalid_request"`},
		{"bearer without token", "GET", "/v3/clusters", http.Header{"Authorization": {"Bearer"}}, 401, CodeUnauthenticated, `error="invalid_request"`},
		{"bearer with two words", "GET", "/v3/clusters", http.Header{"Authorization": {"Bearer kgt_alice extra"}}, 401, CodeUnauthenticated, `error="invalid_request"`},
		{"two authorization headers", "GET", "/v3/clusters", http.Header{"Authorization": {"Bearer kgt_alice", "Bearer kgt_alice"}}, 401, CodeUnauthenticated, `error="invalid_request"`},
		{"scheme is case-insensitive", "GET", "/v3/clusters", http.Header{"Authorization": {"bearer kgt_alice"}}, 200, 0, ""},
		{"metrics without right", "GET", "/metrics", bearer("kgt_alice"), 403, CodeForbidden, ""},
		{"metrics with right", "GET", "/metrics", bearer("kgt_ops"), 200, 0, ""},
		{"admin without right", "POST", "/v3/admin/keys/k/rotate", bearer("kgt_alice"), 403, CodeForbidden, ""},
		{"admin with right", "POST", "/v3/admin/keys/k/rotate", http.Header{"Authorization": {"Bearer kgt_ops"}, "Content-Type": {"application/json"}}, 200, 0, ""},
		{"unknown path unauthenticated", "GET", "/nope", nil, 401, CodeUnauthenticated, "Bearer"},
		{"unknown path authenticated", "GET", "/nope", bearer("kgt_alice"), 404, CodeNotFound, ""},
		{"read without consume", "GET", "/v3/clusters/c1/topics/purchases/records", bearer("kgt_alice"), 403, CodeForbidden, ""},
		{"stream without consume", "GET", "/v3/clusters/c1/topics/purchases/records:stream", bearer("kgt_alice"), 403, CodeForbidden, ""},
		{"produce elsewhere", "POST", "/v3/clusters/c1/topics/orders/records", bearer("kgt_alice"), 403, CodeForbidden, ""},
		{"escaped topic is the routed topic", "POST", "/v3/clusters/c1/topics/purchases%2Fx/records", bearer("kgt_alice"), 403, CodeForbidden, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := do(t, c.method, srv.URL+c.path, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.code != 0 {
				var e apiError
				if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode != c.code || e.Message == "" {
					t.Fatalf("body %s, want error_code %d", b, c.code)
				}
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) || (c.status == 401) != (got != "") {
				t.Fatalf("WWW-Authenticate %q, want it to contain %q", got, c.challenge)
			}
		})
	}
	l := logs.String()
	for _, tok := range []string{"kgt_alice", "kgt_ops", "kgt_mallory", "YWxpY2U6eA=="} {
		if strings.Contains(l, tok) {
			t.Fatalf("log holds the credential %q:\n%s", tok, l)
		}
	}
	if !strings.Contains(l, `path=/metrics status=200 principal=ops`) || !strings.Contains(l, `path=/v3/clusters status=401 principal=-`) {
		t.Fatalf("request log lines lack principals:\n%s", l)
	}
}

// TestAuthOffIsAnonymous: without an access file every endpoint is open
// and the principal is "anonymous" with every right.
func TestAuthOffIsAnonymous(t *testing.T) {
	srv := authServer(t, nil, nil, 0, 0)
	for _, path := range []string{"/v3/clusters", "/metrics"} {
		resp, b := do(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	resp, b := do(t, "GET", srv.URL+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"principal":"anonymous"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestRateLimit(t *testing.T) {
	srv := authServer(t, mustAccess(t, `
token `+HashToken("kgt_alice")+` alice metrics
token `+HashToken("kgt_bob")+` bob metrics
`), nil, 1, 2)
	get := func(tok string) (*http.Response, []byte) { return do(t, "GET", srv.URL+"/metrics", bearer(tok)) }
	for i := 0; i < 2; i++ {
		if resp, b := get("kgt_alice"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, b)
		}
	}
	resp, b := get("kgt_alice")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: %d %s", resp.StatusCode, b)
	}
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode != CodeRateLimited {
		t.Fatalf("body %s", b)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// Another principal has its own bucket; probes are never limited.
	if resp, _ := get("kgt_bob"); resp.StatusCode != 200 {
		t.Fatalf("bob limited by alice's use: %d", resp.StatusCode)
	}
	for i := 0; i < 5; i++ {
		if resp, _ := do(t, "GET", srv.URL+"/healthz", nil); resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}
	time.Sleep(time.Duration(ra) * time.Second)
	if resp, b := get("kgt_alice"); resp.StatusCode != 200 {
		t.Fatalf("after Retry-After: %d %s", resp.StatusCode, b)
	}
}

func TestNewToken(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, _, _ := NewToken()
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) < 40 || tok == tok2 || hash != HashToken(tok) || strings.Contains(hash, tok) {
		t.Fatalf("token %q hash %q", tok, hash)
	}
	gs, err := ParseGrants("produce:purchases, consume:*  metrics")
	if err != nil {
		t.Fatal(err)
	}
	line := TokenLine(hash, "svc", gs)
	if line != "token "+hash+" svc produce:purchases consume:* metrics" {
		t.Fatalf("line %q", line)
	}
	if a := mustAccess(t, line); a.byToken(tok) == nil {
		t.Fatal("the printed line does not authenticate its token")
	}
}

// TestSecurityDocExample parses the access file example of
// docs/security.md, so the documented format is the implemented one.
func TestSecurityDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### Access file")
	_, block, ok2 := strings.Cut(after, "```text\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/security.md lacks the access file example")
	}
	a := mustAccess(t, block)
	if a.Principals() != 5 || a.Certs() != 2 {
		t.Fatalf("example has %d credentials", a.Principals())
	}
	reader := &x509.Certificate{Subject: pkix.Name{CommonName: "Reader One", Organization: []string{"Acme"}}}
	if p := a.byCert(reader); p == nil || p.Name != "reader" || !p.Can(RightConsume, "anything") || p.Can(RightProduce, "anything") {
		t.Fatalf("reader: %+v", p)
	}
}
