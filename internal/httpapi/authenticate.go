package httpapi

import "net/http"

// AuthError is why Authenticate refused a request. Its message names no
// credential.
type AuthError struct {
	Message   string
	Challenge string // the WWW-Authenticate value of the 401 answer
}

func (e *AuthError) Error() string { return e.Message }

// Authenticate finds r's principal the way the API's access middleware
// does (a bearer token, or else a verified client certificate), for
// handlers served beside the API, such as the viewer under /ui. A nil
// Access means authentication is off: every request is the principal
// "anonymous" with every right (the gateway then listens on loopback
// only).
func (a *Access) Authenticate(r *http.Request) (*Principal, error) {
	if a == nil {
		return anonymous(), nil
	}
	p, fail := a.authenticate(r)
	if fail != nil {
		return nil, &AuthError{Message: fail.msg, Challenge: fail.challenge}
	}
	return p, nil
}
