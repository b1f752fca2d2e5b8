package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Data is a key or value in a read response.
type Data struct {
	Type string          `json:"type"` // JSON, STRING or BINARY
	Data json.RawMessage `json:"data"`
}

// OutHeader is a record header in a read response (value base64).
type OutHeader struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// Decryption is a record's decryption status.
type Decryption struct {
	Status string `json:"status"`
	// Code is the record-level failure code (docs/errors.md), when the
	// record failed as a whole: too_deep, not_allowed, bad_header, ...
	Code   string                `json:"code,omitempty"`
	Error  string                `json:"error,omitempty"`
	Fields []protect.FieldStatus `json:"fields"`
}

// ReadRecord is one decrypted record.
type ReadRecord struct {
	PartitionID int32       `json:"partition_id"`
	Offset      int64       `json:"offset"`
	Timestamp   time.Time   `json:"timestamp"`
	Key         *Data       `json:"key"`
	Value       *Data       `json:"value"`
	Headers     []OutHeader `json:"headers"`
	Decryption  Decryption  `json:"decryption"`
}

// ReadResponse answers GET .../records.
type ReadResponse struct {
	Kind        string       `json:"kind"`
	ClusterID   string       `json:"cluster_id"`
	TopicName   string       `json:"topic_name"`
	PartitionID int32        `json:"partition_id"`
	NextOffset  int64        `json:"next_offset"`
	Records     []ReadRecord `json:"records"`
}

// read handles the stateless decrypting GET .../records?partition=&offset=&max=.
func (s *Server) read(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	q := r.URL.Query()
	partition, offset, max := int64(0), int64(kafka.OffsetOldest), int64(s.cfg.DefaultReadRecord)
	for _, p := range []struct {
		name string
		dst  *int64
		min  int64
		max  int64
	}{{"partition", &partition, 0, 1 << 30}, {"offset", &offset, 0, 1 << 62}, {"max", &max, 1, int64(s.cfg.MaxReadRecords)}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < p.min || n > p.max {
			writeErr(w, &apiError{ErrorCode: CodeBadQuery, Message: "query parameter " + p.name + " must be an integer in [" + strconv.FormatInt(p.min, 10) + ", " + strconv.FormatInt(p.max, 10) + "]", Field: p.name})
			return
		}
		*p.dst = n
	}
	ro, apiErr := renderOptions(r)
	if apiErr != nil {
		writeErr(w, apiErr)
		return
	}
	recs, err := s.cfg.Kafka.Read(r.Context(), topic, int32(partition), offset, int(max))
	if err != nil {
		writeErr(w, fromError(err))
		return
	}
	// Blind index filter (indexfilter.go): only matching records are
	// decrypted and returned; next_offset still passes all that were read.
	nextOffset := offset
	if len(recs) > 0 {
		nextOffset = recs[len(recs)-1].Offset + 1
	}
	keep, ferr := s.indexFilter(r, topic, recs)
	if ferr != nil {
		writeErr(w, ferr)
		return
	}
	if keep != nil {
		var krecs []kafka.Record
		for i := range recs {
			if keep[i] {
				krecs = append(krecs, recs[i])
			}
		}
		recs = krecs
	}
	opened, err := s.cfg.Engine.Decrypt(r.Context(), recs)
	if err != nil {
		writeErr(w, fromError(err))
		return
	}
	clusterID, _ := r.Context().Value(clusterIDKey{}).(string)
	resp := ReadResponse{Kind: "KafkaRecordList", ClusterID: clusterID, TopicName: topic, PartitionID: int32(partition), NextOffset: nextOffset, Records: make([]ReadRecord, 0, len(recs))}
	for i, rec := range recs {
		resp.Records = append(resp.Records, RenderRecord(rec, opened[i], ro))
	}
	writeJSON(w, http.StatusOK, resp)
}

// ToReadRecord renders a record and its decryption outcome with the
// default RenderOptions.
func ToReadRecord(rec kafka.Record, o protect.Opened) ReadRecord {
	return RenderRecord(rec, o, RenderOptions{})
}

// RenderRecord renders a record and its decryption outcome: the key and
// value in the types the writer recorded (types.go), the headers without
// the internal ones unless ro asks for them.
func RenderRecord(rec kafka.Record, o protect.Opened, ro RenderOptions) ReadRecord {
	kt, vt := typesOf(rec.Headers)
	rr := ReadRecord{PartitionID: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Key: renderData(rec.Key, kt),
		Value: renderData(o.Value, valueType(o, vt)), Headers: outHeaders(rec.Headers, ro)}
	rr.Decryption = Decryption{Status: string(o.Status), Fields: o.Fields}
	if rr.Decryption.Fields == nil {
		rr.Decryption.Fields = []protect.FieldStatus{}
	}
	if o.Err != nil {
		rr.Decryption.Error = o.Err.Error()
		var pe *protect.Error
		if errors.As(o.Err, &pe) {
			rr.Decryption.Code = pe.Code
		}
	}
	return rr
}

// renderOptions reads the internal_headers query parameter.
func renderOptions(r *http.Request) (RenderOptions, *apiError) {
	v := r.URL.Query().Get(InternalHeadersParam)
	if v == "" {
		return RenderOptions{}, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return RenderOptions{}, &apiError{ErrorCode: CodeBadQuery, Message: "query parameter " + InternalHeadersParam + " must be true or false", Field: InternalHeadersParam}
	}
	return RenderOptions{InternalHeaders: b}, nil
}

func asData(b []byte) *Data {
	if b == nil {
		return nil
	}
	if json.Valid(b) {
		return &Data{Type: "JSON", Data: b}
	}
	if utf8.Valid(b) {
		s, _ := json.Marshal(string(b))
		return &Data{Type: "STRING", Data: s}
	}
	s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
	return &Data{Type: "BINARY", Data: s}
}
