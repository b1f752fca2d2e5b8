package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
	"github.com/kafkagate/kafkagate/internal/ui/inspect"
)

// RecordsResponse answers GET /ui/api/records.
type RecordsResponse struct {
	Topic      string `json:"topic"`
	Exists     bool   `json:"exists"`
	Principal  string `json:"principal"`
	CanDecrypt bool   `json:"can_decrypt"`
	CanRotate  bool   `json:"can_rotate"`
	CanProduce bool   `json:"can_produce"`
	// ClusterID is the REST API's cluster id (the page produces test
	// records through the API); Policy is the topic's policy, nil without
	// one.
	ClusterID string      `json:"cluster_id,omitempty"`
	Policy    *PolicyView `json:"policy"`
	// Withheld says why the decrypted pane is empty.
	Withheld string `json:"withheld,omitempty"`
	// Cursor is the next offset of each partition: send it back as
	// cursor=p:o,p:o to get only newer records.
	Cursor  map[int32]int64 `json:"cursor"`
	Records []RecordView    `json:"records"`
}

// RecordView is one record in both forms.
type RecordView struct {
	Stored inspect.Stored `json:"stored"`
	// StoredWithheld: the record is stored in clear and the viewer lacks
	// consume:<topic>, so its key, value and header values are not sent
	// (see withhold for the other formats).
	StoredWithheld bool `json:"stored_withheld,omitempty"`
	// Decrypted is nil when the viewer lacks consume:<topic>.
	Decrypted *Decrypted `json:"decrypted"`
}

// Decrypted is what an authorised consumer gets.
type Decrypted struct {
	Status    string                `json:"status"`
	Value     *string               `json:"value"`
	Binary    bool                  `json:"binary,omitempty"`
	Truncated bool                  `json:"truncated,omitempty"`
	Fields    []protect.FieldStatus `json:"fields"`
	Error     string                `json:"error,omitempty"`
}

const (
	defaultLimit = 20
	maxLimit     = 200
)

// records answers GET /ui/api/records?topic=T[&cursor=p:o,...][&limit=n]:
// without a cursor the last limit records of each partition, with one the
// records after it (at most limit per partition).
func (h *Handler) records(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	topic := q.Get("topic")
	if !ValidTopic(topic) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "query parameter topic must be a Kafka topic name"})
		return
	}
	canConsume, isAdmin := p.Can(httpapi.RightConsume, topic), p.Can(httpapi.RightAdmin, "")
	if !canConsume && !isAdmin {
		writeJSON(w, http.StatusForbidden, apiError{Error: "principal " + p.Name + " lacks the right consume:" + topic + " (or admin, to see records as stored)"})
		return
	}
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "query parameter limit must be an integer in [1, " + strconv.Itoa(maxLimit) + "]"})
			return
		}
		limit = n
	}
	cursor, err := parseCursor(q.Get("cursor"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	resp := RecordsResponse{Topic: topic, Principal: p.Name, CanDecrypt: canConsume, CanRotate: isAdmin && h.cfg.Rotate != nil,
		CanProduce: p.Can(httpapi.RightProduce, topic), Cursor: map[int32]int64{}, Records: []RecordView{}}
	if pol, ok := h.cfg.Policies.For(topic); ok {
		resp.Policy = viewPolicy(pol)
	}
	if !canConsume {
		resp.Withheld = "principal " + p.Name + " lacks the right consume:" + topic + ": plaintext is not shown"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	if h.cfg.ClusterID != nil {
		if id, err := h.cfg.ClusterID(ctx); err == nil {
			resp.ClusterID = id
		}
	}
	recs, exists, err := h.read(ctx, topic, cursor, limit, resp.Cursor)
	if err != nil {
		h.log.Warn("viewer: read failed", "topic", topic, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "cannot read the topic from Kafka: " + err.Error()})
		return
	}
	resp.Exists = exists
	var opened []protect.Opened
	var decErr error
	if canConsume && len(recs) > 0 {
		opened, decErr = h.decrypt(ctx, recs)
	}
	for i, rec := range recs {
		vr := RecordView{Stored: inspect.Describe(rec, h.cfg.MaxValueBytes)}
		if !canConsume {
			h.withhold(&vr, rec)
		}
		switch {
		case !canConsume:
		case decErr != nil:
			vr.Decrypted = &Decrypted{Status: "unavailable", Fields: []protect.FieldStatus{}, Error: decErr.Error()}
		default:
			vr.Decrypted = h.decryptedView(opened[i])
		}
		resp.Records = append(resp.Records, vr)
	}
	writeJSON(w, http.StatusOK, resp)
}

// maxRedact bounds the fields-mode values withhold redacts; a longer one
// is withheld whole.
const maxRedact = 1 << 20

// withhold strips from a record's stored form everything stored in clear,
// for a viewer without consume:<topic>. Kept: partition, offset,
// timestamp, format, value size, header names, the kafkagate. and legacy
// key headers (key names, versions, wrapped keys: no record data) and the
// key chips. Withheld: the record key, every other header value, a
// plaintext value, and in a fields-mode value every scalar but the transit
// ciphertexts (inspect.RedactJSON). Envelope, sealed and legacy values are
// ciphertext whole and shown.
func (h *Handler) withhold(vr *RecordView, rec kafka.Record) {
	s := &vr.Stored
	if s.Key != nil {
		s.Key, s.KeyBinary, s.KeyWithheld = nil, false, true
	}
	for j := range s.Headers {
		if n := s.Headers[j].Name; !strings.HasPrefix(n, envelope.HeaderPrefix) && n != envelope.LegacyKeyHeader {
			s.Headers[j].Value, s.Headers[j].Binary, s.Headers[j].Withheld = "", false, true
		}
	}
	switch s.Format {
	case inspect.FormatPlaintext:
		vr.StoredWithheld = true
		s.Value, s.ValueBinary, s.Truncated = nil, false, false
	case inspect.FormatFields:
		red, ok := []byte(nil), len(rec.Value) <= maxRedact
		if ok {
			red, ok = inspect.RedactJSON(rec.Value)
		}
		if !ok {
			vr.StoredWithheld = true
			s.Value, s.ValueBinary, s.Truncated = nil, false, false
			return
		}
		d := inspect.Describe(kafka.Record{Value: red}, h.cfg.MaxValueBytes)
		s.Value, s.ValueBinary, s.Truncated = d.Value, d.ValueBinary, d.Truncated
	}
}

// read fetches the records after cursor (the tail when a partition has no
// cursor) and fills next with each partition's next offset.
func (h *Handler) read(ctx context.Context, topic string, cursor map[int32]int64, limit int, next map[int32]int64) ([]kafka.Record, bool, error) {
	if len(cursor) == 0 && h.cfg.Topics != nil {
		// Asking for the partitions of a missing topic could create it
		// (auto-creation): look it up in the topic list first.
		ts, err := h.topicList.get(ctx)
		if err != nil {
			return nil, false, err
		}
		if !slices.Contains(ts, topic) {
			return nil, false, nil
		}
	}
	parts, err := h.cfg.Kafka.Partitions(topic)
	if errors.Is(err, kafka.ErrUnknownTopic) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []kafka.Record
	for _, part := range parts {
		lo, hi, err := h.cfg.Kafka.Watermarks(topic, part)
		if err != nil {
			return nil, true, err
		}
		start, ok := cursor[part]
		if !ok || start < lo || start > hi {
			start = max(lo, hi-int64(limit))
		}
		next[part] = start
		if start >= hi {
			continue
		}
		recs, err := h.cfg.Kafka.Read(ctx, topic, part, start, limit)
		if err != nil {
			return nil, true, err
		}
		if len(recs) > 0 {
			next[part] = recs[len(recs)-1].Offset + 1
		}
		out = append(out, recs...)
	}
	record.SortByTime(out)
	return out, true, nil
}

func (h *Handler) decrypt(ctx context.Context, recs []kafka.Record) ([]protect.Opened, error) {
	return h.cfg.Engine.Decrypt(ctx, recs)
}

// decryptedView renders a decryption outcome; JSON values are indented.
func (h *Handler) decryptedView(o protect.Opened) *Decrypted {
	d := &Decrypted{Status: string(o.Status), Fields: o.Fields}
	if d.Fields == nil {
		d.Fields = []protect.FieldStatus{}
	}
	if o.Err != nil {
		d.Error = o.Err.Error()
	}
	if o.Value == nil {
		return d
	}
	v := o.Value
	if json.Valid(v) {
		var b bytes.Buffer
		if json.Indent(&b, v, "", "  ") == nil {
			v = b.Bytes()
		}
	}
	if len(v) > h.cfg.MaxValueBytes {
		v, d.Truncated = v[:h.cfg.MaxValueBytes], true
		for len(v) > 0 && !utf8.Valid(v) && utf8.Valid(o.Value) {
			v = v[:len(v)-1]
		}
	}
	s := inspect.Describe(kafka.Record{Value: v}, 0)
	d.Value, d.Binary = s.Value, s.ValueBinary
	return d
}

// parseCursor reads "p:o,p:o".
func parseCursor(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	if s == "" {
		return out, nil
	}
	bad := errors.New("query parameter cursor must be partition:offset pairs separated by commas")
	for _, pair := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, bad
		}
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, bad
		}
		out[int32(p)] = o
	}
	return out, nil
}
