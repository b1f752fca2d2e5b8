package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// setupWith is setup with extra [kafkagate] keys and a log sink; it
// serves the API through httptest unless noServer.
// serveUntilCleanup serves f's gateway on l until t ends, then checks that
// Serve returned no error.
func serveUntilCleanup(t *testing.T, f *fixture, l net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.gw.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// accessToken returns a new API token and its access-file line, "token",
// the token's hash and then rest.
func accessToken(t *testing.T, rest string) (token, line string) {
	t.Helper()
	token, _, err := httpapi.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return token, "token " + httpapi.HashToken(token) + " " + rest
}

// accessFile writes lines to an access file in a temporary directory and
// returns its path.
func accessFile(t *testing.T, lines ...string) string {
	t.Helper()
	return testkit.WriteFile(t, t.TempDir(), "access", strings.Join(lines, "\n")+"\n")
}

func setupWith(t *testing.T, kafkagateKeys string, logw io.Writer, noServer bool) *fixture {
	t.Helper()
	env := testkit.Start(t)
	if logw == nil {
		logw = io.Discard
	}
	o := server.Options{
		Config: testkit.Config(t, testConfig+"\n[kafkagate]\n"+kafkagateKeys),
		Vault:  testkit.RootVault(env, 3*time.Second),
		Logger: slog.New(slog.NewTextHandler(logw, nil)),
	}
	if noServer {
		gw := testkit.Gateway(t, env, o)
		return &fixture{env: env, gw: gw, cid: testkit.ClusterID(t, gw)}
	}
	return serve(t, env, o)
}

// TestTokenAccessMatrix produces and reads through real Vault and Kafka
// with bearer tokens: the right principal gets 200, everyone else 401 or
// 403 and writes nothing; the log names principals and never a token.
func TestTokenAccessMatrix(t *testing.T) {
	alice, _, err := httpapi.NewToken() // produce:purchases consume:purchases
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := httpapi.NewToken()   // consume:purchases only
	carol, _, _ := httpapi.NewToken() // produce:oth* (prefix)
	mallory, _, _ := httpapi.NewToken()
	dir := t.TempDir()
	access := testkit.WriteFile(t, dir, "access", strings.Join([]string{
		"# kafkagate access file",
		"token " + httpapi.HashToken(alice) + " alice produce:purchases consume:purchases",
		"token " + httpapi.HashToken(bob) + " bob consume:purchases",
		"token " + httpapi.HashToken(carol) + " carol produce:oth*",
	}, "\n"))
	logs := &testkit.SyncBuffer{}
	f := setupWith(t, "access_file = "+access, logs, false)
	body := produceBody(purchase)
	cases := []struct {
		name, method, topic, auth string
		status, code              int
	}{
		{"alice produces purchases", "POST", "purchases", "Bearer " + alice, 200, 200},
		{"alice may not produce other", "POST", "other", "Bearer " + alice, 403, httpapi.CodeForbidden},
		{"bob may not produce (consume only)", "POST", "purchases", "Bearer " + bob, 403, httpapi.CodeForbidden},
		{"carol produces other by prefix", "POST", "other", "Bearer " + carol, 200, 200},
		{"carol may not produce purchases", "POST", "purchases", "Bearer " + carol, 403, httpapi.CodeForbidden},
		{"carol may not read other (no consume)", "GET", "other", "Bearer " + carol, 403, httpapi.CodeForbidden},
		{"bob reads purchases", "GET", "purchases", "Bearer " + bob, 200, 0},
		{"bob may not read other", "GET", "other", "Bearer " + bob, 403, httpapi.CodeForbidden},
		{"missing credentials", "POST", "purchases", "", 401, httpapi.CodeUnauthenticated},
		{"invalid token", "POST", "purchases", "Bearer " + mallory, 401, httpapi.CodeUnauthenticated},
		{"the hash is not a token", "POST", "purchases", "Bearer " + httpapi.HashToken(alice), 401, httpapi.CodeUnauthenticated},
		{"malformed header", "POST", "purchases", "Token " + alice, 401, httpapi.CodeUnauthenticated},
		{"bearer without token", "POST", "purchases", "Bearer ", 401, httpapi.CodeUnauthenticated},
		{"batch needs produce", "POST", "purchases:batch", "Bearer " + bob, 403, httpapi.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, url := "", f.url(c.topic)
			if c.method == "POST" {
				b = body
			}
			if topic, ok := strings.CutSuffix(c.topic, ":batch"); ok {
				b, url = `{"entries":[{"id":"1","value":{"type":"JSON","data":{"Name":"x"}}}]}`, f.url(topic)+":batch"
			}
			resp, rb := testkit.Do(t, http.DefaultClient, c.method, url, c.auth, b)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, rb)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if c.code != 0 {
				var e errBody
				if err := json.Unmarshal(rb, &e); err != nil || e.ErrorCode != c.code {
					t.Fatalf("error_code %d, want %d: %s", e.ErrorCode, c.code, rb)
				}
			}
		})
	}
	if n := len(f.raw(t, "purchases")); n != 1 {
		t.Errorf("purchases holds %d records, want 1 (alice's)", n)
	}
	if n := len(f.raw(t, "other")); n != 1 {
		t.Errorf("other holds %d records, want 1 (carol's)", n)
	}
	// Probes stay open.
	if resp, _ := testkit.Do(t, http.DefaultClient, "GET", f.srv.URL+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	l := logs.String()
	for name, tok := range map[string]string{"alice": alice, "bob": bob, "carol": carol, "mallory": mallory} {
		if strings.Contains(l, tok) || strings.Contains(l, tok[len(httpapi.TokenPrefix):]) {
			t.Fatalf("the log holds %s's token", name)
		}
	}
	for _, want := range []string{
		`path=/v3/clusters/` + f.cid + `/topics/purchases/records status=200 principal=alice`,
		`path=/v3/clusters/` + f.cid + `/topics/other/records status=200 principal=carol`,
		`msg="access denied" principal=bob needs=produce:purchases`,
		`msg="authentication failed" reason="unknown token"`,
	} {
		if !strings.Contains(l, want) {
			t.Fatalf("log lacks %q:\n%s", want, l)
		}
	}
}

// TestMutualTLS serves over TLS with client certificates required: a
// certificate of the configured CA maps to its principal by subject; one
// from another CA, or none, fails the handshake.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	tt := testkit.ServerTLS(t, dir, "kafkagate test CA", "gateway", "server")
	ca, certPath, keyPath, caPath := tt.CA, tt.Cert, tt.Key, tt.CAFile
	rogue, err := devenv.NewTestCA("kafkagate test CA") // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	bridge := testkit.ClientCert(t, ca, pkix.Name{CommonName: "bridge"})
	reader := testkit.ClientCert(t, ca, pkix.Name{CommonName: "Reader One", Organization: []string{"Acme"}})
	stranger := testkit.ClientCert(t, ca, pkix.Name{CommonName: "stranger"})
	rogueBridge := testkit.ClientCert(t, rogue, pkix.Name{CommonName: "bridge"})
	alice, _, _ := httpapi.NewToken()
	access := testkit.WriteFile(t, dir, "access", strings.Join([]string{
		"cert CN=bridge bridge produce:purchases",
		`cert "CN=Reader One,O=Acme" reader consume:*`,
		"token " + httpapi.HashToken(alice) + " alice consume:purchases",
	}, "\n"))
	f := setupWith(t, strings.Join([]string{
		"access_file = " + access, "tls_cert = " + certPath, "tls_key = " + keyPath, "tls_client_ca = " + caPath,
	}, "\n"), nil, true)
	tc, err := server.ServerTLS(f.gw.Settings)
	if err != nil {
		t.Fatal(err)
	}
	l, err := server.ListenTLS("127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, f, l)
	base := "https://" + l.Addr().String()
	f.srv = &httptest.Server{URL: base}
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs},
		}}
	}
	body := produceBody(purchase)
	if resp, b := testkit.Do(t, client(bridge), "POST", f.url("purchases"), "", body); resp.StatusCode != 200 {
		t.Fatalf("bridge produce: %d %s", resp.StatusCode, b)
	}
	if resp, b := testkit.Do(t, client(bridge), "GET", f.url("purchases"), "", ""); resp.StatusCode != 403 {
		t.Fatalf("bridge read (no consume right): %d %s", resp.StatusCode, b)
	}
	if resp, b := testkit.Do(t, client(reader), "GET", f.url("purchases")+"?partition=0", "", ""); resp.StatusCode != 200 {
		t.Fatalf("reader read: %d %s", resp.StatusCode, b)
	}
	if resp, b := testkit.Do(t, client(reader), "POST", f.url("purchases"), "", body); resp.StatusCode != 403 {
		t.Fatalf("reader produce: %d %s", resp.StatusCode, b)
	}
	resp, b := testkit.Do(t, client(stranger), "POST", f.url("purchases"), "", body)
	var e errBody
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode != 401 || e.ErrorCode != httpapi.CodeUnauthenticated {
		t.Fatalf("stranger (trusted CA, unknown subject): %d %s", resp.StatusCode, b)
	}
	// A token, when sent, decides: bridge's certificate with alice's token
	// is alice, who may read but not produce.
	if resp, b := testkit.Do(t, client(bridge), "POST", f.url("purchases"), "Bearer "+alice, body); resp.StatusCode != 403 {
		t.Fatalf("bridge certificate with alice's token: %d %s", resp.StatusCode, b)
	}
	for name, c := range map[string]*http.Client{"rogue CA": client(rogueBridge), "no certificate": client()} {
		req, _ := http.NewRequest("POST", f.url("purchases"), strings.NewReader(body))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: got HTTP %d, want a TLS handshake failure", name, resp.StatusCode)
		}
		var tlsAlert tls.AlertError
		if !errors.As(err, &tlsAlert) && !strings.Contains(err.Error(), "tls") {
			t.Fatalf("%s: %v, want a TLS error", name, err)
		}
	}
	if n := len(f.raw(t, "purchases")); n != 1 {
		t.Fatalf("purchases holds %d records, want 1 (bridge's)", n)
	}
}

// TestConfiguredLimits sets low limits in [kafkagate] and checks each
// refusal's code and that nothing reaches Kafka.
func TestConfiguredLimits(t *testing.T) {
	f := setupWith(t, strings.Join([]string{
		"max_body_bytes = 2048", "max_json_depth = 4", "max_records = 2", "max_headers = 2", "max_header_bytes = 16", "request_timeout = 5s",
		// Seven requests, then one token per 100 s.
		"rate_limit = 0.01", "rate_burst = 7",
	}, "\n"), nil, false)
	nest := func(n int) string { return strings.Repeat(`{"a":`, n-1) + `{"Name":"x"}` + strings.Repeat(`}`, n-1) }
	hdr := func(n int, name string) string {
		var hs []string
		for i := 0; i < n; i++ {
			hs = append(hs, `{"name":"`+name+string(rune('a'+i))+`","value":"YWJj"}`)
		}
		return `{"headers":[` + strings.Join(hs, ",") + `],"value":{"type":"JSON","data":{"Name":"x"}}}`
	}
	cases := []struct {
		name, body   string
		status, code int
		field        string
	}{
		{"body over max_body_bytes", `{"value":{"type":"JSON","data":{"Name":"` + strings.Repeat("x", 2100) + `"}}}`, 413, httpapi.CodeBodyTooLarge, ""},
		{"value deeper than max_json_depth", `{"value":{"type":"JSON","data":` + nest(5) + `}}`, 200, httpapi.CodeTooDeep, ""},
		// max_records bounds a batch; a stream has no total cap.
		{"batch with more entries than max_records", `{"entries":[` + strings.Join([]string{`{"id":"a","value":{"type":"JSON","data":{"Name":"x"}}}`, `{"id":"b","value":{"type":"JSON","data":{"Name":"x"}}}`, `{"id":"c","value":{"type":"JSON","data":{"Name":"x"}}}`}, ",") + `]}`, 422, httpapi.CodeBatchInvalid, "entries"},
		{"more headers than max_headers", hdr(3, "h"), 200, httpapi.CodeBadRequestField, "headers"},
		{"header over max_header_bytes", hdr(1, strings.Repeat("n", 20)), 200, httpapi.CodeBadRequestField, "headers[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := f.url("purchases")
			if strings.HasPrefix(c.name, "batch") {
				u += ":batch"
			}
			resp, b := f.post(t, u, "application/json", c.body)
			var e errBody
			_ = json.Unmarshal(b, &e)
			if resp.StatusCode != c.status || e.ErrorCode != c.code || e.Field != c.field {
				t.Fatalf("got %d %s, want %d error_code %d field %q", resp.StatusCode, b, c.status, c.code, c.field)
			}
		})
	}
	if n := len(f.raw(t, "purchases")); n != 0 {
		t.Fatalf("refused requests produced %d records", n)
	}
	// At the limits, the same shapes are accepted.
	ok := `{"value":{"type":"JSON","data":` + nest(4) + `}}` + hdr(2, "h")
	if resp, b := f.post(t, f.url("purchases"), "application/json", ok); resp.StatusCode != 200 || strings.Count(string(b), `"error_code":200`) != 2 {
		t.Fatalf("records within the limits: %d %s", resp.StatusCode, b)
	}
	if n := len(f.raw(t, "purchases")); n != 2 {
		t.Fatalf("purchases holds %d records, want 2", n)
	}
	// Six requests so far; the seventh is the last of the burst.
	if resp, b := testkit.Do(t, http.DefaultClient, "GET", f.srv.URL+"/v3/clusters", "", ""); resp.StatusCode != 200 {
		t.Fatalf("request 7: %d %s", resp.StatusCode, b)
	}
	resp, b := f.post(t, f.url("purchases"), "application/json", `{"value":{"type":"JSON","data":{"Name":"x"}}}`)
	var e errBody
	_ = json.Unmarshal(b, &e)
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || e.ErrorCode != httpapi.CodeRateLimited || ra < 90 || ra > 100 {
		t.Fatalf("request 8: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if n := len(f.raw(t, "purchases")); n != 2 {
		t.Fatalf("a rate-limited request produced: %d records", n)
	}
}

func TestReadSettings(t *testing.T) {
	good := testkit.Config(t, "[kafkagate]\nmax_body_bytes = 1024\nmax_json_depth = 10\nrequest_timeout = 2m\nrate_limit = 2.5\nlisten = 0.0.0.0:9\n")
	s, err := server.ReadSettings(good)
	if err != nil || s.MaxBodyBytes != 1024 || s.MaxJSONDepth != 10 || s.RequestTimeout != 2*time.Minute || s.RateLimit != 2.5 || s.Listen != "0.0.0.0:9" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, c := range []struct{ keys, want string }{
		{"max_body_bytes = 8MiB", "max_body_bytes"},
		{"max_body_bytes = 0", "max_body_bytes"},
		{"max_json_depth = -1", "max_json_depth"},
		{"max_records = lots", "max_records"},
		{"request_timeout = 30", "request_timeout"},
		{"request_timeout = -5s", "request_timeout"},
		{"rate_limit = fast", "rate_limit"},
		{"rate_limit = -1", "rate_limit"},
		{"rate_burst = 5", "rate_burst needs rate_limit"},
		{"tls_cert = /x.pem", "tls_cert and tls_key go together"},
		{"tls_cert = /x\ntls_key = /y\ntls_client_ca = /ca", "tls_client_ca needs access_file"},
		{"tls_client_ca = /ca\naccess_file = /a", "tls_client_ca needs tls_cert"},
	} {
		f := testkit.Config(t, "[kafkagate]\n"+c.keys+"\n")
		_, err = server.ReadSettings(f)
		if err == nil || !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.keys, err, c.want)
		}
	}
}

func TestCheckExposure(t *testing.T) {
	for addr, loop := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "gateway.example:80": false, "nonsense": false,
	} {
		err := server.CheckExposure(addr, false)
		if (err == nil) != loop || (err != nil && !errors.Is(err, server.ErrExposed)) {
			t.Errorf("%s without auth: %v", addr, err)
		}
		if err := server.CheckExposure(addr, true); err != nil {
			t.Errorf("%s with auth: %v", addr, err)
		}
	}
}
