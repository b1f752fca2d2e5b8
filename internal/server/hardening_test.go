package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/server"
)

// call sends one request with extra headers (a Host header sets the
// request's Host) and returns the status, the error_code (0 when the body
// has none) and the body.
func call(t *testing.T, method, url string, hdr map[string]string, body string) (int, int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		ErrorCode int `json:"error_code"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.ErrorCode, b
}

// keyVersion is the latest version of a transit key, read from Vault.
func keyVersion(t *testing.T, f *fixture, key string) int {
	t.Helper()
	info, err := f.env.Transit.ReadKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return info.LatestVersion
}

// TestBrowserGuard: with authentication off (loopback), a web page cannot
// use the gateway through the user's browser. State-changing requests,
// produce and admin alike, need their JSON body type (a missing, form or
// text/plain Content-Type is 415) and are refused when the browser
// marks them cross-site or their Origin is another site (403 40303); a
// Host that is not a loopback name (DNS rebinding) is refused on every
// request (403 40304), the viewer's included. Nothing is produced and no
// key rotated by a refused request.
func TestBrowserGuard(t *testing.T) {
	f := setup(t)
	srv := httptest.NewServer(f.gw.Handler()) // the API and the viewer
	t.Cleanup(srv.Close)
	produce := srv.URL + "/v3/clusters/" + f.cid + "/topics/purchases/records"
	rotate := srv.URL + "/v3/admin/keys/kafka-purchases/rotate"
	body := produceBody(purchase)
	// One record first: it creates the key.
	if resp, b := f.post(t, produce, "application/json", body); resp.StatusCode != 200 {
		t.Fatalf("produce: %d %s", resp.StatusCode, b)
	}
	before := keyVersion(t, f, "kafka-purchases")
	self := srv.URL

	for _, c := range []struct {
		name, method, url string
		hdr               map[string]string
		body              string
		status, code      int
	}{
		{"produce without Content-Type", "POST", produce, nil, body, 415, httpapi.CodeContentType},
		{"produce as text/plain", "POST", produce, map[string]string{"Content-Type": "text/plain"}, body, 415, httpapi.CodeContentType},
		{"produce as a form", "POST", produce, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body, 415, httpapi.CodeContentType},
		{"produce, cross-site fetch", "POST", produce, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, body, 403, httpapi.CodeCrossSite},
		{"produce, other origin", "POST", produce, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, body, 403, httpapi.CodeCrossSite},
		{"produce, null origin", "POST", produce, map[string]string{"Content-Type": "application/json", "Origin": "null"}, body, 403, httpapi.CodeCrossSite},
		{"produce, rebound host", "POST", produce, map[string]string{"Content-Type": "application/json", "Host": "evil.example"}, body, 403, httpapi.CodeHostNotLocal},
		{"admin rotate as text/plain", "POST", rotate, map[string]string{"Content-Type": "text/plain"}, "", 415, httpapi.CodeContentType},
		{"admin rotate without Content-Type", "POST", rotate, nil, "", 415, httpapi.CodeContentType},
		{"admin rotate, same-site fetch", "POST", rotate, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, "", 403, httpapi.CodeCrossSite},
		{"admin config, other origin", "POST", rotate[:len(rotate)-len("rotate")] + "config", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, `{"min_decryption_version":2}`, 403, httpapi.CodeCrossSite},
		{"read, rebound host", "GET", srv.URL + "/v3/clusters", map[string]string{"Host": "evil.example:8080"}, "", 403, httpapi.CodeHostNotLocal},
		{"viewer page, rebound host", "GET", srv.URL + "/ui/", map[string]string{"Host": "evil.example"}, "", 403, httpapi.CodeHostNotLocal},
		{"viewer rotate as text/plain", "POST", srv.URL + "/ui/api/rotate", map[string]string{"Content-Type": "text/plain"}, `{"topic":"purchases"}`, 415, httpapi.CodeContentType},
		{"viewer rotate, cross-site", "POST", srv.URL + "/ui/api/rotate", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, `{"topic":"purchases"}`, 403, httpapi.CodeCrossSite},
	} {
		status, code, b := call(t, c.method, c.url, c.hdr, c.body)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d with error_code %d", c.name, status, b, c.status, c.code)
		}
	}
	if n := len(f.raw(t, "purchases")); n != 1 {
		t.Fatalf("refused requests produced %d records", n-1)
	}
	if v := keyVersion(t, f, "kafka-purchases"); v != before {
		t.Fatalf("refused requests rotated kafka-purchases: version %d, was %d", v, before)
	}

	// What a non-browser client or the gateway's own page sends passes.
	for _, c := range []struct {
		name string
		hdr  map[string]string
	}{
		{"plain client", map[string]string{"Content-Type": "application/json"}},
		{"same-origin page", map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": self, "Sec-Fetch-Site": "same-origin"}},
		{"localhost name", map[string]string{"Content-Type": "application/json", "Host": "localhost:8080"}},
		{"IPv6 loopback", map[string]string{"Content-Type": "application/json", "Host": "[::1]:8080"}},
		{"127/8", map[string]string{"Content-Type": "application/vnd.kafka.v3+json", "Host": "127.0.0.7"}},
	} {
		if status, _, b := call(t, "POST", produce, c.hdr, body); status != 200 {
			t.Errorf("%s: %d %s, want 200", c.name, status, b)
		}
	}
	if status, _, b := call(t, "POST", rotate, map[string]string{"Content-Type": "application/json"}, ""); status != 200 {
		t.Errorf("admin rotate with application/json: %d %s", status, b)
	}
	if v := keyVersion(t, f, "kafka-purchases"); v != before+1 {
		t.Errorf("kafka-purchases version %d after one accepted rotation, want %d", v, before+1)
	}
}

// TestBrowserGuardWithAuth: with an access file the Host check is off (the
// gateway may be reached by any name), but a browser's cross-site request
// is still refused, even with valid credentials (a client certificate is
// sent by the browser itself).
func TestBrowserGuardWithAuth(t *testing.T) {
	alice, line := accessToken(t, "alice produce:purchases admin")
	access := accessFile(t, line)
	f := setupWith(t, "access_file = "+access, nil, false)
	auth := "Bearer " + alice
	if status, _, b := call(t, "GET", f.srv.URL+"/v3/clusters", map[string]string{"Authorization": auth, "Host": "gateway.example.com"}, ""); status != 200 {
		t.Errorf("any Host with authentication on: %d %s", status, b)
	}
	status, code, b := call(t, "POST", f.url("purchases"), map[string]string{"Authorization": auth, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, produceBody(purchase))
	if status != 403 || code != httpapi.CodeCrossSite {
		t.Errorf("cross-site produce with a valid token: %d %s, want 403 %d", status, b, httpapi.CodeCrossSite)
	}
	if status, code, b := call(t, "POST", f.url("purchases"), map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, produceBody(purchase)); status != 415 || code != httpapi.CodeContentType {
		t.Errorf("text/plain produce with a valid token: %d %s", status, b)
	}
	if n := len(f.raw(t, "purchases")); n != 0 {
		t.Fatalf("refused requests produced %d records", n)
	}
}

// httpSeries lists the kafkagate_http_ sample lines of /metrics.
func httpSeries(t *testing.T, f *fixture, token string) []string {
	t.Helper()
	status, _, b := call(t, "GET", f.srv.URL+"/metrics", map[string]string{"Authorization": "Bearer " + token}, "")
	if status != 200 {
		t.Fatalf("GET /metrics: %d %s", status, b)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "kafkagate_http_") {
			name, _, _ := strings.Cut(l, " ")
			out = append(out, name)
		}
	}
	return out
}

// TestMetricsSeriesBounded: requests with invented methods and paths, with
// and without credentials, do not add /metrics series: methods map to a
// fixed set (OTHER), unknown routes share "unmatched" and unauthenticated
// requests "unauthenticated", whatever path they asked for.
func TestMetricsSeriesBounded(t *testing.T) {
	ops, line := accessToken(t, "ops metrics")
	access := accessFile(t, line)
	f := setupWith(t, "access_file = "+access, nil, false)
	flood := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			method := fmt.Sprintf("INVENTED%dMETHOD", i)
			paths := []string{fmt.Sprintf("/nope/%d", i), "/v3/clusters/" + f.cid + fmt.Sprintf("/topics/t%d/records", i), "/metrics"}
			for _, p := range paths {
				call(t, method, f.srv.URL+p, nil, "")                                                 // unauthenticated
				call(t, method, f.srv.URL+p, map[string]string{"Authorization": "Bearer " + ops}, "") // authenticated
				call(t, "GET", f.srv.URL+p, map[string]string{"Authorization": "Bearer kgt_wrong"}, "")
			}
		}
	}
	flood(0, 2)
	httpSeries(t, f, ops) // counts the scrape itself
	before := httpSeries(t, f, ops)
	flood(2, 200)
	after := httpSeries(t, f, ops)
	if len(after) != len(before) {
		t.Errorf("/metrics went from %d to %d kafkagate_http_ series after 200 rounds of invented requests:\n%s", len(before), len(after), strings.Join(after, "\n"))
	}
	joined := strings.Join(after, "\n")
	if strings.Contains(joined, "INVENTED") || strings.Contains(joined, "/nope") || strings.Contains(joined, "/topics/t1") {
		t.Errorf("a client-chosen value reached a label:\n%s", joined)
	}
	for _, want := range []string{`method="OTHER",route="unauthenticated"`, `method="OTHER",route="unmatched"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("no series with %s:\n%s", want, joined)
		}
	}
}

// TestProduceRefusesReservedHeaders: a client may not send the legacy
// file headers (X-encryptionkey, X-filename) or a kafkagate. header, in
// any case: a report with error_code 400 naming the header, nothing
// produced.
func TestProduceRefusesReservedHeaders(t *testing.T) {
	f := setup(t)
	for _, name := range []string{"X-encryptionkey", "x-EncryptionKey", "X-filename", "X-FILENAME", "kafkagate.fields", "KafkaGate.Sealed"} {
		body := `{"headers":[{"name":"trace","value":"YWJj"},{"name":"` + name + `","value":"YWJj"}],"value":{"type":"JSON","data":{"Name":"Ann"}}}`
		resp, b := f.post(t, f.url("purchases"), "application/json", body)
		var e struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
			Field     string `json:"field"`
		}
		_ = json.Unmarshal(b, &e)
		// A record's own error is in its report, with HTTP 200 (REST Proxy).
		if resp.StatusCode != 200 || e.ErrorCode != httpapi.CodeBadRequestField || !strings.Contains(e.Message, name) || e.Field != "headers[1].name" {
			t.Errorf("header %s: %d %s, want 200 with report %d naming it", name, resp.StatusCode, b, httpapi.CodeBadRequestField)
		}
	}
	if n := len(f.raw(t, "purchases")); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}

// TestIdleTimeout: the gateway's server closes a keep-alive connection
// left idle for [kafkagate] idle_timeout.
func TestIdleTimeout(t *testing.T) {
	f := setupWith(t, "idle_timeout = 300ms", nil, true)
	if f.gw.Settings.IdleTimeout != 300*time.Millisecond {
		t.Fatalf("idle_timeout read as %v", f.gw.Settings.IdleTimeout)
	}
	l, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, f, l)
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("healthz: %d, close %t", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("idle connection closed after %v, want about 300ms", took)
	}
}

// streamOpen opens records:stream and returns the response (the caller
// closes it).
func streamOpen(t *testing.T, ctx context.Context, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestStreamGroupNamespaced: a stream's group parameter names a group in
// the principal's own namespace, so a principal with consume:T that asks
// for the bridge's group id neither joins it nor moves its committed
// offsets; its own group (kafkagate-stream.<principal>:<group>, told in
// the Kafkagate-Group header) gets the offsets.
func TestStreamGroupNamespaced(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	reader, line := accessToken(t, "reader consume:purchases produce:purchases")
	access := accessFile(t, line)
	cfg, err := config.Parse([]byte(testConfig + "\n[kafkagate]\naccess_file = " + access + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second)})
	for i := range 5 {
		if status, _, b := call(t, "POST", f.url("purchases"), map[string]string{"Authorization": "Bearer " + reader, "Content-Type": "application/json"},
			produceBody(fmt.Sprintf(`{"Name":"Ann %d"}`, i))); status != 200 {
			t.Fatalf("produce: %d %s", status, b)
		}
	}
	const bridgeGroup = "kafkagate-bridge-purchases"
	scfg := sarama.NewConfig()
	scfg.Version = sarama.V2_8_0_0
	client, err := sarama.NewClient(env.Brokers, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	// The bridge's committed offset: a simple commit (no member), as a
	// stopped bridge leaves it.
	coord, err := client.Coordinator(bridgeGroup)
	if err != nil {
		t.Fatal(err)
	}
	creq := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: bridgeGroup, ConsumerGroupGeneration: -1, RetentionTime: -1}
	creq.AddBlock("purchases", 0, 2, 0, "")
	cresp, err := coord.CommitOffset(creq)
	if err != nil {
		t.Fatal(err)
	}
	if kerr := cresp.Errors["purchases"][0]; kerr != sarama.ErrNoError {
		t.Fatalf("commit the bridge group's offset: %v", kerr)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	committed := func(group string) int64 {
		t.Helper()
		res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{"purchases": {0}})
		if err != nil {
			t.Fatal(err)
		}
		b := res.GetBlock("purchases", 0)
		if b == nil {
			return -1
		}
		return b.Offset
	}
	if got := committed(bridgeGroup); got != 2 {
		t.Fatalf("bridge group committed %d, want 2", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp := streamOpen(t, ctx, f.srv.URL+"/v3/clusters/"+f.cid+"/topics/purchases/records:stream?group="+bridgeGroup+"&from_beginning=true&max=5", reader)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	own := httpapi.StreamGroup("reader", bridgeGroup)
	if resp.StatusCode != 200 || resp.Header.Get("Kafkagate-Group") != own || strings.Count(string(b), "\n") != 5 {
		t.Fatalf("stream: %d, group %q, body:\n%s\nwant 200, group %q and 5 records (from the beginning: a new group)", resp.StatusCode, resp.Header.Get("Kafkagate-Group"), b, own)
	}
	deadline := time.Now().Add(20 * time.Second)
	for committed(own) != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream's own group committed %d, want 5", committed(own))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := committed(bridgeGroup); got != 2 {
		t.Fatalf("the bridge's group committed offset moved to %d by a stream, want 2", got)
	}
}

// TestStreamPerPrincipalCap: with max_streams_per_principal = 1 a
// principal's second concurrent stream is refused (429 42903 with
// Retry-After) while another principal still gets one; closing the first
// frees the slot.
func TestStreamPerPrincipalCap(t *testing.T) {
	alice, aliceLine := accessToken(t, "alice consume:purchases produce:purchases")
	bob, bobLine := accessToken(t, "bob consume:purchases")
	access := accessFile(t, aliceLine, bobLine)
	f := setupWith(t, "access_file = "+access+"\nmax_streams_per_principal = 1", nil, false)
	// The topic must exist: a stream never creates one.
	if status, _, b := call(t, "POST", f.url("purchases"), map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "application/json"}, produceBody(purchase)); status != 200 {
		t.Fatalf("produce: %d %s", status, b)
	}
	stream := f.srv.URL + "/v3/clusters/" + f.cid + "/topics/purchases/records:stream"
	ctx, cancel := context.WithCancel(context.Background())
	first := streamOpen(t, ctx, stream, alice)
	if first.StatusCode != 200 {
		t.Fatalf("alice's first stream: %d", first.StatusCode)
	}
	second := streamOpen(t, context.Background(), stream, alice)
	b, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != 429 || !strings.Contains(string(b), fmt.Sprintf(`"error_code":%d`, httpapi.CodePrincipalBusy)) || second.Header.Get("Retry-After") == "" {
		t.Errorf("alice's second stream: %d %s (Retry-After %q), want 429 %d", second.StatusCode, b, second.Header.Get("Retry-After"), httpapi.CodePrincipalBusy)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	other := streamOpen(t, bctx, stream, bob)
	if other.StatusCode != 200 {
		t.Errorf("bob's stream while alice holds hers: %d", other.StatusCode)
	}
	bcancel()
	other.Body.Close()
	cancel()
	first.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		actx, acancel := context.WithCancel(context.Background())
		again := streamOpen(t, actx, stream, alice)
		status := again.StatusCode
		acancel()
		again.Body.Close()
		if status == 200 {
			break
		}
		if status != 429 || time.Now().After(deadline) {
			t.Fatalf("alice after closing her stream: %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
