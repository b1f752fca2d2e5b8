package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/ui"
)

// token makes a bearer token and its access-file line.
func token(t *testing.T, principal, rights string) (string, string) {
	t.Helper()
	grants, err := httpapi.ParseGrants(rights)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := httpapi.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok, httpapi.TokenLine(hash, principal, grants)
}

// TestViewerAccess: with an access file the viewer's data needs a
// credential; a principal without consume:<topic> never receives
// plaintext (neither decrypted nor a record stored in clear), and rotation
// needs admin.
func TestViewerAccess(t *testing.T) {
	const topic, clear = "purchases_encrypted", "legacy_clear"
	reader, readerLine := token(t, "reader", "consume:"+topic+" consume:"+clear)
	admin, adminLine := token(t, "operator", "admin")
	producer, producerLine := token(t, "app", "produce:"+topic)
	s := serve(t, readerLine, adminLine, producerLine)

	p := newPurchase()
	s.produce(t, producer, topic, p)
	// A record stored in clear by another client (no gateway policy).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := s.gw.Kafka.Produce(ctx, []kafka.Message{{Topic: clear, Partition: -1, Key: []byte("k-" + p.Name), Value: []byte(`{"Name":"` + p.Name + `"}`),
		Headers: []kafka.Header{{Key: "note", Value: []byte(p.Address)}}}})
	if err != nil || ds[0].Err != nil {
		t.Fatalf("produce in clear: %v %v", err, ds)
	}

	// The page itself holds no data and says authentication is on.
	code, page := s.get(t, "", "/ui/?topic="+topic)
	if code != http.StatusOK || !bytes.Contains(page, []byte(`data-auth="true"`)) || !bytes.Contains(page, []byte(`id="token"`)) {
		t.Fatalf("GET /ui/ without a token: %d, want the page with a token form:\n%s", code, page)
	}
	assertNoPlaintext(t, "page", page, p)

	records := "/ui/api/records?topic=" + topic
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "kgt_" + strings.Repeat("A", 43), http.StatusUnauthorized},
		{"produce right only", producer, http.StatusForbidden},
	} {
		code, body := s.get(t, c.token, records)
		if code != c.want {
			t.Errorf("%s: GET %s = %d %s, want %d", c.name, records, code, body, c.want)
		}
		assertNoPlaintext(t, c.name, body, p)
	}
	for _, path := range []string{"/ui/api/topics"} {
		if code, body := s.get(t, "", path); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d %s, want 401", path, code, body)
		}
	}

	// admin without consume: the stored form only.
	var asAdmin ui.RecordsResponse
	getJSON(t, s, admin, records, &asAdmin)
	if asAdmin.CanDecrypt || asAdmin.Withheld == "" || len(asAdmin.Records) != 1 {
		t.Fatalf("admin view: can_decrypt %t, withheld %q, %d records; want the stored form only of 1 record", asAdmin.CanDecrypt, asAdmin.Withheld, len(asAdmin.Records))
	}
	if r := asAdmin.Records[0]; r.Decrypted != nil || r.Stored.Value == nil || strings.Count(*r.Stored.Value, "vault:v1:") != 2 {
		t.Errorf("admin view of the record: decrypted %v, stored %v; want ciphertext and no decrypted form", r.Decrypted, r.Stored.Value)
	}
	_, raw := s.get(t, admin, records)
	assertNoPlaintext(t, "admin, encrypted topic", raw, p)
	var clearView ui.RecordsResponse
	_, raw = s.get(t, admin, "/ui/api/records?topic="+clear)
	if err := json.Unmarshal(raw, &clearView); err != nil || len(clearView.Records) != 1 || !clearView.Records[0].StoredWithheld {
		t.Fatalf("admin view of a record stored in clear: %s; want it withheld", raw)
	}
	assertNoPlaintext(t, "admin, topic stored in clear", raw, p)

	// consume: both forms, plaintext decrypted.
	var asReader ui.RecordsResponse
	getJSON(t, s, reader, records, &asReader)
	if !asReader.CanDecrypt || len(asReader.Records) != 1 || asReader.Records[0].Decrypted == nil || asReader.Records[0].Decrypted.Value == nil {
		t.Fatalf("reader view: %+v", asReader)
	}
	var got purchase
	if err := json.Unmarshal([]byte(*asReader.Records[0].Decrypted.Value), &got); err != nil || got != p || asReader.Records[0].Decrypted.Status != "decrypted" {
		t.Errorf("reader sees %q (%s), want %+v", *asReader.Records[0].Decrypted.Value, asReader.Records[0].Decrypted.Status, p)
	}
	assertNoPlaintext(t, "reader's stored pane", []byte(*asReader.Records[0].Stored.Value), p)

	// Rotation needs admin and a same-origin JSON request.
	for _, c := range []struct {
		name, token, ctype string
		want               int
	}{
		{"no token", "", "application/json", http.StatusUnauthorized},
		{"reader", reader, "application/json", http.StatusForbidden},
		{"admin, form post", admin, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"admin", admin, "application/json", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, s.base+"/ui/api/rotate", strings.NewReader(`{"topic":"`+topic+`"}`))
		req.Header.Set("Content-Type", c.ctype)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("rotate as %s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

func getJSON(t *testing.T, s *served, token, path string, v any) {
	t.Helper()
	code, body := s.get(t, token, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func assertNoPlaintext(t *testing.T, what string, b []byte, p purchase) {
	t.Helper()
	for _, s := range p.plaintexts() {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("%s: holds plaintext %q", what, s)
		}
	}
}
