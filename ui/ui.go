// Package ui is kafkagate's live web viewer, served by the gateway under
// /ui. It shows a topic's records as Kafka stores them (ciphertext,
// headers, key names and versions: what the broker's operator sees) beside
// their decrypted form (what an authorised consumer sees), follows new
// records by polling, produces a test record through the REST API, and
// rotates the topic's keys.
//
// Pages are rendered on the server with html/template; a small embedded
// script (no build step) fetches JSON from /ui/api/... and fills the record
// table with text nodes only. The page and its static files hold no data
// and need no credentials; every /ui/api call is authenticated like the
// REST API (httpapi.Access: a bearer token, which the page keeps in the
// tab's session storage, or a client certificate) and authorised per
// topic: the stored form needs consume:<topic> or admin, the decrypted
// form consume:<topic>, rotation admin. A viewer without consume:<topic>
// never receives plaintext, not even of records stored in clear.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/httpapi"
	"github.com/kafkagate/kafkagate/kafka"
	"github.com/kafkagate/kafkagate/policy"
	"github.com/kafkagate/kafkagate/protect"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Kafka is what the viewer reads with (*kafka.Client).
type Kafka interface {
	Partitions(topic string) ([]int32, error)
	Watermarks(topic string, partition int32) (int64, int64, error)
	Read(ctx context.Context, topic string, partition int32, offset int64, max int) ([]kafka.Record, error)
}

// Decrypter decrypts records (*protect.Engine).
type Decrypter interface {
	Decrypt(ctx context.Context, recs []protect.Record) ([]protect.Opened, error)
}

// Rotation is one key version made by the rotate button.
type Rotation struct {
	Kind    string `json:"kind"`             // transit or fpe
	Key     string `json:"key,omitempty"`    // transit key
	Domain  string `json:"domain,omitempty"` // FPE domain
	Version int    `json:"version"`          // the version new records use
}

// Config configures the viewer.
type Config struct {
	Kafka    Kafka
	Engine   Decrypter
	Policies *policy.Set
	// Topics lists the cluster's topics without creating any; nil offers
	// the policies' topics only.
	Topics func(ctx context.Context) ([]string, error)
	// ClusterID is the REST API's cluster id (the page produces test
	// records through the API).
	ClusterID func(ctx context.Context) (string, error)
	// Rotate rotates the keys of a topic's policy; nil hides the button.
	Rotate func(ctx context.Context, topic string) ([]Rotation, error)
	// Access authenticates /ui/api calls; nil: authentication is off (the
	// gateway then serves loopback only).
	Access *httpapi.Access
	Logger *slog.Logger
	// Poll is how often the page asks for new records; default 1 s.
	Poll time.Duration
	// MaxValueBytes bounds each value sent to the page; default 4096.
	MaxValueBytes int
}

// Handler serves /ui.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	page *template.Template
	// guarded is the viewer's routes behind the API's browser guard
	// (httpapi.BrowserGuard): no cross-site state change and, with
	// authentication off, loopback Host names only.
	guarded http.Handler
}

// New returns the viewer's handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = 4096
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	h.page = template.Must(template.New("index.html").ParseFS(templateFS, "templates/index.html"))
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/"+query(r), http.StatusFound)
	})
	mux.HandleFunc("GET /ui/{$}", h.index)
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", noListing(http.FileServerFS(static))))
	mux.HandleFunc("GET /ui/api/topics", h.topics)
	mux.HandleFunc("GET /ui/api/records", h.records)
	mux.HandleFunc("POST /ui/api/rotate", h.rotate)
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such page"})
	})
	// The viewer's only state change, rotation, takes a JSON body.
	h.guarded = httpapi.BrowserGuard(cfg.Access == nil, func(*http.Request) string { return httpapi.MediaJSON })(mux)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	h.guarded.ServeHTTP(w, r)
}

func query(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}

func noListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// ValidTopic reports whether s is a Kafka topic name.
func ValidTopic(s string) bool { return topicName.MatchString(s) && s != "." && s != ".." }

// pageData is what the page template renders.
type pageData struct {
	Topic     string
	BadTopic  string
	Topics    []topicEntry
	Policy    *policyView
	AuthOn    bool
	ClusterID string
	CanRotate bool
	PollMS    int64
	Sample    string
}

type topicEntry struct {
	Name     string
	Mode     string // the policy's mode, "" without one
	Selected bool
}

type policyView struct {
	Mode   string
	Key    string
	Fields []fieldView
}

type fieldView struct{ Path, Mode, Detail string }

// index renders the page. It shows no record: the script fetches them
// with the viewer's credentials.
func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := pageData{AuthOn: h.cfg.Access != nil, CanRotate: h.cfg.Rotate != nil, PollMS: h.cfg.Poll.Milliseconds()}
	if t := r.URL.Query().Get("topic"); t != "" {
		if ValidTopic(t) {
			d.Topic = t
		} else {
			d.BadTopic = "not a Kafka topic name"
		}
	}
	names := h.cfg.Policies.Topics()
	if h.cfg.Topics != nil {
		if ts, err := h.cfg.Topics(ctx); err == nil {
			for _, t := range ts {
				if !strings.HasPrefix(t, "__") && !slices.Contains(names, t) {
					names = append(names, t)
				}
			}
		} else {
			h.log.Warn("viewer: cannot list topics", "error", err)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		e := topicEntry{Name: n, Selected: n == d.Topic}
		if p, ok := h.cfg.Policies.For(n); ok {
			e.Mode = string(p.Mode)
		}
		d.Topics = append(d.Topics, e)
	}
	if d.Topic != "" {
		if p, ok := h.cfg.Policies.For(d.Topic); ok {
			d.Policy = viewPolicy(p)
		}
		d.Sample = `{"Name": "Ann Example", "Address": "1 Main St, Springfield", "credit_card": "4111-1111-1111-1111"}`
	}
	if h.cfg.ClusterID != nil {
		if id, err := h.cfg.ClusterID(ctx); err == nil {
			d.ClusterID = id
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := h.page.Execute(w, d); err != nil {
		h.log.Warn("viewer: render page", "error", err)
	}
}

func viewPolicy(p *policy.Policy) *policyView {
	v := &policyView{Mode: string(p.Mode)}
	switch p.Mode {
	case policy.Envelope:
		v.Key = p.Envelope.Key + " (data key " + p.Envelope.DEK + ")"
	case policy.Fields:
		v.Key = p.TransitKey
		for _, f := range p.Fields {
			fv := fieldView{Path: f.PathString(), Mode: string(f.Mode)}
			switch f.Mode {
			case policy.Transit:
				fv.Detail = "transit key " + p.TransitKey
			case policy.FPE:
				fv.Detail = "format " + f.Options["format"] + ", domain " + f.Options["domain"]
			}
			v.Fields = append(v.Fields, fv)
		}
	}
	return v
}

// apiError is the JSON error of /ui/api.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// principal authenticates an API call, answering 401 itself on failure.
func (h *Handler) principal(w http.ResponseWriter, r *http.Request) (*httpapi.Principal, bool) {
	p, err := h.cfg.Access.Authenticate(r)
	if err != nil {
		var ae *httpapi.AuthError
		challenge := `Bearer realm="kafkagate"`
		if errors.As(err, &ae) && ae.Challenge != "" {
			challenge = ae.Challenge
		}
		h.log.Warn("viewer: authentication failed", "path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: err.Error()})
		return nil, false
	}
	return p, true
}

// topics lists the topics the page offers.
func (h *Handler) topics(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.principal(w, r); !ok {
		return
	}
	names := h.cfg.Policies.Topics()
	if h.cfg.Topics != nil {
		ts, err := h.cfg.Topics(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "Kafka unavailable"})
			return
		}
		for _, t := range ts {
			if !strings.HasPrefix(t, "__") && !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	slices.Sort(names)
	writeJSON(w, http.StatusOK, map[string]any{"topics": names})
}

// rotate rotates the keys of a topic's policy (admin).
func (h *Handler) rotate(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	if !p.Can(httpapi.RightAdmin, "") {
		writeJSON(w, http.StatusForbidden, apiError{Error: "principal " + p.Name + " lacks the right admin"})
		return
	}
	if h.cfg.Rotate == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "rotation is not available here"})
		return
	}
	var body struct {
		Topic string `json:"topic"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || !ValidTopic(body.Topic) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: `want {"topic": "<topic>"}`})
		return
	}
	if _, ok := h.cfg.Policies.For(body.Topic); !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: "topic " + body.Topic + " has no policy: no keys to rotate"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rot, err := h.cfg.Rotate(ctx, body.Topic)
	if err != nil {
		h.log.Warn("viewer: rotation failed", "topic", body.Topic, "principal", p.Name, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "rotation failed: " + err.Error()})
		return
	}
	h.log.Info("viewer: keys rotated", "topic", body.Topic, "principal", p.Name, "keys", len(rot))
	writeJSON(w, http.StatusOK, map[string]any{"topic": body.Topic, "rotated": rot})
}
