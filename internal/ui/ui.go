// Package ui is kafkagate's live web viewer, served by the gateway under
// /ui. It shows a topic's records as Kafka stores them (ciphertext,
// headers, key names and versions: what the broker's operator sees) beside
// their decrypted form (what an authorised consumer sees), follows new
// records by polling, produces a test record through the REST API, and
// rotates the topic's keys.
//
// The page is a shell rendered with html/template: it holds no topic
// name, cluster id or policy, only what the address bar already says
// (the topic asked for). A small embedded script (no build step) fetches
// everything from /ui/api/... and fills the page with text nodes only.
// The page and its static files need no credentials; every /ui/api call is
// authenticated like the REST API (httpapi.Access: a bearer token, which
// the page keeps in the tab's session storage, or a client certificate),
// counted against the principal's rate limit, and authorised per topic:
// the topic list shows the topics the principal holds a right on (every
// topic for admin), the stored form and the policy need consume:<topic>
// or admin, the decrypted form consume:<topic>, rotation admin. A viewer
// without consume:<topic> never receives anything stored in clear: only
// offsets, timestamps, sizes, header names, key names and versions, and
// the transit ciphertexts of a record (see withhold).
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
	"sync"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
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
	// TopicsTTL is how long a topic list from Topics is reused, so page
	// polls do not each refresh Kafka's metadata; default 3 s.
	TopicsTTL time.Duration
	// Rotate rotates the keys of a topic's policy; nil hides the button.
	Rotate func(ctx context.Context, topic string) ([]Rotation, error)
	// Access authenticates /ui/api calls; nil: authentication is off (the
	// gateway then serves loopback only).
	Access *httpapi.Access
	// Admit applies the API's per-principal rate limit to an
	// authenticated /ui/api call, answering 429 itself when it returns
	// false (httpapi.Server.Admit); nil: no limit.
	Admit  func(w http.ResponseWriter, r *http.Request, p *httpapi.Principal) bool
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
	guarded   http.Handler
	topicList *topicCache
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
	if cfg.TopicsTTL <= 0 {
		cfg.TopicsTTL = 3 * time.Second
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, topicList: &topicCache{list: cfg.Topics, ttl: cfg.TopicsTTL}}
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

// pageData is what the page template renders: nothing the address bar
// does not already say.
type pageData struct {
	Topic     string
	BadTopic  string
	AuthOn    bool
	CanRotate bool
	PollMS    int64
	Sample    string
}

// index renders the page shell. It holds no data: the script fetches the
// topics, the policy and the records with the viewer's credentials.
func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	d := pageData{AuthOn: h.cfg.Access != nil, CanRotate: h.cfg.Rotate != nil, PollMS: h.cfg.Poll.Milliseconds()}
	if t := r.URL.Query().Get("topic"); t != "" {
		if ValidTopic(t) {
			d.Topic = t
			d.Sample = `{"Name": "Ann Example", "Address": "1 Main St, Springfield", "credit_card": "4111-1111-1111-1111"}`
		} else {
			d.BadTopic = "not a Kafka topic name"
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := h.page.Execute(w, d); err != nil {
		h.log.Warn("viewer: render page", "error", err)
	}
}

// PolicyView is a topic's policy as /ui/api/records shows it.
type PolicyView struct {
	Mode   string      `json:"mode"`
	Key    string      `json:"key,omitempty"`
	Fields []FieldView `json:"fields,omitempty"`
}

// FieldView is one field of a fields policy.
type FieldView struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	Detail string `json:"detail,omitempty"`
}

func viewPolicy(p *policy.Policy) *PolicyView {
	v := &PolicyView{Mode: string(p.Mode)}
	switch p.Mode {
	case policy.Envelope:
		v.Key = p.Envelope.Key + " (data key " + p.Envelope.DEK + ")"
	case policy.Fields:
		v.Key = p.TransitKey
		for _, f := range p.Fields {
			fv := FieldView{Path: f.PathString(), Mode: string(f.Mode)}
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

// principal authenticates an API call and applies the rate limit,
// answering 401 or 429 itself on failure.
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
	if h.cfg.Admit != nil && !h.cfg.Admit(w, r, p) {
		return nil, false
	}
	return p, true
}

// topics lists the topics the page offers: those the principal holds a
// produce or consume right on, every topic for admin.
func (h *Handler) topics(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	names, err := h.allTopics(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "Kafka unavailable"})
		return
	}
	admin := p.Can(httpapi.RightAdmin, "")
	mine := []string{}
	for _, t := range names {
		if admin || p.Can(httpapi.RightConsume, t) || p.Can(httpapi.RightProduce, t) {
			mine = append(mine, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"topics": mine})
}

// allTopics is the policies' topics and the cluster's (internal topics
// left out), sorted.
func (h *Handler) allTopics(ctx context.Context) ([]string, error) {
	names := h.cfg.Policies.Topics()
	ts, err := h.topicList.get(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if !strings.HasPrefix(t, "__") && !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	return names, nil
}

// topicCache reuses the cluster's topic list for ttl: listing refreshes
// Kafka's metadata, which page polls must not trigger at will. One caller
// refreshes while the others wait for its answer.
type topicCache struct {
	list func(ctx context.Context) ([]string, error) // nil: no cluster topics
	ttl  time.Duration
	mu   sync.Mutex
	at   time.Time
	last []string
}

func (c *topicCache) get(ctx context.Context) ([]string, error) {
	if c.list == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && time.Since(c.at) < c.ttl {
		return c.last, nil
	}
	ts, err := c.list(ctx)
	if err != nil {
		return nil, err
	}
	c.last, c.at = ts, time.Now()
	return ts, nil
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
