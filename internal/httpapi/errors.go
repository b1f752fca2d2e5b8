package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Error codes. Where Confluent REST Proxy answers the same condition,
// the code is REST Proxy's: its plain HTTP codes (400, 404, 413, ...) and
// its five-digit ones (40301, 40403, 42206, 42208, 50302, from its
// Errors.java and rest-utils' KafkaExceptionMapper). kafkagate's own codes
// (policy, Vault, encryption, streams, files) are HTTP status × 100 + n
// with numbers REST Proxy does not use. docs/errors.md lists both.
const (
	// REST Proxy's codes.
	CodeBadJSON         = 400   // request body or a record is not valid JSON (or not UTF-8)
	CodeBadRequestField = 400   // a request field is missing, unknown or of the wrong form
	CodeNotFound        = 404   // no such endpoint, cluster or broker
	CodeClusterNotFound = 404   // unknown cluster id (REST Proxy: "Cluster X cannot be found.")
	CodeBrokerNotFound  = 404   // unknown broker_id
	CodeMethod          = 405   // method not allowed
	CodeBodyTooLarge    = 413   // body (or a stream's record) over the limit
	CodeContentType     = 415   // not application/json
	CodeRateLimited     = 429   // the principal is over its rate limit
	CodeInternal        = 500   // unexpected internal error
	CodeUnauthenticated = 40101 // missing, malformed or unknown credentials
	CodeForbidden       = 40301 // the principal lacks the right for this topic or endpoint
	// CodeTopicNotFound and CodePartitionNotFound are REST Proxy's
	// unknown-topic-or-partition code (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
	CodeTopicNotFound     = 40403
	CodePartitionNotFound = 40403
	// CodeInvalidPayload: a record REST Proxy would need Schema Registry
	// for (a key or value without type), as REST Proxy without Schema
	// Registry answers it.
	CodeInvalidPayload = 42206
	// CodeBatchInvalid refuses a whole records:batch: ids missing, not
	// strings, not 1-80 characters or repeated; no entries; too many.
	CodeBatchInvalid = 42208
	CodeKafkaDown    = 50302 // Kafka unreachable or not acknowledging (REST Proxy: broker not available)

	// kafkagate's own codes.
	CodeBadQuery    = 40003 // a query parameter is invalid
	CodeNoPolicy    = 40310 // the topic has no encryption policy: refused (fail closed)
	CodeOffsetRange = 40420 // offset outside the partition's log (reads)
	// CodeSchemaUnsupported refuses the Schema Registry fields and
	// formats (AVRO, PROTOBUF, JSONSCHEMA): not supported by kafkagate.
	CodeSchemaUnsupported = 40030
	CodeRecordTooLarge    = 41302 // record over Kafka's message size limit
	CodeValueNotJSON      = 42221 // value is not well-formed JSON (or not UTF-8)
	CodeValueNotObject    = 42222 // value is not a JSON object (fields policy)
	CodeFieldType         = 42223 // a policy field has the wrong JSON type
	CodeFieldInvalid      = 42224 // a policy field's content is invalid for its mode (e.g. not a card number)
	CodeDuplicateKey      = 42225 // the value repeats an object key
	CodeTooDeep           = 42226 // the value nests too deeply
	CodeEncryptRefused    = 42227 // Vault refused to encrypt this field
	CodeModeUnsupported   = 42228 // the policy's mode is not available here
	CodeVaultDown         = 50320 // Vault unreachable, sealed or failing: nothing produced
	CodeVaultDenied       = 50321 // Vault refused the gateway's token
	CodeVaultKeyMissing   = 50304 // the policy's Vault key does not exist
)

// RetryAfterSeconds is sent with every 503.
const RetryAfterSeconds = "2"

// apiError is the body of every error response.
type apiError struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
}

// status is the HTTP status of a code: the code itself for REST Proxy's
// plain codes (400, 404, ...), else its first three digits.
func (e *apiError) status() int {
	if e.ErrorCode < 1000 {
		return e.ErrorCode
	}
	return e.ErrorCode / 100
}

func newErr(code int, msg string) *apiError { return &apiError{ErrorCode: code, Message: msg} }

// fromRecordError maps a protect.Error to an API error.
func fromRecordError(e *protect.Error) *apiError {
	code := CodeFieldInvalid
	switch e.Code {
	case protect.CodeInvalidJSON:
		code = CodeValueNotJSON
	case protect.CodeNotObject:
		code = CodeValueNotObject
	case protect.CodeFieldType:
		code = CodeFieldType
	case protect.CodeFieldInvalid:
		code = CodeFieldInvalid
	case protect.CodeDuplicateKey:
		code = CodeDuplicateKey
	case protect.CodeTooDeep:
		code = CodeTooDeep
	case protect.CodeEncryptFailed:
		code = CodeEncryptRefused
	case protect.CodeUnsupported:
		code = CodeModeUnsupported
	}
	msg := "value"
	if e.Field != "" {
		msg = "value field " + e.Field
	}
	return &apiError{ErrorCode: code, Message: msg + ": " + e.Msg, Field: e.Field}
}

// fromError maps an operation-level error.
func fromError(err error) *apiError {
	var re *protect.Error
	switch {
	case errors.As(err, &re):
		return fromRecordError(re)
	case errors.Is(err, kms.ErrDenied):
		return newErr(CodeVaultDenied, "vault refused the gateway's credentials for this operation; nothing was produced")
	case errors.Is(err, protect.ErrKeyUnavailable):
		return newErr(CodeVaultKeyMissing, "an encryption key the topic's policy needs is not loaded (not provisioned, or Vault unreachable at load); nothing was produced")
	case errors.Is(err, kms.ErrNotFound):
		return newErr(CodeVaultKeyMissing, "the vault key named by the topic's policy does not exist; nothing was produced")
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, kms.ErrInvalid):
		return newErr(CodeVaultDown, "vault is unavailable; nothing was produced")
	case errors.Is(err, kafka.ErrUnavailable):
		return newErr(CodeKafkaDown, "kafka did not acknowledge the record")
	case errors.Is(err, kafka.ErrUnknownTopic):
		return newErr(CodeTopicNotFound, "topic or partition not found")
	case errors.Is(err, kafka.ErrOffsetOutOfRange):
		return newErr(CodeOffsetRange, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return newErr(CodeVaultDown, "the request timed out; nothing was produced")
	}
	return newErr(CodeInternal, "internal error")
}

func writeErr(w http.ResponseWriter, e *apiError) {
	if e.status() == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	writeJSON(w, e.status(), e)
}

// CodeTimeout answers a request that ran past the request timeout without
// answering.
const CodeTimeout = 50401

// CodeStreamIdle ends a produce stream that sent nothing for the idle
// timeout (REST Proxy closes a stream with 408 too).
const CodeStreamIdle = 408

// trackWriter remembers whether the handler started its answer.
type trackWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines).
func (t *trackWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// recoverer turns a handler's panic into 500 {error_code: 500} when no
// answer was started (the panic is logged, never its value's content in
// the body). http.ErrAbortHandler passes through.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackWriter{ResponseWriter: w}
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if !tw.wrote {
				writeErr(w, newErr(CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// deadline bounds a request by d; a handler that has not answered when
// the deadline passes gets 504 {error_code: 50401}.
func deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			tw := &trackWriter{ResponseWriter: w}
			next.ServeHTTP(tw, r.WithContext(ctx))
			if !tw.wrote && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				writeErr(w, newErr(CodeTimeout, "the request timed out"))
			}
		})
	}
}
