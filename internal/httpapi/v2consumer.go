package httpapi

// The REST Proxy v2 consumer API over the decrypting reader: consumer
// instances in a consumer group (v2instances.go), their subscription, the
// records decrypted by the topic's policy, committed offsets. Shapes and
// error codes follow Confluent REST Proxy v2 (docs/rest-v2.md lists the
// differences); each record carries its decryption status as the extra
// field "decryption", as the other reads do.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/kafka"
)

// Error codes of the v2 consumer API: REST Proxy v2's numbers where the
// condition is REST Proxy's (docs/errors.md).
const (
	CodeConsumerNotFound       = 40403 // no such consumer instance (for this principal, on this replica)
	CodeConsumerFormatMismatch = 40601 // Accept does not match the instance's format
	CodeConsumerExists         = 40902 // an instance of that name exists in the group
	CodeConsumerIllegalState   = 40903 // e.g. committing a partition not assigned to the instance
	CodeInvalidConsumerConfig  = 42204 // an invalid value in the instance's configuration
	CodeTooManyConsumers       = 42904 // the replica's or the principal's instance limit
	CodeV2Unsupported          = 50102 // a v2 consumer endpoint kafkagate does not offer
)

// Media types of the v2 API.
const (
	MediaV2       = "application/vnd.kafka.v2+json"
	mediaV2Prefix = "application/vnd.kafka."
	mediaV2Suffix = ".v2+json"
)

// V2 consumer formats.
var v2Formats = []string{"binary", "json", "string"}

// V2Group is the Kafka consumer group of a v2 group name: each principal
// has its own namespace, kafkagate-v2.<principal>:<group>, so an instance
// can never join the bridge's, receive-dir's or another principal's group
// and move its offsets.
func V2Group(principal, group string) string {
	return "kafkagate-v2." + principal + ":" + group
}

// v2Name accepts group and instance names: 1 to 200 letters, digits, '.',
// '_' and '-'.
var v2Name = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// v2Routes mounts the API under /consumers.
func (s *Server) v2Routes(r chi.Router) {
	r.Post("/{group}", s.v2Create)
	r.Route("/{group}/instances/{instance}", func(r chi.Router) {
		r.Delete("/", s.withInstance(s.v2Delete))
		r.Post("/subscription", s.withInstance(s.v2Subscribe))
		r.Get("/subscription", s.withInstance(s.v2Subscription))
		r.Delete("/subscription", s.withInstance(s.v2Unsubscribe))
		r.Get("/records", s.withInstance(s.v2Records))
		r.Post("/offsets", s.withInstance(s.v2Commit))
		r.Get("/offsets", s.withInstance(s.v2Committed))
		for _, p := range []string{"/assignments", "/positions", "/positions/beginning", "/positions/end"} {
			r.HandleFunc(p, s.v2Unsupported)
		}
	})
}

// v2Err writes an error in the v2 shape and content type.
func v2Err(w http.ResponseWriter, e *apiError) {
	if e.status() == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	v2JSON(w, e.status(), MediaV2, e)
}

func v2JSON(w http.ResponseWriter, status int, ctype string, v any) {
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// v2KafkaErr maps a Kafka failure.
func v2KafkaErr(err error) *apiError {
	switch {
	case errors.Is(err, kafka.ErrUnknownTopic):
		return newErr(CodeTopicNotFound, "topic not found")
	case errors.Is(err, kafka.ErrUnavailable):
		return newErr(CodeKafkaDown, "kafka is unavailable")
	}
	return fromError(err)
}

// v2Request decodes an optional request body strictly into v (v2Body);
// given is false when the body is empty. On a bad body it answers the
// error and ok is false.
func v2Request(w http.ResponseWriter, r *http.Request, limit int64, v any) (given, ok bool) {
	given, aerr := v2Body(r, limit, v)
	if aerr != nil {
		v2Err(w, aerr)
		return false, false
	}
	return given, true
}

// v2Body decodes an optional request body strictly into v; false when the
// body is empty.
func v2Body(r *http.Request, limit int64, v any) (bool, *apiError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return false, newErr(CodeBadJSON, "request body could not be read")
	}
	if int64(len(body)) > limit {
		return false, newErr(CodeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, newErr(CodeBadJSON, "request body is not valid JSON: "+err.Error())
		}
		return false, fieldErr(err)
	}
	if dec.More() {
		return false, newErr(CodeBadJSON, "request body has data after the JSON object")
	}
	return true, nil
}

// v2Principal is the request's principal (anonymous with authentication
// off).
func v2Principal(r *http.Request) *Principal {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p
	}
	return anonymous()
}

// withInstance serves h with the request's instance, kept in use (its
// idle time stopped) until h returns. Another principal's instance is not
// found: 404.
func (s *Server) withInstance(h func(http.ResponseWriter, *http.Request, *v2Instance)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		group, name := chi.URLParam(r, "group"), chi.URLParam(r, "instance")
		in := s.v2.acquire(v2Key{group: V2Group(principalName(r), group), name: name})
		if in == nil {
			v2Err(w, newErr(CodeConsumerNotFound, "consumer instance not found (instances live on the gateway replica that created them)"))
			return
		}
		defer s.v2.release(in)
		h(w, r, in)
	}
}

// v2CreateRequest is REST Proxy's ConsumerInstanceConfig.
type v2CreateRequest struct {
	ID                       *string    `json:"id"`
	Name                     *string    `json:"name"`
	Format                   *string    `json:"format"`
	AutoOffsetReset          *string    `json:"auto.offset.reset"`
	AutoCommitEnable         *flexValue `json:"auto.commit.enable"`
	FetchMinBytes            *flexValue `json:"fetch.min.bytes"`
	ConsumerRequestTimeoutMS *flexValue `json:"consumer.request.timeout.ms"`
}

// flexValue is a setting given as a JSON string, number or boolean (REST
// Proxy's settings are strings, which Jackson also reads from scalars).
type flexValue string

func (f *flexValue) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexValue(s)
		return nil
	}
	switch t := strings.TrimSpace(string(b)); {
	case t == "true" || t == "false", json.Valid(b) && t != "" && (t[0] == '-' || t[0] >= '0' && t[0] <= '9'):
		*f = flexValue(t)
		return nil
	}
	return fmt.Errorf("want a string, number or boolean")
}

type v2CreateResponse struct {
	InstanceID string `json:"instance_id"`
	BaseURI    string `json:"base_uri"`
}

// v2Create handles POST /consumers/{group}.
func (s *Server) v2Create(w http.ResponseWriter, r *http.Request) {
	if s.v2Groups == nil {
		v2Err(w, newErr(CodeV2Unsupported, "this gateway cannot run consumer instances"))
		return
	}
	p := v2Principal(r)
	if !p.HoldsAny(RightConsume) {
		v2Err(w, newErr(CodeForbidden, "principal "+p.Name+" holds no consume right, so it may not create consumer instances"))
		return
	}
	group := chi.URLParam(r, "group")
	if !v2Name.MatchString(group) {
		v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: "group name must be 1 to 200 letters, digits, '.', '_' or '-'", Field: "group"})
		return
	}
	var req v2CreateRequest
	if _, ok := v2Request(w, r, 64<<10, &req); !ok {
		return
	}
	in := &v2Instance{principal: p.Name, group: group, format: "binary", autoCommit: true, initial: kafka.OffsetNewest}
	invalid := func(field, msg string) {
		v2Err(w, &apiError{ErrorCode: CodeInvalidConsumerConfig, Message: "Invalid consumer configuration: " + field + " " + msg, Field: field})
	}
	name := ""
	switch {
	case req.ID != nil:
		name = *req.ID
	case req.Name != nil:
		name = *req.Name
	default:
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		name = "rest-consumer-" + hex.EncodeToString(b)
	}
	if !v2Name.MatchString(name) {
		invalid("name", "must be 1 to 200 letters, digits, '.', '_' or '-'")
		return
	}
	if req.Format != nil {
		f := strings.ToLower(*req.Format)
		switch {
		case slices.Contains(v2Formats, f):
			in.format = f
		case f == "avro" || f == "jsonschema" || f == "protobuf":
			v2Err(w, &apiError{ErrorCode: CodeSchemaUnsupported, Message: "format " + f + ": Schema Registry formats are not supported by this gateway (use binary, json or string)", Field: "format"})
			return
		default:
			invalid("format", "must be binary, json or string")
			return
		}
	}
	if req.AutoOffsetReset != nil {
		switch *req.AutoOffsetReset {
		case "earliest", "smallest":
			in.initial = kafka.OffsetOldest
		case "latest", "largest":
			in.initial = kafka.OffsetNewest
		default:
			invalid("auto.offset.reset", "must be earliest or latest")
			return
		}
	}
	if req.AutoCommitEnable != nil {
		b, err := strconv.ParseBool(string(*req.AutoCommitEnable))
		if err != nil {
			invalid("auto.commit.enable", "must be true or false")
			return
		}
		in.autoCommit = b
	}
	if req.FetchMinBytes != nil {
		if n, err := strconv.ParseInt(string(*req.FetchMinBytes), 10, 64); err != nil || n < -1 {
			invalid("fetch.min.bytes", "must be an integer >= -1")
			return
		}
	}
	if req.ConsumerRequestTimeoutMS != nil {
		n, err := strconv.ParseInt(string(*req.ConsumerRequestTimeoutMS), 10, 64)
		if err != nil || n < 0 {
			invalid("consumer.request.timeout.ms", "must be an integer >= 0")
			return
		}
		in.wait = time.Duration(n) * time.Millisecond
	}
	in.key = v2Key{group: V2Group(p.Name, group), name: name}
	switch err := s.v2.add(in); {
	case errors.Is(err, errV2Exists):
		v2Err(w, newErr(CodeConsumerExists, "Consumer with specified consumer ID already exists in the specified consumer group."))
		return
	case errors.Is(err, errV2Full), errors.Is(err, errV2PrincipalFull):
		w.Header().Set("Retry-After", RetryAfterSeconds)
		v2Err(w, newErr(CodeTooManyConsumers, err.Error()+"; delete an instance or retry later"))
		return
	case err != nil:
		v2Err(w, newErr(CodeKafkaDown, err.Error()))
		return
	}
	w.Header().Set("Kafkagate-Group", in.key.group)
	v2JSON(w, http.StatusOK, MediaV2, v2CreateResponse{InstanceID: name, BaseURI: baseURL(r) + "/consumers/" + group + "/instances/" + name})
}

// v2Delete handles DELETE .../instances/{instance}: 204.
func (s *Server) v2Delete(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	if !s.v2.remove(in) {
		v2Err(w, newErr(CodeConsumerNotFound, "consumer instance not found"))
		return
	}
	in.close()
	w.WriteHeader(http.StatusNoContent)
}

type v2SubscriptionRequest struct {
	Topics       []string `json:"topics"`
	TopicPattern *string  `json:"topic_pattern"`
}

type v2SubscriptionResponse struct {
	Topics []string `json:"topics"`
}

// v2Subscribe handles POST .../subscription: it replaces the instance's
// subscription (204). Every topic needs consume:<topic>; a topic_pattern
// (a full match, RE2 syntax) subscribes to the matching topics the
// principal may consume, now and as they appear (v2Sub.refresh).
func (s *Server) v2Subscribe(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	var req v2SubscriptionRequest
	given, ok := v2Request(w, r, 64<<10, &req)
	if !ok {
		return
	}
	p := v2Principal(r)
	var topics []string
	var match func(string) bool
	switch {
	case !given || (req.Topics == nil) == (req.TopicPattern == nil):
		v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: "give either topics or topic_pattern", Field: "topics"})
		return
	case req.TopicPattern != nil:
		re, err := regexp.Compile(`^(?:` + *req.TopicPattern + `)$`)
		if err != nil {
			v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: "topic_pattern is not a valid regular expression: " + err.Error(), Field: "topic_pattern"})
			return
		}
		all, err := s.v2Groups.Topics()
		if err != nil {
			v2Err(w, v2KafkaErr(err))
			return
		}
		match = func(t string) bool { return re.MatchString(t) && !strings.HasPrefix(t, "__") && p.Can(RightConsume, t) }
		for _, t := range all {
			if match(t) {
				topics = append(topics, t)
			}
		}
	default:
		if len(req.Topics) == 0 {
			v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: "topics must name at least one topic", Field: "topics"})
			return
		}
		for i, t := range req.Topics {
			if access.CheckTopicPattern(t) != nil || t == "" || strings.HasSuffix(t, "*") {
				v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: fmt.Sprintf("topics[%d] is not a topic name", i), Field: fmt.Sprintf("topics[%d]", i)})
				return
			}
			if !p.Can(RightConsume, t) {
				v2Err(w, newErr(CodeForbidden, "principal "+p.Name+" lacks the right consume:"+t))
				return
			}
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	if len(topics) > s.cfg.V2.MaxTopics {
		v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: fmt.Sprintf("a subscription holds at most %d topics (%d given or matched)", s.cfg.V2.MaxTopics, len(topics)), Field: "topics"})
		return
	}
	sort.Strings(topics)
	in.op.Lock()
	defer in.op.Unlock()
	if in.closed { // deleted or expired while this request waited
		v2Err(w, newErr(CodeConsumerNotFound, "consumer instance not found"))
		return
	}
	in.sub.stop()
	in.sub = nil
	// A pattern may match nothing yet: the subscription then waits for
	// matching topics (refresh).
	sub, err := subscribe(s.v2Groups, s.cfg.V2, in, topics, match, s.log)
	if err != nil {
		v2Err(w, v2KafkaErr(err))
		return
	}
	in.sub = sub
	w.WriteHeader(http.StatusNoContent)
}

// v2Subscription handles GET .../subscription.
func (s *Server) v2Subscription(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	in.op.Lock()
	topics := []string{}
	if in.sub != nil {
		topics = append(topics, in.sub.topics...)
	}
	in.op.Unlock()
	v2JSON(w, http.StatusOK, MediaV2, v2SubscriptionResponse{Topics: topics})
}

// v2Unsubscribe handles DELETE .../subscription: 204.
func (s *Server) v2Unsubscribe(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	in.op.Lock()
	in.sub.stop()
	in.sub = nil
	in.op.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// v2Record is a consumed record: REST Proxy v2's fields (key and value
// embedded in the instance's format), plus kafkagate's: the key's and
// value's types, the headers and the decryption status.
type v2Record struct {
	Topic      string          `json:"topic"`
	Key        json.RawMessage `json:"key"`
	Value      json.RawMessage `json:"value"`
	Partition  int32           `json:"partition"`
	Offset     int64           `json:"offset"`
	Timestamp  time.Time       `json:"timestamp"`
	KeyType    string          `json:"key_type,omitempty"`
	ValueType  string          `json:"value_type,omitempty"`
	Headers    []OutHeader     `json:"headers"`
	Decryption Decryption      `json:"decryption"`
}

// acceptFormat is the format an Accept header asks for: a
// vnd.kafka.<format>.v2+json type names it; vnd.kafka.v2+json and
// application/json mean binary (as in REST Proxy); no Accept or a
// wildcard means the instance's own. ok is false when nothing acceptable
// is listed.
func acceptFormat(accept, own string) (format string, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return own, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch {
		case mt == MediaV2 || mt == MediaJSON:
			return "binary", true
		case mt == "*/*" || mt == "application/*":
			return own, true
		case strings.HasPrefix(mt, mediaV2Prefix) && strings.HasSuffix(mt, mediaV2Suffix):
			return strings.TrimSuffix(strings.TrimPrefix(mt, mediaV2Prefix), mediaV2Suffix), true
		}
	}
	return "", false
}

// v2Records handles GET .../records?timeout=&max_bytes=: the records
// fetched, decrypted by their topics' policies, as a JSON array.
func (s *Server) v2Records(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	format, ok := acceptFormat(r.Header.Get("Accept"), in.format)
	if !ok || format != in.format {
		v2Err(w, newErr(CodeConsumerFormatMismatch, "The requested embedded data format does not match the deserializer for this consumer instance (Accept: "+
			mediaV2Prefix+in.format+mediaV2Suffix+")"))
		return
	}
	q := r.URL.Query()
	wait := s.cfg.V2.DefaultWait
	if in.wait > 0 {
		wait = in.wait
	}
	maxBytes := s.cfg.V2.MaxResponseBytes
	for _, p := range []struct {
		name string
		set  func(int64)
	}{{"timeout", func(n int64) { wait = time.Duration(n) * time.Millisecond }}, {"max_bytes", func(n int64) { maxBytes = min(n, maxBytes) }}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			v2Err(w, &apiError{ErrorCode: CodeBadQuery, Message: "query parameter " + p.name + " must be an integer", Field: p.name})
			return
		}
		if n > 0 { // <= 0: the default, as in REST Proxy
			p.set(n)
		}
	}
	wait = min(wait, s.cfg.V2.MaxWait)
	ro, aerr := renderOptions(r)
	if aerr != nil {
		v2Err(w, aerr)
		return
	}
	in.op.Lock()
	defer in.op.Unlock()
	out := []v2Record{}
	ctype := mediaV2Prefix + in.format + mediaV2Suffix
	if in.sub == nil {
		v2Err(w, errNotSubscribed())
		return
	}
	in.sub.refresh(s.v2Groups, s.cfg.V2, in, s.log)
	items := in.sub.fetch(r.Context(), wait, maxBytes, s.cfg.MaxReadRecords)
	recs := make([]kafka.Record, len(items))
	for i, it := range items {
		recs[i] = it.rec
	}
	opened, err := s.cfg.Engine.Decrypt(r.Context(), recs)
	if err != nil {
		// Nothing is returned and the position does not move: the next
		// request gets these records first (fail closed).
		in.sub.unread(items)
		v2Err(w, fromError(err))
		return
	}
	for i, rec := range recs {
		rr := RenderRecord(rec, opened[i], ro)
		vr := v2Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Headers: rr.Headers, Decryption: rr.Decryption}
		vr.Key, vr.KeyType = v2Embed(in.format, rec.Key, rr.Key)
		vr.Value, vr.ValueType = v2Embed(in.format, opened[i].Value, rr.Value)
		out = append(out, vr)
	}
	in.sub.returned(items, in.autoCommit)
	v2JSON(w, http.StatusOK, ctype, out)
}

// v2Embed embeds a key or value (b, rendered as d) in an instance's
// format: binary always base64 of the bytes; json the rendered data (a
// JSON value, or a JSON string for STRING and BINARY data); string the
// text (base64 for BINARY data). The type says which.
func v2Embed(format string, b []byte, d *Data) (json.RawMessage, string) {
	if b == nil || d == nil {
		return json.RawMessage("null"), ""
	}
	switch {
	case format == "binary":
		s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
		return s, d.Type
	case format == "string" && d.Type == TypeJSON && utf8.Valid(b):
		s, _ := json.Marshal(string(b))
		return s, d.Type
	}
	return d.Data, d.Type
}

// errNotSubscribed is REST Proxy's answer to reading or committing before
// a subscription.
func errNotSubscribed() *apiError {
	return newErr(CodeConsumerIllegalState, "Illegal state: the consumer instance is not subscribed to any topic")
}

// v2Offset is REST Proxy's TopicPartitionOffsetMetadata.
type v2Offset struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Metadata  *string `json:"metadata,omitempty"`
}

type v2CommitRequest struct {
	Offsets []v2Offset `json:"offsets"`
}

// v2Commit handles POST .../offsets: without a body it commits the
// position after every record returned so far; with offsets it commits
// each offset + 1 (the next record to read), as REST Proxy does. The
// commit is read back before the answer: 200 means it is in Kafka.
func (s *Server) v2Commit(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	var req v2CommitRequest
	given, ok := v2Request(w, r, 1<<20, &req)
	if !ok {
		return
	}
	in.op.Lock()
	defer in.op.Unlock()
	if in.sub == nil {
		v2Err(w, errNotSubscribed())
		return
	}
	want := map[tp]v2Offset{}
	if given {
		for i, o := range req.Offsets {
			if o.Partition < 0 || o.Offset < 0 {
				v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: fmt.Sprintf("offsets[%d]: partition and offset must be >= 0", i), Field: fmt.Sprintf("offsets[%d]", i)})
				return
			}
			o.Offset++
			want[tp{o.Topic, o.Partition}] = o
		}
	} else {
		for k, next := range in.sub.consumed {
			want[k] = v2Offset{Topic: k.topic, Partition: k.partition, Offset: next}
		}
	}
	// Every partition must be assigned to this instance now.
	byTopic := map[string][]int32{}
	for k, o := range want {
		sess := in.sub.session(k.topic)
		if sess == nil || !slices.Contains(sess.Partitions(), k.partition) {
			v2Err(w, newErr(CodeConsumerIllegalState, fmt.Sprintf("Illegal state: partition %s/%d is not assigned to this consumer instance", k.topic, k.partition)))
			return
		}
		md := ""
		if o.Metadata != nil {
			md = *o.Metadata
		}
		// MarkOffset moves a mark forward, ResetOffset back (or keeps
		// it): together they set it.
		sess.MarkOffset(k.partition, o.Offset, md)
		sess.ResetOffset(k.partition, o.Offset, md)
		byTopic[k.topic] = append(byTopic[k.topic], k.partition)
	}
	for topic := range byTopic {
		in.sub.session(topic).Commit()
	}
	for topic, parts := range byTopic {
		got, err := s.v2Groups.CommittedOffsets(in.key.group, topic, parts)
		if err != nil {
			v2Err(w, v2KafkaErr(err))
			return
		}
		for _, p := range parts {
			if c, ok := got[p]; !ok || c.Err != nil || c.Offset != want[tp{topic, p}].Offset {
				v2Err(w, newErr(CodeKafkaDown, fmt.Sprintf("kafka did not confirm the commit of %s/%d; retry", topic, p)))
				return
			}
		}
	}
	v2JSON(w, http.StatusOK, MediaV2, []v2Offset{})
}

type v2CommittedRequest struct {
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
}

type v2CommittedResponse struct {
	Offsets []v2Offset `json:"offsets"`
}

// v2Committed handles GET .../offsets with a body naming partitions: the
// group's committed offsets (the next record to read), for the
// partitions that have one.
func (s *Server) v2Committed(w http.ResponseWriter, r *http.Request, in *v2Instance) {
	var req v2CommittedRequest
	given, ok := v2Request(w, r, 1<<20, &req)
	if !ok {
		return
	}
	if !given || len(req.Partitions) == 0 {
		v2Err(w, &apiError{ErrorCode: CodeBadRequestField, Message: "the body must name partitions: {\"partitions\":[{\"topic\":...,\"partition\":...}]}", Field: "partitions"})
		return
	}
	p := v2Principal(r)
	byTopic := map[string][]int32{}
	var order []string
	for _, tp := range req.Partitions {
		if !p.Can(RightConsume, tp.Topic) {
			v2Err(w, newErr(CodeForbidden, "principal "+p.Name+" lacks the right consume:"+tp.Topic))
			return
		}
		if _, seen := byTopic[tp.Topic]; !seen {
			order = append(order, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	resp := v2CommittedResponse{Offsets: []v2Offset{}}
	for _, topic := range order {
		got, err := s.v2Groups.CommittedOffsets(in.key.group, topic, byTopic[topic])
		if err != nil {
			v2Err(w, v2KafkaErr(err))
			return
		}
		for _, part := range byTopic[topic] {
			if c, ok := got[part]; ok && c.Err == nil && c.Offset >= 0 {
				md := c.Metadata
				resp.Offsets = append(resp.Offsets, v2Offset{Topic: topic, Partition: part, Offset: c.Offset, Metadata: &md})
			}
		}
	}
	v2JSON(w, http.StatusOK, MediaV2, resp)
}

// v2Unsupported answers the v2 endpoints kafkagate does not offer
// (manual assignment and seeking).
func (s *Server) v2Unsupported(w http.ResponseWriter, r *http.Request) {
	v2Err(w, newErr(CodeV2Unsupported, "manual assignment and seeking are not supported by kafkagate's v2 consumer API; use subscription"))
}
