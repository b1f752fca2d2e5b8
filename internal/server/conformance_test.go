package server_test

// REST Proxy v3 conformance: every answer of the produce endpoint and of
// the read-only cluster resources is decoded strictly (unknown fields
// refused) into the schemas of Confluent's published OpenAPI spec
// (kafka-rest api/v3/openapi.yaml), encoded below, and the fields the spec
// requires must be present. kafkagate's documented extensions (a report's
// encryption and field, an error's field) are part of the structs.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// specError is the spec's Error (+ kafkagate's field).
type specError struct {
	ErrorCode int     `json:"error_code"`
	Message   *string `json:"message"`
	Field     string  `json:"field"`
}

var errorRequired = []string{"error_code", "message"}

// specProduceResponseData is ProduceResponseData.
type specProduceResponseData struct {
	Size          int64   `json:"size"`
	Type          *string `json:"type"`
	Subject       *string `json:"subject"`
	SchemaID      *int    `json:"schema_id"`
	SchemaVersion *int    `json:"schema_version"`
}

// specProduceResponse is ProduceResponse (+ kafkagate's encryption and
// field).
type specProduceResponse struct {
	ErrorCode   int                      `json:"error_code"`
	Message     string                   `json:"message"`
	ClusterID   string                   `json:"cluster_id"`
	TopicName   string                   `json:"topic_name"`
	PartitionID *int32                   `json:"partition_id"`
	Offset      *int64                   `json:"offset"`
	Timestamp   *time.Time               `json:"timestamp"`
	Key         *specProduceResponseData `json:"key"`
	Value       *specProduceResponseData `json:"value"`
	Encryption  *struct {
		Policy string              `json:"policy"`
		Fields []protect.FieldInfo `json:"fields"`
	} `json:"encryption"`
	Field string `json:"field"`
}

// produceOKRequired: ProduceResponse requires error_code only; a success
// of kafkagate always has the rest (timestamp included).
var produceOKRequired = []string{"error_code", "cluster_id", "topic_name", "partition_id", "offset", "timestamp"}

// specBatchResponse is ProduceBatchResponse (+ kafkagate's extensions).
type specBatchResponse struct {
	Successes []struct {
		ID string `json:"id"`
		specProduceResponse
	} `json:"successes"`
	Failures []struct {
		ID        string `json:"id"`
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
		Field     string `json:"field"`
	} `json:"failures"`
}

type specRelationship struct {
	Related string `json:"related"`
}

type specResourceMetadata struct {
	Self         string  `json:"self"`
	ResourceName *string `json:"resource_name"`
}

type specCollectionMetadata struct {
	Self string  `json:"self"`
	Next *string `json:"next"`
}

type specClusterData struct {
	Kind                   string               `json:"kind"`
	Metadata               specResourceMetadata `json:"metadata"`
	ClusterID              string               `json:"cluster_id"`
	Controller             *specRelationship    `json:"controller"`
	ACLs                   specRelationship     `json:"acls"`
	Brokers                specRelationship     `json:"brokers"`
	BrokerConfigs          specRelationship     `json:"broker_configs"`
	ConsumerGroups         specRelationship     `json:"consumer_groups"`
	Topics                 specRelationship     `json:"topics"`
	PartitionReassignments specRelationship     `json:"partition_reassignments"`
}

var clusterRequired = []string{"kind", "metadata.self", "cluster_id", "acls.related", "brokers.related", "broker_configs.related",
	"consumer_groups.related", "topics.related", "partition_reassignments.related"}

type specBrokerData struct {
	Kind              string               `json:"kind"`
	Metadata          specResourceMetadata `json:"metadata"`
	ClusterID         string               `json:"cluster_id"`
	BrokerID          int                  `json:"broker_id"`
	Host              *string              `json:"host"`
	Port              *int                 `json:"port"`
	Rack              *string              `json:"rack"`
	Configs           specRelationship     `json:"configs"`
	PartitionReplicas specRelationship     `json:"partition_replicas"`
}

var brokerRequired = []string{"kind", "metadata.self", "cluster_id", "broker_id", "configs.related", "partition_replicas.related"}

type specTopicData struct {
	Kind                   string               `json:"kind"`
	Metadata               specResourceMetadata `json:"metadata"`
	ClusterID              string               `json:"cluster_id"`
	TopicName              string               `json:"topic_name"`
	IsInternal             bool                 `json:"is_internal"`
	ReplicationFactor      int                  `json:"replication_factor"`
	PartitionsCount        int                  `json:"partitions_count"`
	Partitions             specRelationship     `json:"partitions"`
	Configs                specRelationship     `json:"configs"`
	PartitionReassignments specRelationship     `json:"partition_reassignments"`
	AuthorizedOperations   []string             `json:"authorized_operations"`
}

var topicRequired = []string{"kind", "metadata.self", "cluster_id", "topic_name", "is_internal", "replication_factor",
	"partitions_count", "partitions.related", "configs.related", "partition_reassignments.related"}

type specPartitionData struct {
	Kind         string               `json:"kind"`
	Metadata     specResourceMetadata `json:"metadata"`
	ClusterID    string               `json:"cluster_id"`
	TopicName    string               `json:"topic_name"`
	PartitionID  int                  `json:"partition_id"`
	Leader       *specRelationship    `json:"leader"`
	Replicas     specRelationship     `json:"replicas"`
	Reassignment specRelationship     `json:"reassignment"`
}

var partitionRequired = []string{"kind", "metadata.self", "cluster_id", "topic_name", "partition_id", "replicas.related", "reassignment.related"}

type specList[T any] struct {
	Kind     string                 `json:"kind"`
	Metadata specCollectionMetadata `json:"metadata"`
	Data     []T                    `json:"data"`
}

// listRequired prefixes an item's required fields for data[].
func listRequired(item []string) []string {
	out := []string{"kind", "metadata.self", "data"}
	for _, f := range item {
		out = append(out, "data[]."+f)
	}
	return out
}

// strict decodes b into v refusing unknown fields and trailing data, and
// checks that every required path (a.b, a[].b) is present.
func strict(t *testing.T, b []byte, v any, required []string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("does not fit %T: %v: %.400s", v, err, b)
	}
	if dec.More() {
		t.Fatalf("trailing data after %T: %.400s", v, b)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range required {
		if missing := missingPath(doc, strings.Split(path, ".")); missing {
			t.Fatalf("required field %s missing from %T: %.400s", path, v, b)
		}
	}
}

func missingPath(doc any, parts []string) bool {
	if len(parts) == 0 {
		return false
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return true
	}
	name, each := strings.CutSuffix(parts[0], "[]")
	val, ok := obj[name]
	if !ok {
		return true
	}
	if !each {
		return missingPath(val, parts[1:])
	}
	arr, ok := val.([]any)
	if !ok {
		return true
	}
	for _, it := range arr {
		if missingPath(it, parts[1:]) {
			return true
		}
	}
	return false
}

func (f *fixture) get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Call(t, nil, req)
}

func wantJSON(t *testing.T, resp *http.Response, status int, b []byte) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %.400s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// wantError checks an Error answer: status, content type, error_code.
func wantError(t *testing.T, resp *http.Response, b []byte, status, code int) specError {
	t.Helper()
	wantJSON(t, resp, status, b)
	var e specError
	strict(t, b, &e, errorRequired)
	if e.ErrorCode != code || e.Message == nil || *e.Message == "" {
		t.Fatalf("error_code %d message %v, want %d with a message: %s", e.ErrorCode, e.Message, code, b)
	}
	if status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	return e
}

// report decodes a single-record produce answer (HTTP 200).
func report(t *testing.T, resp *http.Response, b []byte) specProduceResponse {
	t.Helper()
	wantJSON(t, resp, http.StatusOK, b)
	var pr specProduceResponse
	req := []string{"error_code"}
	if bytes.Contains(b, []byte(`"error_code":200`)) {
		req = produceOKRequired
	} else {
		req = append(req, "message")
	}
	strict(t, b, &pr, req)
	return pr
}

// reports checks a produce answer of several records: HTTP 200,
// application/json, one CRLF-terminated report per record, each strictly
// a ProduceResponse with the code wanted.
func reports(t *testing.T, resp *http.Response, b []byte, codes ...int) {
	t.Helper()
	wantJSON(t, resp, http.StatusOK, b)
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatalf("reports not CRLF-terminated: %q", b)
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
	if len(parts) != len(codes) {
		t.Fatalf("%d reports, want %d: %q", len(parts), len(codes), b)
	}
	for i, p := range parts {
		var pr specProduceResponse
		req := produceOKRequired
		if codes[i] != 200 {
			req = errorRequired
		}
		strict(t, []byte(p), &pr, req)
		if pr.ErrorCode != codes[i] {
			t.Fatalf("report %d: %s, want error_code %d", i, p, codes[i])
		}
	}
}

func TestRESTProxyConformanceProduce(t *testing.T) {
	f := setup(t)
	produce := func(t *testing.T, topic, body string) (*http.Response, []byte) {
		t.Helper()
		return f.post(t, f.url(topic), "application/json", body)
	}

	t.Run("good records", func(t *testing.T) {
		for _, c := range []struct{ topic, body, keyType, valType string }{
			{"purchases", `{"key":{"type":"STRING","data":"k1"},"value":{"type":"JSON","data":` + purchase + `}}`, "STRING", "JSON"},
			{"raw", `{"key":{"type":"BINARY","data":"AAEC"},"value":{"type":"BINARY","data":"aGVsbG8="}}`, "BINARY", "BINARY"},
			{"raw", `{"value":{"type":"STRING","data":"123"},"headers":[{"name":"h","value":"YWJj"},{"name":"n","value":null}]}`, "", "STRING"},
			{"raw", `{"partition_id":1,"timestamp":"2026-01-02T03:04:05.678Z","value":{"type":"JSON","data":{"a":1}}}`, "", "JSON"},
		} {
			resp, b := produce(t, c.topic, c.body)
			pr := report(t, resp, b)
			if pr.ErrorCode != 200 || pr.ClusterID != f.cid || pr.TopicName != c.topic || pr.Timestamp == nil || pr.Timestamp.IsZero() {
				t.Fatalf("%s: %s", c.body, b)
			}
			if (pr.Key == nil) != (c.keyType == "") || pr.Key != nil && *pr.Key.Type != c.keyType || pr.Value == nil || *pr.Value.Type != c.valType {
				t.Fatalf("key/value types of %s: %s", c.body, b)
			}
			if strings.Contains(c.body, "timestamp") {
				want := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
				if !pr.Timestamp.Equal(want) || *pr.PartitionID != 1 {
					t.Fatalf("the request's timestamp and partition are not kept: %s", b)
				}
				for _, r := range f.raw(t, "raw") {
					if r.Partition == 1 && r.Offset == *pr.Offset && !r.Timestamp.Equal(want) {
						t.Fatalf("stored timestamp %v", r.Timestamp)
					}
				}
			}
		}
		// size is the bytes written to Kafka; the request's timestamp is kept.
		recs := f.raw(t, "purchases")
		resp, b := produce(t, "purchases", `{"value":{"type":"JSON","data":`+purchase+`}}`)
		pr := report(t, resp, b)
		stored := f.raw(t, "purchases")
		if len(stored) != len(recs)+1 {
			t.Fatalf("%d records", len(stored))
		}
		for _, r := range stored {
			if r.Partition == *pr.PartitionID && r.Offset == *pr.Offset && int64(len(r.Value)) != pr.Value.Size {
				t.Fatalf("value.size %d, %d bytes written", pr.Value.Size, len(r.Value))
			}
		}
		if pr.Value.Size <= int64(len(purchase)) {
			t.Fatalf("value.size %d is not the ciphertext's", pr.Value.Size)
		}
	})

	t.Run("empty and null forms", func(t *testing.T) {
		count := func(t *testing.T) (n, nullKeys, nullValues int) {
			for _, r := range f.raw(t, "raw") {
				if string(r.Key) == "null" || string(r.Value) == "null" {
					t.Fatalf("the bytes null were written: %+v", r)
				}
				if r.Key == nil {
					nullKeys++
				}
				if r.Value == nil {
					nullValues++
				}
			}
			return len(f.raw(t, "raw")), nullKeys, nullValues
		}
		before, keys0, values0 := count(t)
		bodies := []string{
			`{}`,
			`{"value":null}`,
			`{"key":null,"value":null}`,
			`{"value":{"type":"STRING","data":null}}`,
			`{"value":{"type":"BINARY"}}`,
			`{"value":{"type":"JSON","data":null}}`,
			`{"key":{"type":"JSON","data":null},"value":{"type":"STRING","data":"v"}}`,
			`{"key":{"type":"STRING","data":null,"subject":null,"schema_id":null},"value":{"type":"JSON","subject":null,"subject_name_strategy":null,"schema_id":null,"schema_version":null,"schema":null,"data":{"x":1}}}`,
			`{"partition_id":null,"timestamp":null,"value":{"type":"JSON","data":"s"}}`,
		}
		for _, body := range bodies {
			resp, b := produce(t, "raw", body)
			if pr := report(t, resp, b); pr.ErrorCode != 200 {
				t.Fatalf("%s: %s", body, b)
			}
		}
		n, nullKeys, nullValues := count(t)
		if n != before+len(bodies) || nullKeys-keys0 != len(bodies) || nullValues-values0 != 6 {
			t.Fatalf("%d records, %d null keys, %d null values; want %d, %d and 6", n-before, nullKeys-keys0, nullValues-values0, len(bodies), len(bodies))
		}
	})

	t.Run("several records", func(t *testing.T) {
		body := `{"value":{"type":"JSON","data":{"Name":"a"}}}` + "\n" + `{"value":{"type":"JSON","data":[1]}}` + `{"value":{"type":"JSON","data":{"Name":"c"}}}`
		resp, b := produce(t, "purchases", body)
		reports(t, resp, b, 200, httpapi.CodeValueNotObject, 200)
	})

	// A stream with a malformed object (a syntax error) and a record
	// without type in the middle: each gets its own report, the records
	// after them are produced.
	t.Run("stream goes on after a malformed object", func(t *testing.T) {
		before := len(f.raw(t, "purchases"))
		body := `{"value":{"type":"JSON","data":{"Name":"a"}}}` + "\r\n" + `{"value":{"type":"JSON","data":{"Name":}}}` + "\n" +
			`{"value":{"data":{"Name":"b"}}}` + `{"value":{"type":"JSON","data":{"Name":"c"}}}`
		resp, b := produce(t, "purchases", body)
		reports(t, resp, b, 200, httpapi.CodeBadJSON, httpapi.CodeInvalidPayload, 200)
		if n := len(f.raw(t, "purchases")); n != before+2 {
			t.Fatalf("%d records produced, want 2", n-before)
		}
	})

	// Batch rules (REST Proxy's ProduceBatchAction): the whole batch is
	// refused, 422 42208, naming the entry; nothing is produced.
	t.Run("records:batch rules", func(t *testing.T) {
		before := len(f.raw(t, "raw"))
		batchURL := strings.TrimSuffix(f.url("raw"), "records") + "records:batch"
		v := `"value":{"type":"STRING","data":"x"}`
		for _, c := range []struct{ name, body, field, msg string }{
			{"duplicate id", `{"entries":[{"id":"1",` + v + `},{"id":"2",` + v + `},{"id":"1",` + v + `}]}`, "entries[2].id", "Batch entry IDs are not distinct."},
			{"numeric id", `{"entries":[{"id":1,` + v + `}]}`, "entries[0].id", "Batch entry identifier is not a valid string."},
			{"null id", `{"entries":[{"id":"a",` + v + `},{"id":null,` + v + `}]}`, "entries[1].id", "Batch entry identifier is not a valid string."},
			{"missing id", `{"entries":[{` + v + `}]}`, "entries[0].id", "Batch entry identifier is not a valid string."},
			{"empty id", `{"entries":[{"id":"",` + v + `}]}`, "entries[0].id", "Batch entry identifier is not a valid string."},
			{"81-character id", `{"entries":[{"id":"` + strings.Repeat("x", 81) + `",` + v + `}]}`, "entries[0].id", "Batch entry identifier is not a valid string."},
			{"id with a space", `{"entries":[{"id":"a b",` + v + `}]}`, "entries[0].id", "Batch entry identifier is not a valid string."},
			{"no entries", `{"entries":[]}`, "entries", "Empty batch."},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, b := f.post(t, batchURL, "application/json", c.body)
				e := wantError(t, resp, b, http.StatusUnprocessableEntity, httpapi.CodeBatchInvalid)
				if e.Field != c.field || !strings.HasPrefix(*e.Message, c.msg) {
					t.Fatalf("field %q message %q, want %q and %q", e.Field, *e.Message, c.field, c.msg)
				}
			})
		}
		// 80 characters, and failures under their entry's own id.
		id80 := strings.Repeat("i", 80)
		resp, b := f.post(t, batchURL, "application/json", `{"entries":[{"id":"`+id80+`",`+v+`},{"id":"0","partition_id":99,`+v+`},{"id":"1","value":{"type":"BINARY","data":"!"}}]}`)
		var br specBatchResponse
		if resp.StatusCode != http.StatusMultiStatus {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		strict(t, b, &br, []string{"successes[].id", "failures[].id", "failures[].error_code"})
		if len(br.Successes) != 1 || br.Successes[0].ID != id80 || len(br.Failures) != 2 {
			t.Fatalf("%s", b)
		}
		got := map[string]int{br.Failures[0].ID: br.Failures[0].ErrorCode, br.Failures[1].ID: br.Failures[1].ErrorCode}
		if got["0"] != httpapi.CodePartitionNotFound || got["1"] != httpapi.CodeBadRequestField {
			t.Fatalf("failures: %s", b)
		}
		if n := len(f.raw(t, "raw")); n != before+1 {
			t.Fatalf("%d records produced, want 1", n-before)
		}
	})

	t.Run("records:batch", func(t *testing.T) {
		resp, b := f.post(t, strings.TrimSuffix(f.url("raw"), "records")+"records:batch", "application/json",
			`{"entries":[{"id":"a","value":{"type":"STRING","data":"x"}},{"id":"b","partition_id":99,"value":{"type":"JSON","data":1}},{"id":"c"}]}`)
		if resp.StatusCode != http.StatusMultiStatus || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var br specBatchResponse
		strict(t, b, &br, []string{"successes[].id", "successes[].error_code", "successes[].timestamp", "failures[].id", "failures[].error_code"})
		if len(br.Successes) != 2 || len(br.Failures) != 1 || br.Failures[0].ID != "b" || br.Failures[0].ErrorCode != httpapi.CodePartitionNotFound {
			t.Fatalf("%s", b)
		}
	})

	// A record's own error: HTTP 200, the error in its report; nothing
	// produced for it.
	t.Run("record errors", func(t *testing.T) {
		before := len(f.raw(t, "purchases"))
		for _, c := range []struct {
			name, body string
			code       int
			field      string
		}{
			{"unknown partition", `{"partition_id":99,"value":{"type":"JSON","data":{"Name":"x"}}}`, httpapi.CodePartitionNotFound, "partition_id"},
			{"negative partition", `{"partition_id":-1,"value":{"type":"JSON","data":{"Name":"x"}}}`, httpapi.CodeBadRequestField, "partition_id"},
			{"AVRO", `{"value":{"type":"AVRO","data":{"Name":"x"}}}`, httpapi.CodeSchemaUnsupported, "value.type"},
			{"PROTOBUF key", `{"key":{"type":"PROTOBUF","data":"x"},"value":{"type":"JSON","data":{}}}`, httpapi.CodeSchemaUnsupported, "key.type"},
			{"JSONSCHEMA", `{"value":{"type":"JSONSCHEMA","data":{}}}`, httpapi.CodeSchemaUnsupported, "value.type"},
			{"subject", `{"value":{"subject":"s-value","data":{}}}`, httpapi.CodeSchemaUnsupported, "value.subject"},
			{"schema_id", `{"value":{"schema_id":1,"data":{}}}`, httpapi.CodeSchemaUnsupported, "value.schema_id"},
			{"schema_version", `{"value":{"schema_version":1,"data":{}}}`, httpapi.CodeSchemaUnsupported, "value.schema_version"},
			{"raw schema", `{"value":{"schema":"{}","data":{}}}`, httpapi.CodeSchemaUnsupported, "value.schema"},
			{"subject_name_strategy", `{"value":{"subject_name_strategy":"TOPIC_NAME","data":{}}}`, httpapi.CodeSchemaUnsupported, "value.subject_name_strategy"},
			{"unknown field", `{"valeu":{"data":{}}}`, httpapi.CodeBadRequestField, "valeu"},
			{"bad base64", `{"value":{"type":"BINARY","data":"!!"}}`, httpapi.CodeBadRequestField, "value.data"},
			{"value not an object", `{"value":{"type":"JSON","data":[1]}}`, httpapi.CodeValueNotObject, ""},
			{"number in an encrypted field", `{"value":{"type":"JSON","data":{"Name":1}}}`, httpapi.CodeFieldType, "Name"},
			// No type: REST Proxy without Schema Registry refuses it (42206).
			{"value without type", `{"value":{"data":{"Name":"x"}}}`, httpapi.CodeInvalidPayload, "value.type"},
			{"spec's latest_schema example", `{"key":{"data":1000},"value":{"data":"foobar"}}`, httpapi.CodeInvalidPayload, "key.type"},
			{"spec's empty_value example", `{"key":{"data":1000}}`, httpapi.CodeInvalidPayload, "key.type"},
			{"type null", `{"value":{"type":null,"data":{"Name":"x"}}}`, httpapi.CodeInvalidPayload, "value.type"},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, b := produce(t, "purchases", c.body)
				pr := report(t, resp, b)
				if pr.ErrorCode != c.code || pr.Field != c.field || pr.Offset != nil {
					t.Fatalf("report %s, want error_code %d field %q", b, c.code, c.field)
				}
				if c.code == httpapi.CodeInvalidPayload && !strings.Contains(pr.Message, "Schema Registry must be configured when using schemas.") {
					t.Fatalf("not REST Proxy's message: %s", b)
				}
			})
		}
		if n := len(f.raw(t, "purchases")); n != before {
			t.Fatalf("refused records produced %d records", n-before)
		}
	})

	// A problem with the whole request: its HTTP status and an Error.
	t.Run("request errors", func(t *testing.T) {
		other := strings.Replace(f.url("purchases"), f.cid, "not-this-cluster", 1)
		for _, c := range []struct {
			name, url, ctype, body string
			status, code           int
		}{
			{"malformed JSON", f.url("purchases"), "application/json", `{"value":`, 400, httpapi.CodeBadJSON},
			{"empty body", f.url("purchases"), "application/json", ``, 400, httpapi.CodeBadJSON},
			{"not UTF-8", f.url("raw"), "application/json", "{\"value\":{\"type\":\"STRING\",\"data\":\"\xff\"}}", 400, httpapi.CodeBadJSON},
			{"text/plain", f.url("purchases"), "text/plain", `{"value":{"type":"JSON","data":{}}}`, 415, httpapi.CodeContentType},
			{"no content type", f.url("purchases"), "", `{"value":{"type":"JSON","data":{}}}`, 415, httpapi.CodeContentType},
			{"unknown cluster", other, "application/json", `{"value":{"type":"JSON","data":{}}}`, 404, httpapi.CodeClusterNotFound},
			{"topic without policy", f.url("unprotected"), "application/json", `{"value":{"type":"JSON","data":{}}}`, 403, httpapi.CodeNoPolicy},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, b := f.post(t, c.url, c.ctype, c.body)
				e := wantError(t, resp, b, c.status, c.code)
				if c.url == other && *e.Message != "Cluster not-this-cluster cannot be found." {
					t.Fatalf("not REST Proxy's message: %s", b)
				}
			})
		}
	})
}

func TestRESTProxyConformanceResources(t *testing.T) {
	f := setup(t)
	for _, topic := range []string{"purchases", "raw"} {
		if resp, b := f.post(t, f.url(topic), "application/json", `{"value":{"type":"JSON","data":{"Name":"x"}}}`); resp.StatusCode != 200 {
			t.Fatalf("produce: %d %s", resp.StatusCode, b)
		}
	}
	base := f.srv.URL + "/v3/clusters"
	cl := base + "/" + f.cid
	get := func(t *testing.T, url string, v any, required []string) {
		t.Helper()
		resp, b := f.get(t, url)
		wantJSON(t, resp, http.StatusOK, b)
		strict(t, b, v, required)
	}

	var clusters specList[specClusterData]
	get(t, base, &clusters, listRequired(clusterRequired))
	if clusters.Kind != "KafkaClusterList" || clusters.Metadata.Self != base || len(clusters.Data) != 1 {
		t.Fatalf("%+v", clusters)
	}
	var c specClusterData
	get(t, cl, &c, clusterRequired)
	if c.Kind != "KafkaCluster" || c.ClusterID != f.cid || c.Metadata.Self != cl || c.Topics.Related != cl+"/topics" || c.Brokers.Related != cl+"/brokers" ||
		c.ACLs.Related != cl+"/acls" || c.BrokerConfigs.Related != cl+"/broker-configs" || c.ConsumerGroups.Related != cl+"/consumer-groups" ||
		c.PartitionReassignments.Related != cl+"/topics/-/partitions/-/reassignment" {
		t.Fatalf("cluster %+v", c)
	}

	var brokers specList[specBrokerData]
	get(t, c.Brokers.Related, &brokers, listRequired(brokerRequired))
	if brokers.Kind != "KafkaBrokerList" || len(brokers.Data) == 0 {
		t.Fatalf("brokers %+v", brokers)
	}
	for _, bd := range brokers.Data {
		var one specBrokerData
		get(t, bd.Metadata.Self, &one, brokerRequired)
		if one.Kind != "KafkaBroker" || one.BrokerID != bd.BrokerID || one.ClusterID != f.cid || one.Host == nil || one.Port == nil {
			t.Fatalf("broker %+v", one)
		}
	}
	if c.Controller != nil {
		var ctl specBrokerData
		get(t, c.Controller.Related, &ctl, brokerRequired)
	}

	var topics specList[specTopicData]
	get(t, c.Topics.Related, &topics, listRequired(topicRequired))
	names := map[string]specTopicData{}
	for _, td := range topics.Data {
		names[td.TopicName] = td
	}
	if topics.Kind != "KafkaTopicList" || names["purchases"].PartitionsCount == 0 || names["raw"].TopicName == "" {
		t.Fatalf("topics %+v", topics)
	}
	var td specTopicData
	get(t, names["purchases"].Metadata.Self, &td, topicRequired)
	if td.Kind != "KafkaTopic" || td.TopicName != "purchases" || td.ClusterID != f.cid || td.IsInternal || td.ReplicationFactor < 1 ||
		td.Partitions.Related != cl+"/topics/purchases/partitions" {
		t.Fatalf("topic %+v", td)
	}
	var parts specList[specPartitionData]
	get(t, td.Partitions.Related, &parts, listRequired(partitionRequired))
	if parts.Kind != "KafkaPartitionList" || len(parts.Data) != td.PartitionsCount {
		t.Fatalf("partitions %+v", parts)
	}
	for i, pd := range parts.Data {
		var one specPartitionData
		get(t, pd.Metadata.Self, &one, partitionRequired)
		if one.Kind != "KafkaPartition" || one.PartitionID != i || one.TopicName != "purchases" || one.Leader == nil {
			t.Fatalf("partition %+v", one)
		}
	}

	for _, e := range []struct {
		url          string
		status, code int
	}{
		{cl + "/topics/no-such-topic", 404, httpapi.CodeTopicNotFound},
		{cl + "/topics/no-such-topic/partitions", 404, httpapi.CodeTopicNotFound},
		{cl + "/topics/purchases/partitions/99", 404, httpapi.CodePartitionNotFound},
		{cl + "/brokers/987654", 404, httpapi.CodeBrokerNotFound},
		{base + "/not-this-cluster/topics", 404, httpapi.CodeClusterNotFound},
		{base + "/not-this-cluster", 404, httpapi.CodeClusterNotFound},
		{cl + "/no-such-resource", 404, httpapi.CodeNotFound},
	} {
		resp, b := f.get(t, e.url)
		wantError(t, resp, b, e.status, e.code)
	}
	// Reading metadata creates no topic.
	var after specList[specTopicData]
	get(t, c.Topics.Related, &after, listRequired(topicRequired))
	for _, td := range after.Data {
		if td.TopicName == "no-such-topic" {
			t.Fatal("a metadata read created the topic")
		}
	}
}
