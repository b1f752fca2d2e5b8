package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/record"
)

// produceRequest is a REST Proxy v3 ProduceRequest.
type produceRequest struct {
	PartitionID *int32          `json:"partition_id"`
	Headers     []requestHeader `json:"headers"`
	Key         *requestData    `json:"key"`
	Value       *requestData    `json:"value"`
	Timestamp   *time.Time      `json:"timestamp"`
	hasValue    bool
}

type requestHeader struct {
	Name  string  `json:"name"`
	Value *string `json:"value"` // base64
}

type requestData struct {
	Type string          `json:"type"` // JSON (default), STRING, BINARY
	Data json.RawMessage `json:"data"`
	// Schema Registry fields of ProduceRequestData: accepted when null,
	// refused otherwise (CodeSchemaUnsupported).
	Subject             json.RawMessage `json:"subject"`
	SubjectNameStrategy json.RawMessage `json:"subject_name_strategy"`
	SchemaID            json.RawMessage `json:"schema_id"`
	SchemaVersion       json.RawMessage `json:"schema_version"`
	Schema              json.RawMessage `json:"schema"`
}

// schemaField names the first Schema Registry field set to a non-null
// value, or "".
func (d *requestData) schemaField() string {
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"subject", d.Subject}, {"subject_name_strategy", d.SubjectNameStrategy}, {"schema_id", d.SchemaID}, {"schema_version", d.SchemaVersion}, {"schema", d.Schema}} {
		if len(f.v) > 0 && string(f.v) != "null" {
			return f.name
		}
	}
	return ""
}

// isNull reports data that is absent or JSON null.
func isNull(d json.RawMessage) bool { return len(d) == 0 || string(d) == "null" }

// batchRequest is the records:batch body.
type batchRequest struct {
	Entries []batchEntry `json:"entries"`
}

type batchEntry struct {
	ID string `json:"id"`
	produceRequest
}

// reservedHeader reports the header names a client may not send, in any
// case: the kafkagate. prefix (the gateway's own headers) and the original
// demo's legacy file headers, X-encryptionkey and X-filename, which would
// otherwise let a client re-post a legacy record copied from another
// topic.
func reservedHeader(name string) bool { return record.Reserved(name) }

// decodeRecord checks one request object strictly: unknown fields are
// refused so a misspelt "value" can never produce an empty record.
func decodeRecord(raw json.RawMessage) (produceRequest, *apiError) {
	var req produceRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fieldErr(err)
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(raw, &probe)
	_, req.hasValue = probe["value"]
	return req, nil
}

func fieldErr(err error) *apiError {
	var ute *json.UnmarshalTypeError
	msg := err.Error()
	field := ""
	if errors.As(err, &ute) {
		msg = fmt.Sprintf("request field %q has the wrong type (want %s)", ute.Field, ute.Type)
		field = ute.Field
	} else if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		msg = "unknown request field " + name
		if f, err := strconv.Unquote(name); err == nil {
			field = f
		}
	}
	return &apiError{ErrorCode: CodeBadRequestField, Message: msg, Field: field}
}

// prepared is a record ready for encryption.
type prepared struct {
	msg     kafka.Message
	keyType string
	valType string
	tomb    bool
	err     *apiError
}

func (s *Server) prepare(topic string, req produceRequest) prepared {
	p := prepared{msg: kafka.Message{Topic: topic, Partition: -1}}
	if req.PartitionID != nil {
		if *req.PartitionID < 0 {
			p.err = &apiError{ErrorCode: CodeBadRequestField, Message: "partition_id must be >= 0", Field: "partition_id"}
			return p
		}
		p.msg.Partition = *req.PartitionID
	}
	if req.Timestamp != nil {
		p.msg.Timestamp = *req.Timestamp
	} else {
		// As REST Proxy: the produce time, so the report always has one.
		p.msg.Timestamp = time.Now().Truncate(time.Millisecond)
	}
	if len(req.Headers) > s.cfg.MaxHeaders {
		p.err = &apiError{ErrorCode: CodeBadRequestField, Message: fmt.Sprintf("headers: at most %d headers per record", s.cfg.MaxHeaders), Field: "headers"}
		return p
	}
	for i, h := range req.Headers {
		field := fmt.Sprintf("headers[%d]", i)
		if h.Name == "" || !utf8.ValidString(h.Name) || strings.ContainsAny(h.Name, "\x00\r\n") {
			p.err = &apiError{ErrorCode: CodeBadRequestField, Message: field + ".name must be a non-empty UTF-8 string without control characters", Field: field + ".name"}
			return p
		}
		if reservedHeader(h.Name) {
			p.err = &apiError{ErrorCode: CodeBadRequestField, Message: field + ".name: header " + strconv.Quote(h.Name) + " is reserved (the kafkagate. prefix, X-encryptionkey and X-filename)", Field: field + ".name"}
			return p
		}
		var v []byte
		if h.Value != nil {
			b, err := base64.StdEncoding.DecodeString(*h.Value)
			if err != nil {
				p.err = &apiError{ErrorCode: CodeBadRequestField, Message: field + ".value is not valid base64", Field: field + ".value"}
				return p
			}
			v = b
		}
		if len(h.Name)+len(v) > s.cfg.MaxHeaderBytes {
			p.err = &apiError{ErrorCode: CodeBadRequestField, Message: fmt.Sprintf("%s is larger than %d bytes", field, s.cfg.MaxHeaderBytes), Field: field}
			return p
		}
		p.msg.Headers = append(p.msg.Headers, kafka.Header{Key: h.Name, Value: v})
	}
	if req.Key != nil {
		b, typ, aerr := dataBytes(req.Key, "key")
		if aerr != nil {
			p.err = aerr
			return p
		}
		p.msg.Key, p.keyType = b, typ
	}
	// A missing value, "value": null, or data absent or null (any type)
	// is a null value, as the spec allows (its empty_value example).
	if req.Value == nil {
		p.tomb = true
		return p
	}
	b, typ, aerr := dataBytes(req.Value, "value")
	if aerr != nil {
		p.err = aerr
		return p
	}
	p.valType = typ
	if b == nil {
		p.tomb = true
		return p
	}
	p.msg.Value = b
	return p
}

// dataBytes turns a key or value object into bytes; nil (with no error)
// when its data is absent or null: a null key or value.
func dataBytes(d *requestData, field string) ([]byte, string, *apiError) {
	typ := strings.ToUpper(d.Type)
	if typ == "" {
		typ = "JSON"
	}
	if f := d.schemaField(); f != "" {
		return nil, typ, &apiError{ErrorCode: CodeSchemaUnsupported, Message: field + "." + f + ": Schema Registry formats are not supported by this gateway", Field: field + "." + f}
	}
	switch typ {
	case "AVRO", "PROTOBUF", "JSONSCHEMA":
		return nil, typ, &apiError{ErrorCode: CodeSchemaUnsupported, Message: field + ".type " + typ + ": Schema Registry formats are not supported by this gateway (use JSON, STRING or BINARY)", Field: field + ".type"}
	case "JSON", "STRING", "BINARY":
		if isNull(d.Data) {
			return nil, typ, nil
		}
	}
	switch typ {
	case "JSON":
		var buf bytes.Buffer
		if err := json.Compact(&buf, d.Data); err != nil {
			return nil, typ, &apiError{ErrorCode: CodeBadRequestField, Message: field + ".data is not valid JSON", Field: field + ".data"}
		}
		return buf.Bytes(), typ, nil
	case "STRING":
		var s string
		if err := json.Unmarshal(d.Data, &s); err != nil {
			return nil, typ, &apiError{ErrorCode: CodeBadRequestField, Message: field + ".data must be a JSON string for type STRING", Field: field + ".data"}
		}
		return []byte(s), typ, nil
	case "BINARY":
		var s string
		if err := json.Unmarshal(d.Data, &s); err != nil {
			return nil, typ, &apiError{ErrorCode: CodeBadRequestField, Message: field + ".data must be a base64 string for type BINARY", Field: field + ".data"}
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, typ, &apiError{ErrorCode: CodeBadRequestField, Message: field + ".data is not valid base64", Field: field + ".data"}
		}
		return b, typ, nil
	}
	return nil, typ, &apiError{ErrorCode: CodeBadRequestField, Message: field + ".type must be JSON, STRING or BINARY", Field: field + ".type"}
}

// readBody enforces content type and size, and returns the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if e := checkContentType(r.Header.Get(ContentTypeHeader), MediaJSON); e != nil {
		return nil, e
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newErr(CodeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBodyBytes))
		}
		return nil, newErr(CodeBadJSON, "request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newErr(CodeBadJSON, "request body is empty")
	}
	// JSON text must be UTF-8 (RFC 8259 §8.1); Go's decoder would otherwise
	// replace invalid bytes in header names and STRING data silently.
	if !utf8.Valid(body) {
		return nil, newErr(CodeBadJSON, fmt.Sprintf("request body is not valid UTF-8 (at byte %d); JSON text must be UTF-8", invalidUTF8At(body)))
	}
	return body, nil
}

// invalidUTF8At returns the offset of the first invalid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// produceInput is what both produce endpoints start from: the topic, the
// request body and the topic's policy.
func (s *Server) produceInput(w http.ResponseWriter, r *http.Request) (string, []byte, *policy.Policy, *apiError) {
	topic := chi.URLParam(r, "topic")
	body, aerr := s.readBody(w, r)
	if aerr != nil {
		return topic, nil, nil, aerr
	}
	p, aerr := s.policyFor(topic)
	return topic, body, p, aerr
}

// policyFor fails closed: no policy, no produce.
func (s *Server) policyFor(topic string) (*policy.Policy, *apiError) {
	p, ok := s.cfg.Policies.For(topic)
	if !ok {
		return nil, newErr(CodeNoPolicy, "topic "+topic+" has no encryption policy; the gateway refuses to produce to it")
	}
	return p, nil
}

// produceResponse is a REST Proxy v3 ProduceResponse plus what encrypted it.
type produceResponse struct {
	ErrorCode   int         `json:"error_code"`
	Message     string      `json:"message,omitempty"`
	ClusterID   string      `json:"cluster_id,omitempty"`
	TopicName   string      `json:"topic_name,omitempty"`
	PartitionID *int32      `json:"partition_id,omitempty"`
	Offset      *int64      `json:"offset,omitempty"`
	Timestamp   *time.Time  `json:"timestamp,omitempty"`
	Key         *sizeInfo   `json:"key,omitempty"`
	Value       *sizeInfo   `json:"value,omitempty"`
	Encryption  *encryption `json:"encryption,omitempty"`
	Field       string      `json:"field,omitempty"`
}

type sizeInfo struct {
	Type string `json:"type"`
	Size int    `json:"size"`
}

type encryption struct {
	Policy string              `json:"policy"`
	Fields []protect.FieldInfo `json:"fields"`
}

// process encrypts and produces prepared records. Records with an error
// are neither encrypted nor produced. A non-nil error means nothing was
// produced at all (Vault unavailable or the request timed out before
// producing).
func (s *Server) process(r *http.Request, topic string, p *policy.Policy, recs []prepared) ([]produceResponse, *apiError) {
	ctx := r.Context()
	var in []protect.Record
	var idx []int
	for i, rec := range recs {
		if rec.err == nil && !rec.tomb {
			in = append(in, protect.Record{Topic: topic, Key: rec.msg.Key, Value: rec.msg.Value, Headers: rec.msg.Headers})
			idx = append(idx, i)
		}
	}
	sealed, err := s.cfg.Engine.EncryptRecords(ctx, p, in)
	if err != nil {
		s.log.Warn("encryption failed; nothing produced", "topic", topic, "error", err)
		return nil, fromError(err)
	}
	fields := make([][]protect.FieldInfo, len(recs))
	for j, sv := range sealed {
		i := idx[j]
		if sv.Err != nil {
			var pe *protect.Error
			if errors.As(sv.Err, &pe) {
				recs[i].err = fromRecordError(pe)
			} else {
				recs[i].err = fromError(sv.Err)
			}
			continue
		}
		recs[i].msg.Value = sv.Value
		recs[i].msg.Headers = append(recs[i].msg.Headers, sv.Headers...)
		fields[i] = sv.Fields
	}
	var msgs []kafka.Message
	var midx []int
	for i, rec := range recs {
		if rec.err == nil {
			msgs = append(msgs, rec.msg)
			midx = append(midx, i)
		}
	}
	var dels []kafka.Delivery
	if len(msgs) > 0 {
		if dels, err = s.cfg.Kafka.Produce(ctx, msgs); err != nil {
			s.log.Error("produce outcome unknown", "topic", topic, "records", len(msgs), "error", err)
			return nil, newErr(CodeKafkaDown, "kafka did not acknowledge in time; the records' state is unknown")
		}
	}
	clusterID, _ := ctx.Value(clusterIDKey{}).(string)
	out := make([]produceResponse, len(recs))
	for i, rec := range recs {
		if rec.err != nil {
			out[i] = produceResponse{ErrorCode: rec.err.ErrorCode, Message: rec.err.Message, Field: rec.err.Field}
		}
	}
	for j, d := range dels {
		i := midx[j]
		if d.Err != nil {
			ae := fromError(d.Err)
			switch {
			case errors.Is(d.Err, kafka.ErrTooLarge):
				ae = newErr(CodeRecordTooLarge, "the encrypted record is larger than Kafka accepts")
			case errors.Is(d.Err, kafka.ErrUnknownPartition), recs[i].msg.Partition >= 0 && errors.Is(d.Err, kafka.ErrUnknownTopic):
				ae = &apiError{ErrorCode: CodePartitionNotFound, Message: "partition not found", Field: "partition_id"}
			}
			s.log.Warn("produce failed", "topic", topic, "error", d.Err)
			out[i] = produceResponse{ErrorCode: ae.ErrorCode, Message: ae.Message, Field: ae.Field}
			continue
		}
		part, off, ts := d.Partition, d.Offset, d.Timestamp
		if ts.IsZero() {
			ts = recs[i].msg.Timestamp
		}
		resp := produceResponse{ErrorCode: http.StatusOK, ClusterID: clusterID, TopicName: topic, PartitionID: &part, Offset: &off, Timestamp: &ts}
		// size: the bytes written to Kafka (after encryption).
		if recs[i].keyType != "" {
			resp.Key = &sizeInfo{Type: recs[i].keyType, Size: len(recs[i].msg.Key)}
		}
		if recs[i].valType != "" {
			resp.Value = &sizeInfo{Type: recs[i].valType, Size: len(recs[i].msg.Value)}
		}
		resp.Encryption = &encryption{Policy: string(p.Mode), Fields: fields[i]}
		if resp.Encryption.Fields == nil {
			resp.Encryption.Fields = []protect.FieldInfo{}
		}
		out[i] = resp
	}
	return out, nil
}

// produce handles POST .../records: one JSON object, or several
// concatenated (REST Proxy v3 streaming mode), answered with one report
// per record (writeReports).
func (s *Server) produce(w http.ResponseWriter, r *http.Request) {
	topic, body, p, aerr := s.produceInput(w, r)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	// Decode every object first: a malformed stream produces nothing.
	dec := json.NewDecoder(bytes.NewReader(body))
	var raws []json.RawMessage
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeErr(w, newErr(CodeBadJSON, fmt.Sprintf("request body is not valid JSON (record %d): %v", len(raws)+1, err)))
			return
		}
		raws = append(raws, raw)
		if len(raws) > s.cfg.MaxRecords {
			writeErr(w, newErr(CodeBadRequestField, fmt.Sprintf("at most %d records per request", s.cfg.MaxRecords)))
			return
		}
	}
	recs := make([]prepared, len(raws))
	for i, raw := range raws {
		if len(bytes.TrimSpace(raw)) == 0 || raw[0] != '{' {
			recs[i].err = newErr(CodeBadRequestField, "each record must be a JSON object")
			continue
		}
		req, aerr := decodeRecord(raw)
		if aerr != nil {
			recs[i].err = aerr
			continue
		}
		recs[i] = s.prepare(topic, req)
	}
	out, aerr := s.process(r, topic, p, recs)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	writeReports(w, out)
}

// writeReports answers a produce request as REST Proxy does: HTTP 200 with
// one report per record, a failed record's report holding its error_code
// and message. Several reports are application/json objects, each
// followed by CRLF. One exception keeps clients' retry logic working:
// when no record was produced because Vault or Kafka was unavailable
// (every report a 503 code), the answer is that 503 with Retry-After.
func writeReports(w http.ResponseWriter, out []produceResponse) {
	if unavailable := unavailableAll(out); unavailable != nil {
		writeErr(w, unavailable)
		return
	}
	if len(out) == 1 {
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	for _, o := range out {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(o)
		_, _ = w.Write(append(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), '\r', '\n'))
	}
}

// unavailableAll returns the first report's error when every report is a
// 503 (nothing was produced, and retrying may succeed), else nil.
func unavailableAll(out []produceResponse) *apiError {
	for _, o := range out {
		if o.ErrorCode/100 != http.StatusServiceUnavailable {
			return nil
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &apiError{ErrorCode: out[0].ErrorCode, Message: out[0].Message, Field: out[0].Field}
}

type batchResult struct {
	Successes []batchSuccess `json:"successes"`
	Failures  []batchFailure `json:"failures"`
}

type batchSuccess struct {
	ID string `json:"id"`
	produceResponse
}

type batchFailure struct {
	ID        string `json:"id"`
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
}

// produceBatch handles POST .../records:batch: 207 with successes and
// failures per entry id.
func (s *Server) produceBatch(w http.ResponseWriter, r *http.Request) {
	topic, body, p, aerr := s.produceInput(w, r)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	var outer struct {
		Entries []json.RawMessage `json:"entries"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&outer); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
			writeErr(w, newErr(CodeBadJSON, "request body is not valid JSON: "+err.Error()))
			return
		}
		writeErr(w, fieldErr(err))
		return
	}
	if dec.More() {
		writeErr(w, newErr(CodeBadJSON, "request body has data after the batch object"))
		return
	}
	if len(outer.Entries) == 0 {
		writeErr(w, &apiError{ErrorCode: CodeBadRequestField, Message: "entries must hold at least one record", Field: "entries"})
		return
	}
	if len(outer.Entries) > s.cfg.MaxRecords {
		writeErr(w, newErr(CodeBadRequestField, fmt.Sprintf("at most %d entries per batch", s.cfg.MaxRecords)))
		return
	}
	ids := make([]string, len(outer.Entries))
	seen := map[string]bool{}
	recs := make([]prepared, len(outer.Entries))
	for i, raw := range outer.Entries {
		var e batchEntry
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			ids[i] = fmt.Sprint(i)
			recs[i].err = fieldErr(err)
			continue
		}
		ids[i] = e.ID
		if e.ID == "" || seen[e.ID] {
			ids[i] = fmt.Sprint(i)
			recs[i].err = &apiError{ErrorCode: CodeBadRequestField, Message: "entries[].id must be present and unique", Field: "id"}
			continue
		}
		seen[e.ID] = true
		var probe map[string]json.RawMessage
		_ = json.Unmarshal(raw, &probe)
		_, e.hasValue = probe["value"]
		recs[i] = s.prepare(topic, e.produceRequest)
	}
	out, aerr := s.process(r, topic, p, recs)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	res := batchResult{Successes: []batchSuccess{}, Failures: []batchFailure{}}
	for i, o := range out {
		if o.ErrorCode == http.StatusOK {
			res.Successes = append(res.Successes, batchSuccess{ID: ids[i], produceResponse: o})
		} else {
			res.Failures = append(res.Failures, batchFailure{ID: ids[i], ErrorCode: o.ErrorCode, Message: o.Message, Field: o.Field})
		}
	}
	writeJSON(w, http.StatusMultiStatus, res)
}
