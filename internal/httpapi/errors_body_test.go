package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// decodeError decodes an Error body strictly: error_code and message only
// (field is kafkagate's optional extension).
func decodeError(t *testing.T, b []byte) apiError {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e apiError
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("not an Error: %v: %q", err, b)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	if _, ok := m["message"]; !ok || e.Message == "" {
		t.Fatalf("message missing: %s", b)
	}
	return e
}

// A handler that panics answers 500 {error_code: 500} without the
// panic's content; one that runs past the request timeout without
// answering gets 504 {error_code: 50401}; one that answered keeps its
// answer.
func TestTimeoutAndPanicBodies(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		name    string
		h       http.HandlerFunc
		status  int
		code    int
		noMatch string
	}{
		{"panic", func(http.ResponseWriter, *http.Request) { panic("secret-value") }, 500, CodeInternal, "secret-value"},
		{"timeout", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, 504, CodeTimeout, ""},
		{"answered before the timeout", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			writeErr(w, newErr(CodeKafkaDown, "kafka did not acknowledge in time"))
		}, 503, CodeKafkaDown, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := s.recoverer(deadline(50 * time.Millisecond)(c.h))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v3/clusters/x/topics/t/records", nil))
			if rec.Code != c.status || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			if e := decodeError(t, rec.Body.Bytes()); e.ErrorCode != c.code {
				t.Fatalf("error_code %d, want %d", e.ErrorCode, c.code)
			}
			if c.noMatch != "" && bytes.Contains(rec.Body.Bytes(), []byte(c.noMatch)) {
				t.Fatal("the panic's value is in the body")
			}
		})
	}
}
