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

// Error codes: HTTP status × 100 + n, in the style of Confluent REST Proxy.
// docs/errors.md documents each one.
const (
	CodeBadJSON         = 40001 // request body is not valid JSON
	CodeBadRequestField = 40002 // a request field is missing, unknown or of the wrong form
	CodeBadQuery        = 40003 // a query parameter is invalid
	CodeUnauthenticated = 40101 // missing, malformed or unknown credentials
	CodeNoPolicy        = 40301 // the topic has no encryption policy: refused (fail closed)
	CodeForbidden       = 40302 // the principal lacks the right for this topic or endpoint
	CodeClusterNotFound = 40401 // unknown cluster id
	CodeTopicNotFound   = 40402 // unknown topic or partition
	CodeOffsetRange     = 40403 // offset outside the partition's log (reads)
	// CodePartitionNotFound is REST Proxy's partition-not-found code: a
	// record's partition_id the topic does not have.
	CodePartitionNotFound = 40403
	// CodeSchemaUnsupported refuses the Schema Registry fields and
	// formats (AVRO, PROTOBUF, JSONSCHEMA): not supported by kafkagate.
	CodeSchemaUnsupported = 40030
	// CodeBrokerNotFound answers an unknown broker_id.
	CodeBrokerNotFound  = 40405
	CodeBodyTooLarge    = 41301 // body over the limit
	CodeRecordTooLarge  = 41302 // record over Kafka's message size limit
	CodeContentType     = 41501 // not application/json
	CodeValueNotJSON    = 42201 // value is not well-formed JSON (or not UTF-8)
	CodeValueNotObject  = 42202 // value is not a JSON object (fields policy)
	CodeFieldType       = 42203 // a policy field has the wrong JSON type
	CodeFieldInvalid    = 42204 // a policy field's content is invalid for its mode (e.g. not a card number)
	CodeDuplicateKey    = 42205 // the value repeats an object key
	CodeTooDeep         = 42206 // the value nests too deeply
	CodeEncryptRefused  = 42207 // Vault refused to encrypt this field
	CodeModeUnsupported = 42208 // the policy's mode is not available here
	CodeRateLimited     = 42901 // the principal is over its rate limit
	CodeInternal        = 50001 // unexpected internal error
	CodeVaultDown       = 50301 // Vault unreachable, sealed or failing: nothing produced
	CodeVaultDenied     = 50302 // Vault refused the gateway's token
	CodeKafkaDown       = 50303 // Kafka unreachable or not acknowledging
	CodeVaultKeyMissing = 50304 // the policy's Vault key does not exist
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

// recoverer turns a handler's panic into 500 {error_code: 50001} when no
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
