package httpapi

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/kafkagate/kafkagate/internal/protect"
)

// HeaderIndexFilter selects records by blind index on the decrypting read:
// a URL-encoded form of field path = plaintext value
// ("email=ann%40example.com&customer.id=42"). It is a header, not a query
// parameter, so the values stay out of URLs and access logs. Each path
// must be an index=hmac field of the topic's policy; a record matches when
// every field's stored index equals the HMAC of the value (computed by
// Vault with the topic's index key, never logged).
const HeaderIndexFilter = "Kafkagate-Index-Filter"

// indexFilter returns which of recs match the request's index filter, or
// nil when the request has none.
func (s *Server) indexFilter(r *http.Request, topic string, recs []protect.Record) ([]bool, *apiError) {
	raw := r.Header.Get(HeaderIndexFilter)
	if raw == "" {
		return nil, nil
	}
	form, err := url.ParseQuery(raw)
	if err != nil || len(form) == 0 {
		return nil, &apiError{ErrorCode: CodeBadQuery, Message: "header " + HeaderIndexFilter + " must be a URL-encoded form of field path = value", Field: HeaderIndexFilter}
	}
	filters := make(map[string]string, len(form))
	for path, vs := range form {
		if len(vs) != 1 {
			return nil, &apiError{ErrorCode: CodeBadQuery, Message: "header " + HeaderIndexFilter + ": field " + path + " is given more than once", Field: HeaderIndexFilter}
		}
		filters[path] = vs[0]
	}
	keep, err := s.cfg.Engine.MatchIndex(r.Context(), topic, filters, recs)
	if errors.Is(err, protect.ErrNoIndex) {
		return nil, &apiError{ErrorCode: CodeBadQuery, Message: "header " + HeaderIndexFilter + ": " + err.Error() + " (the policy field needs index=hmac)", Field: HeaderIndexFilter}
	}
	if err != nil {
		return nil, fromError(err)
	}
	return keep, nil
}
