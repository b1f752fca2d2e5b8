package server_test

// The REST Proxy v2 consumer API, with plain HTTP calls against real Vault
// and the kfake broker: REST Proxy's quick-start sequence (create,
// subscribe, fetch, commit, delete) returning decrypted records, access
// rights, the Accept negotiation, the idle timeout, and a hostile record's
// per-record status.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// v2Call sends a v2 request (Content-Type application/vnd.kafka.v2+json
// when a body is given) with optional Accept and Authorization.
func v2Call(t *testing.T, method, url, auth, accept, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" || method == http.MethodPost {
		req.Header.Set("Content-Type", httpapi.MediaV2)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return testkit.Call(t, nil, req)
}

// v2Fetch polls base/records until it has n records (the group's first
// join takes a rebalance), within a minute.
func v2Fetch(t *testing.T, base, auth, accept string, n int) []specV2Record {
	t.Helper()
	var out []specV2Record
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records after a minute, want %d", len(out), n)
		}
		resp, b := v2Call(t, http.MethodGet, base+"/records?timeout=1000", auth, accept, "")
		if resp.StatusCode != 200 {
			t.Fatalf("records: %d %s", resp.StatusCode, b)
		}
		var page []specV2Record
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatalf("records: %v: %s", err, b)
		}
		out = append(out, page...)
	}
	if len(out) != n {
		t.Fatalf("%d records, want %d", len(out), n)
	}
	return out
}

// v2Create creates an instance in group and returns its base URI.
func v2Create(t *testing.T, srv, auth, group, body string) string {
	t.Helper()
	resp, b := v2Call(t, http.MethodPost, srv+"/consumers/"+group, auth, "", body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != httpapi.MediaV2 {
		t.Fatalf("create: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var cr struct {
		InstanceID string `json:"instance_id"`
		BaseURI    string `json:"base_uri"`
	}
	if err := json.Unmarshal(b, &cr); err != nil || cr.InstanceID == "" || !strings.HasSuffix(cr.BaseURI, "/consumers/"+group+"/instances/"+cr.InstanceID) {
		t.Fatalf("create: %s", b)
	}
	return cr.BaseURI
}

func wantV2Error(t *testing.T, resp *http.Response, b []byte, status, code int) {
	t.Helper()
	var e struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}
	if resp.StatusCode != status || json.Unmarshal(b, &e) != nil || e.ErrorCode != code || e.Message == "" {
		t.Fatalf("status %d %s, want %d with error_code %d", resp.StatusCode, b, status, code)
	}
}

// TestV2ConsumerQuickStart follows REST Proxy's quick start for a JSON
// consumer and adds the commit: the records come back decrypted, byte for
// byte what was produced, and the committed offsets are in Kafka.
func TestV2ConsumerQuickStart(t *testing.T) {
	f := setup(t)
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(purchase)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f.produceOK(t, "purchases", purchase)
	}

	resp, b := v2Call(t, http.MethodPost, f.srv.URL+"/consumers/my_json_consumer", "", "",
		`{"name":"my_consumer_instance","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var cr struct {
		InstanceID string `json:"instance_id"`
		BaseURI    string `json:"base_uri"`
	}
	if err := json.Unmarshal(b, &cr); err != nil || cr.InstanceID != "my_consumer_instance" ||
		cr.BaseURI != f.srv.URL+"/consumers/my_json_consumer/instances/my_consumer_instance" {
		t.Fatalf("create: %s", b)
	}
	group := resp.Header.Get("Kafkagate-Group")
	if group != httpapi.V2Group("anonymous", "my_json_consumer") {
		t.Fatalf("Kafkagate-Group %q", group)
	}
	base := cr.BaseURI

	if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["purchases"]}`); resp.StatusCode != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	if resp, b := v2Call(t, http.MethodGet, base+"/subscription", "", "", ""); resp.StatusCode != 200 || string(b) != `{"topics":["purchases"]}`+"\n" {
		t.Fatalf("subscription: %d %s", resp.StatusCode, b)
	}
	// The instance is json: asking for binary records is refused.
	resp, b = v2Call(t, http.MethodGet, base+"/records", "", "application/vnd.kafka.binary.v2+json", "")
	wantV2Error(t, resp, b, http.StatusNotAcceptable, httpapi.CodeConsumerFormatMismatch)
	resp, b = v2Call(t, http.MethodGet, base+"/records", "", httpapi.MediaV2, "")
	wantV2Error(t, resp, b, http.StatusNotAcceptable, httpapi.CodeConsumerFormatMismatch)

	recs := v2Fetch(t, base, "", "application/vnd.kafka.json.v2+json", 3)
	for i, r := range recs {
		if r.Topic != "purchases" || r.Partition != 0 || r.Offset != int64(i) || r.Decryption.Status != "decrypted" || r.ValueType != "JSON" {
			t.Fatalf("record %d: %+v", i, r)
		}
		if !bytes.Equal(r.Value, compact.Bytes()) {
			t.Fatalf("record %d value %s, want %s", i, r.Value, compact.Bytes())
		}
		if string(r.Key) != "null" || len(r.Headers) != 0 {
			t.Fatalf("record %d: key %s headers %+v (kafkagate headers must be hidden)", i, r.Key, r.Headers)
		}
	}

	committed := func(t *testing.T) int64 {
		t.Helper()
		resp, b := v2Call(t, http.MethodGet, base+"/offsets", "", "", `{"partitions":[{"topic":"purchases","partition":0}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("offsets: %d %s", resp.StatusCode, b)
		}
		var cr struct {
			Offsets []struct {
				Topic     string `json:"topic"`
				Partition int32  `json:"partition"`
				Offset    int64  `json:"offset"`
			} `json:"offsets"`
		}
		if err := json.Unmarshal(b, &cr); err != nil {
			t.Fatal(err)
		}
		if len(cr.Offsets) == 0 {
			return -1
		}
		return cr.Offsets[0].Offset
	}
	if got := committed(t); got != -1 {
		t.Fatalf("committed %d before any commit (auto.commit.enable false)", got)
	}
	// Commit everything returned: the next record to read is 3.
	if resp, b := v2Call(t, http.MethodPost, base+"/offsets", "", "", ""); resp.StatusCode != 200 {
		t.Fatalf("commit: %d %s", resp.StatusCode, b)
	}
	if got := committed(t); got != 3 {
		t.Fatalf("committed %d, want 3", got)
	}
	// REST Proxy commits offset + 1 of the offsets given.
	if resp, b := v2Call(t, http.MethodPost, base+"/offsets", "", "", `{"offsets":[{"topic":"purchases","partition":0,"offset":1}]}`); resp.StatusCode != 200 {
		t.Fatalf("commit: %d %s", resp.StatusCode, b)
	}
	if got := committed(t); got != 2 {
		t.Fatalf("committed %d, want 2", got)
	}
	// Kafka holds it, under the instance's group.
	admin, err := kafka.NewAdmin(f.gw.Kafka.Settings(), "-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	got, err := admin.CommittedOffsets(group, "purchases", []int32{0})
	if err != nil || got[0].Offset != 2 {
		t.Fatalf("kafka's committed offset %+v %v, want 2", got, err)
	}

	if resp, b := v2Call(t, http.MethodDelete, base, "", "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = v2Call(t, http.MethodGet, base+"/records", "", "", "")
	wantV2Error(t, resp, b, http.StatusNotFound, httpapi.CodeConsumerNotFound)
	resp, b = v2Call(t, http.MethodDelete, base, "", "", "")
	wantV2Error(t, resp, b, http.StatusNotFound, httpapi.CodeConsumerNotFound)
}

// TestV2ConsumerAccess: creating an instance needs some consume right,
// subscribing needs the topic's, and an instance is its principal's alone.
func TestV2ConsumerAccess(t *testing.T) {
	alice, aliceLine := accessToken(t, "alice consume:purchases")
	carol, carolLine := accessToken(t, "carol produce:purchases produce:other")
	bob, bobLine := accessToken(t, "bob consume:*")
	f := setupWith(t, "access_file = "+accessFile(t, aliceLine, carolLine, bobLine), nil, false)
	for _, topic := range []string{"purchases", "other"} {
		if resp, b := testkit.Do(t, nil, http.MethodPost, f.url(topic), testkit.Bearer(carol), `{"value":{"type":"JSON","data":{"Name":"x"}}}`); resp.StatusCode != 200 {
			t.Fatalf("produce: %d %s", resp.StatusCode, b)
		}
	}

	resp, b := v2Call(t, http.MethodPost, f.srv.URL+"/consumers/g1", testkit.Bearer(carol), "", `{"format":"binary"}`)
	wantV2Error(t, resp, b, http.StatusForbidden, httpapi.CodeForbidden)
	resp, b = v2Call(t, http.MethodPost, f.srv.URL+"/consumers/g1", "", "", `{"format":"binary"}`)
	wantV2Error(t, resp, b, http.StatusUnauthorized, httpapi.CodeUnauthenticated)

	base := v2Create(t, f.srv.URL, testkit.Bearer(alice), "g1", `{"name":"a1"}`)
	resp, b = v2Call(t, http.MethodPost, base+"/subscription", testkit.Bearer(alice), "", `{"topics":["purchases","other"]}`)
	wantV2Error(t, resp, b, http.StatusForbidden, httpapi.CodeForbidden)
	resp, b = v2Call(t, http.MethodGet, base+"/offsets", testkit.Bearer(alice), "", `{"partitions":[{"topic":"other","partition":0}]}`)
	wantV2Error(t, resp, b, http.StatusForbidden, httpapi.CodeForbidden)
	// Another principal does not find alice's instance, even with the
	// same group and name.
	resp, b = v2Call(t, http.MethodGet, base+"/subscription", testkit.Bearer(bob), "", "")
	wantV2Error(t, resp, b, http.StatusNotFound, httpapi.CodeConsumerNotFound)
	resp, b = v2Call(t, http.MethodDelete, base, testkit.Bearer(bob), "", "")
	wantV2Error(t, resp, b, http.StatusNotFound, httpapi.CodeConsumerNotFound)
	if resp, b := v2Call(t, http.MethodPost, base+"/subscription", testkit.Bearer(alice), "", `{"topics":["purchases"]}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	// A pattern subscribes to the matching topics the principal may
	// consume: bob may consume both, alice only purchases.
	if resp, b := v2Call(t, http.MethodPost, base+"/subscription", testkit.Bearer(alice), "", `{"topic_pattern":"purch.*|other"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	if resp, b := v2Call(t, http.MethodGet, base+"/subscription", testkit.Bearer(alice), "", ""); string(b) != `{"topics":["purchases"]}`+"\n" {
		t.Fatalf("alice's pattern subscription: %d %s", resp.StatusCode, b)
	}
	bobBase := v2Create(t, f.srv.URL, testkit.Bearer(bob), "g1", `{"name":"a1"}`)
	if resp, b := v2Call(t, http.MethodPost, bobBase+"/subscription", testkit.Bearer(bob), "", `{"topic_pattern":"purch.*|other"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	if resp, b := v2Call(t, http.MethodGet, bobBase+"/subscription", testkit.Bearer(bob), "", ""); string(b) != `{"topics":["other","purchases"]}`+"\n" {
		t.Fatalf("bob's pattern subscription: %d %s", resp.StatusCode, b)
	}
}

// TestV2ConsumerIdleTimeout: an instance nobody uses is closed after
// [kafkagate] consumer_instance_timeout; one in use is kept.
func TestV2ConsumerIdleTimeout(t *testing.T) {
	f := setupWith(t, "consumer_instance_timeout = 5s", nil, false)
	f.produceOK(t, "purchases", purchase)
	idle := v2Create(t, f.srv.URL, "", "g", `{"name":"idle","auto.offset.reset":"earliest"}`)
	busy := v2Create(t, f.srv.URL, "", "g", `{"name":"busy","auto.offset.reset":"earliest"}`)
	for _, base := range []string{idle, busy} {
		if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["purchases"]}`); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
		}
	}
	// The idle instance exists a moment after its creation (this request
	// restarts its idle time); then only the busy one is used, once a
	// second, for three times the timeout.
	time.Sleep(time.Second)
	if resp, b := v2Call(t, http.MethodGet, idle+"/subscription", "", "", ""); resp.StatusCode != 200 {
		t.Fatalf("the idle instance expired before its timeout: %d %s", resp.StatusCode, b)
	}
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if resp, b := v2Call(t, http.MethodGet, busy+"/subscription", "", "", ""); resp.StatusCode != 200 {
			t.Fatalf("the instance in use expired: %d %s", resp.StatusCode, b)
		}
	}
	resp, b := v2Call(t, http.MethodGet, idle+"/subscription", "", "", "")
	wantV2Error(t, resp, b, http.StatusNotFound, httpapi.CodeConsumerNotFound)
	// Its name is free again.
	v2Create(t, f.srv.URL, "", "g", `{"name":"idle"}`)
}

// TestV2ConsumerHostileRecord: a record written straight to Kafka that
// fails to decrypt comes back with its per-record status and as stored,
// never with plaintext; a record stored in clear is marked.
func TestV2ConsumerHostileRecord(t *testing.T) {
	f := setup(t)
	f.produceOK(t, "purchases", purchase)
	stored := f.raw(t, "purchases")[0]
	// Moved to another topic (same key, other AAD): decryption fails.
	f.write(t, kafka.Message{Topic: "other", Partition: 0, Value: stored.Value, Headers: stored.Headers},
		kafka.Message{Topic: "other", Partition: 0, Value: []byte(`{"Name":"Plain Text Person"}`)})

	base := v2Create(t, f.srv.URL, "", "h", `{"format":"binary","auto.offset.reset":"earliest"}`)
	if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["other"]}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	recs := v2Fetch(t, base, "", "application/vnd.kafka.binary.v2+json", 2)
	var v0 string
	_ = json.Unmarshal(recs[0].Value, &v0)
	val, _ := base64.StdEncoding.DecodeString(v0)
	if recs[0].Decryption.Status != "failed" || !bytes.Equal(val, stored.Value) {
		t.Fatalf("moved record: status %q, value %q; want failed and the stored bytes", recs[0].Decryption.Status, val)
	}
	for _, fs := range recs[0].Decryption.Fields {
		if fs.Status != "decrypt_failed" {
			t.Fatalf("field %+v, want decrypt_failed", fs)
		}
	}
	for _, s := range secrets {
		if bytes.Contains(val, []byte(s)) {
			t.Fatalf("plaintext %q in a failed record", s)
		}
	}
	// A record stored in clear is returned as stored and marked
	// unencrypted, never decrypted.
	var v1 string
	_ = json.Unmarshal(recs[1].Value, &v1)
	if val, _ := base64.StdEncoding.DecodeString(v1); recs[1].Decryption.Status != "unencrypted" || string(val) != `{"Name":"Plain Text Person"}` {
		t.Fatalf("cleartext record: %+v %q", recs[1].Decryption, val)
	}
}

// typedRecords are produced with each type for key and value; stored and
// the rendering every read path must give back.
var typedRecords = []struct {
	body              string
	keyType, valType  string
	keyData, valData  string // the read's data, as JSON
	keyBytes, valBody string // the stored bytes
}{
	{`{"key":{"type":"STRING","data":"123"},"value":{"type":"STRING","data":"123"}}`, "STRING", "STRING", `"123"`, `"123"`, "123", "123"},
	{`{"key":{"type":"BINARY","data":"AAEC"},"value":{"type":"BINARY","data":"aGVsbG8="}}`, "BINARY", "BINARY", `"AAEC"`, `"aGVsbG8="`, "\x00\x01\x02", "hello"},
	{`{"key":{"type":"JSON","data":{"k":1}},"value":{"type":"JSON","data":{"a":[1,"x"]}}}`, "JSON", "JSON", `{"k":1}`, `{"a":[1,"x"]}`, `{"k":1}`, `{"a":[1,"x"]}`},
}

// TestTypesRoundTrip: a record produced as STRING, BINARY or JSON reads
// back as that type through GET, the stream, the v2 consumer and Consume;
// a record without the type header (written by another producer) reads
// as before, by its content; kafkagate.* headers are shown only when
// asked.
func TestTypesRoundTrip(t *testing.T) {
	f := setup(t)
	for _, c := range typedRecords {
		if resp, b := f.post(t, f.url("raw"), "application/json", strings.Replace(c.body, `{"key"`, `{"partition_id":0,"key"`, 1)); resp.StatusCode != 200 {
			t.Fatalf("produce: %d %s", resp.StatusCode, b)
		}
	}
	f.write(t, kafka.Message{Topic: "raw", Partition: 0, Key: []byte("123"), Value: []byte("123")})
	stored := f.raw(t, "raw")
	if len(stored) != 4 {
		t.Fatalf("%d records", len(stored))
	}
	for i, c := range typedRecords {
		if string(stored[i].Key) != c.keyBytes || string(stored[i].Value) != c.valBody {
			t.Fatalf("stored %d: %q %q", i, stored[i].Key, stored[i].Value)
		}
	}
	check := func(t *testing.T, path string, i int, key, val *httpapi.Data) {
		t.Helper()
		if i == 3 { // no type header: by content, as before
			if key.Type != "JSON" || string(key.Data) != "123" || val.Type != "JSON" || string(val.Data) != "123" {
				t.Fatalf("%s: headerless record: %+v %+v", path, key, val)
			}
			return
		}
		c := typedRecords[i]
		if key.Type != c.keyType || string(key.Data) != c.keyData || val.Type != c.valType || string(val.Data) != c.valData {
			t.Fatalf("%s: record %d: key %s %s value %s %s; want %s %s and %s %s", path, i, key.Type, key.Data, val.Type, val.Data, c.keyType, c.keyData, c.valType, c.valData)
		}
	}
	internal := func(hs []httpapi.OutHeader) bool {
		for _, h := range hs {
			if strings.HasPrefix(h.Name, "kafkagate.") {
				return true
			}
		}
		return false
	}

	// GET, without and with the internal headers.
	got := f.read(t, "raw", 0, 0)
	for i, r := range got.Records {
		check(t, "GET", i, r.Key, r.Value)
		if internal(r.Headers) {
			t.Fatalf("GET shows internal headers: %+v", r.Headers)
		}
	}
	resp, b := testkit.Do(t, nil, http.MethodGet, f.url("raw")+"?partition=0&offset=0&internal_headers=true", "", "")
	var withInternal httpapi.ReadResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &withInternal) != nil || len(withInternal.Records) != 4 ||
		withInternal.Records[0].Headers[0].Name != "kafkagate.type" || internal(withInternal.Records[3].Headers) {
		t.Fatalf("GET internal_headers=true: %d %s", resp.StatusCode, b)
	}
	resp, b = testkit.Do(t, nil, http.MethodGet, f.url("raw")+"?internal_headers=maybe", "", "")
	wantError(t, resp, b, http.StatusBadRequest, httpapi.CodeBadQuery)

	// The stream.
	resp, b = testkit.Do(t, nil, http.MethodGet, f.url("raw")+":stream?partition=0&offset=oldest&max=4", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("stream: %d lines: %s", len(lines), b)
	}
	for i, l := range lines {
		var r httpapi.StreamRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		check(t, "stream", i, r.Key, r.Value)
		if internal(r.Headers) {
			t.Fatalf("stream shows internal headers: %+v", r.Headers)
		}
	}

	// Consume (gateway consume's path).
	var consumed []consume.Line
	if _, err := consume.Run(context.Background(), f.gw.Kafka, f.gw.Engine, consume.Options{Topic: "raw", Partition: 0, Offset: kafka.OffsetOldest}, func(r consume.Line) error {
		consumed = append(consumed, r)
		return nil
	}); err != nil || len(consumed) != 4 {
		t.Fatalf("consume: %d records, %v", len(consumed), err)
	}
	for i, r := range consumed {
		check(t, "consume", i, r.Key, r.Value)
	}

	// The v2 consumer: the instance's format embeds the data, key_type and
	// value_type keep the types.
	for _, format := range []string{"binary", "json", "string"} {
		base := v2Create(t, f.srv.URL, "", "types-"+format, `{"format":"`+format+`","auto.offset.reset":"earliest"}`)
		if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["raw"]}`); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
		}
		recs := v2Fetch(t, base, "", "application/vnd.kafka."+format+".v2+json", 4)
		for i, r := range recs[:3] {
			c := typedRecords[i]
			if r.KeyType != c.keyType || r.ValueType != c.valType {
				t.Fatalf("v2 %s record %d: types %s %s", format, i, r.KeyType, r.ValueType)
			}
			wantKey, wantVal := c.keyData, c.valData
			switch {
			case format == "binary":
				k, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(c.keyBytes)))
				v, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(c.valBody)))
				wantKey, wantVal = string(k), string(v)
			case format == "string" && c.keyType == "JSON":
				k, _ := json.Marshal(c.keyBytes)
				v, _ := json.Marshal(c.valBody)
				wantKey, wantVal = string(k), string(v)
			}
			if string(r.Key) != wantKey || string(r.Value) != wantVal {
				t.Fatalf("v2 %s record %d: key %s value %s; want %s %s", format, i, r.Key, r.Value, wantKey, wantVal)
			}
			if len(r.Headers) != 0 {
				t.Fatalf("v2 shows internal headers: %+v", r.Headers)
			}
		}
	}
}

// TestV2ConsumerVaultDown: with Vault unreachable a fetch answers 503 with
// Retry-After and returns nothing; its records are not skipped: once Vault
// is back the next fetch returns them, decrypted.
func TestV2ConsumerVaultDown(t *testing.T) {
	f := setup(t)
	f.produceOK(t, "purchases", purchase)
	f.produceOK(t, "purchases", purchase)
	base := v2Create(t, f.srv.URL, "", "vd", `{"format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}`)
	if resp, b := v2Call(t, http.MethodPost, base+"/subscription", "", "", `{"topics":["purchases"]}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, b)
	}
	if err := f.env.Vault.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = f.env.Vault.Resume()
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no 503 within a minute with Vault paused")
		}
		resp, b := v2Call(t, http.MethodGet, base+"/records?timeout=1000", "", "application/vnd.kafka.json.v2+json", "")
		if resp.StatusCode == 200 && string(b) == "[]\n" {
			continue // still joining the group
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != httpapi.MediaV2 {
			t.Fatalf("with Vault paused: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Fatalf("plaintext in the error: %s", b)
			}
		}
		break
	}
	if err := f.env.Vault.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	recs := v2Fetch(t, base, "", "application/vnd.kafka.json.v2+json", 2)
	for i, r := range recs {
		if r.Offset != int64(i) || r.Decryption.Status != "decrypted" {
			t.Fatalf("after Vault came back, record %d: offset %d status %s", i, r.Offset, r.Decryption.Status)
		}
	}
}
