// Package sasl is the server side of Kafka SASL logins against the access
// file's sasl lines: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
// RFC 7677). The access file keeps only SCRAM stored credentials, derived
// with github.com/xdg-go/scram; a PLAIN password is checked by deriving
// its StoredKey and comparing in constant time. The SCRAM server
// conversation follows Kafka's broker (see scramConv). Errors and logs
// never hold a password or a client message.
package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"

	"github.com/kafkagate/kafkagate/internal/access"
)

// Mechanism names, as Kafka clients send them.
const (
	PLAIN       = "PLAIN"
	SCRAMSHA256 = access.SCRAMSHA256
	SCRAMSHA512 = access.SCRAMSHA512
)

// ErrAuthentication is a refused login: wrong password, unknown user, a
// malformed message or a session used after its end. The message says
// which, never naming the user or the password.
var ErrAuthentication = errors.New("SASL authentication failed")

// ErrMechanism is a mechanism the server does not offer.
var ErrMechanism = errors.New("unsupported SASL mechanism")

// maxMessage bounds one client message; SASL PLAIN and SCRAM messages are
// a few hundred bytes.
const maxMessage = 8 << 10

// Server authenticates logins against an access file. It is immutable and
// safe for concurrent use; each login is a Session.
type Server struct {
	access *access.Access
	secret []byte // keys the decoy credentials of unknown users
	// nonceGen makes the server part of SCRAM nonces (random; tests fix it).
	nonceGen func() string
}

// hashes are the SCRAM hash functions by mechanism.
var hashes = map[string]scram.HashGeneratorFcn{SCRAMSHA256: scram.SHA256, SCRAMSHA512: scram.SHA512}

// New returns a server for a's sasl lines.
func New(a *access.Access) (*Server, error) {
	if a == nil {
		return nil, errors.New("sasl: no access file")
	}
	s := &Server{access: a, secret: make([]byte, 32), nonceGen: randomNonce}
	if _, err := rand.Read(s.secret); err != nil {
		return nil, fmt.Errorf("sasl: random secret: %w", err)
	}
	return s, nil
}

// Mechanisms are the mechanisms offered, strongest first.
func (s *Server) Mechanisms() []string { return []string{SCRAMSHA512, SCRAMSHA256, PLAIN} }

// Start begins one login with mechanism.
func (s *Server) Start(mechanism string) (*Session, error) {
	switch mechanism {
	case PLAIN:
		return &Session{srv: s, mech: mechanism}, nil
	case SCRAMSHA256, SCRAMSHA512:
		return &Session{srv: s, mech: mechanism, conv: &scramConv{srv: s, mech: mechanism, hash: hashes[mechanism], nonceGen: s.nonceGen}}, nil
	}
	return nil, fmt.Errorf("%w %q (offered: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", ErrMechanism, mechanism)
}

// credential is user's stored credential for mech, or, for an unknown user
// or a mechanism the user has no credential for, a decoy that no password
// matches: the same user always gets the same salt, and the work done is
// the same, so the answers do not tell which users exist.
func (s *Server) credential(mech, user string) access.SCRAMCredential {
	if u, ok := s.access.SASLUser(user); ok {
		if c, ok := u.SCRAM[mech]; ok {
			return c
		}
	}
	// HMAC with the mechanism's hash: keys of its size.
	derive := func(label string) []byte {
		m := hmac.New(hashes[mech], s.secret)
		m.Write([]byte(label + "\x00" + mech + "\x00" + user))
		return m.Sum(nil)
	}
	return access.SCRAMCredential{Iterations: access.MinSCRAMIterations,
		Salt: derive("salt")[:16], StoredKey: derive("stored"), ServerKey: derive("server")}
}

// Session is one login. It is not safe for concurrent use (a connection
// steps it in turn).
type Session struct {
	srv  *Server
	mech string
	conv *scramConv // SCRAM only
	done bool
	p    *access.Principal // set when the login succeeded
}

// Step takes the client's message and returns the server's. When done is
// true, principal is the principal of the user's sasl line. An error
// (wrapping ErrAuthentication) refuses the login and ends the session.
func (s *Session) Step(clientMsg []byte) (serverMsg []byte, done bool, principal string, err error) {
	p, msg, err := s.step(clientMsg)
	if err != nil {
		s.done = true
		return nil, false, "", err
	}
	if p == nil {
		return msg, false, "", nil
	}
	s.p = p
	return msg, true, p.Name, nil
}

// Principal is the logged-in principal, with its rights; nil until Step
// reports done.
func (s *Session) Principal() *access.Principal { return s.p }

// step runs one step; it returns the principal when the login completes.
func (s *Session) step(clientMsg []byte) (*access.Principal, []byte, error) {
	if s.done {
		return nil, nil, fmt.Errorf("%w: the exchange has ended", ErrAuthentication)
	}
	if len(clientMsg) > maxMessage {
		return nil, nil, fmt.Errorf("%w: client message longer than %d bytes", ErrAuthentication, maxMessage)
	}
	if s.conv == nil {
		s.done = true
		p, err := s.srv.plain(clientMsg)
		return p, []byte{}, err
	}
	if s.conv.step == 0 {
		s.conv.step = 1
		resp, err := s.conv.first(string(clientMsg))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrAuthentication, err)
		}
		return nil, []byte(resp), nil
	}
	s.done = true
	resp, err := s.conv.final(string(clientMsg))
	u, known := s.srv.access.SASLUser(s.conv.username)
	if err == nil && !known {
		err = errProof // a decoy credential never matches; this is belt and braces
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	return u.Principal, []byte(resp), nil
}

// plain checks a PLAIN message (RFC 4616): [authzid] NUL authcid NUL
// password.
func (s *Server) plain(msg []byte) (*access.Principal, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		return nil, fmt.Errorf("%w: malformed PLAIN message: want [authzid] NUL username NUL password", ErrAuthentication)
	}
	user, password := string(parts[1]), string(parts[2])
	if len(parts[0]) > 0 && string(parts[0]) != user {
		return nil, fmt.Errorf("%w: an authorization identity other than the username is not supported", ErrAuthentication)
	}
	c := s.credential(SCRAMSHA256, user)
	stored, err := StoredKey(SCRAMSHA256, password, c)
	// Compared whatever happened above, so a decoy costs the same.
	match := err == nil && subtle.ConstantTimeCompare(stored, c.StoredKey) == 1
	u, known := s.access.SASLUser(user)
	if !match || !known {
		return nil, fmt.Errorf("%w: unknown user or wrong password", ErrAuthentication)
	}
	return u.Principal, nil
}

// StoredKey derives password's SCRAM StoredKey under c's salt and
// iterations. The password is taken as its UTF-8 bytes, as Kafka's own
// SCRAM does (no SASLprep).
func StoredKey(mech, password string, c access.SCRAMCredential) ([]byte, error) {
	sc, err := derive(mech, password, c.Salt, c.Iterations)
	if err != nil {
		return nil, err
	}
	return sc.StoredKey, nil
}

func derive(mech, password string, salt []byte, iters int) (scram.StoredCredentials, error) {
	h, ok := hashes[mech]
	if !ok {
		return scram.StoredCredentials{}, fmt.Errorf("%w %q", ErrMechanism, mech)
	}
	cl, err := h.NewClientUnprepped("", password, "")
	if err != nil {
		return scram.StoredCredentials{}, fmt.Errorf("sasl: %s: %w", mech, err)
	}
	sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return scram.StoredCredentials{}, fmt.Errorf("sasl: %s key derivation failed", mech)
	}
	return sc, nil
}

// NewCredentials derives the stored credentials of a password for both
// SCRAM mechanisms, each with its own random 16-byte salt, for a sasl line
// (access.SASLLine). iterations below access.MinSCRAMIterations are
// raised to it.
func NewCredentials(password string, iterations int) (map[string]access.SCRAMCredential, error) {
	if password == "" {
		return nil, errors.New("sasl: empty password")
	}
	iterations = max(iterations, access.MinSCRAMIterations)
	if iterations > access.MaxSCRAMIterations {
		return nil, fmt.Errorf("sasl: at most %d iterations", access.MaxSCRAMIterations)
	}
	out := map[string]access.SCRAMCredential{}
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("sasl: random salt: %w", err)
		}
		sc, err := derive(mech, password, salt, iterations)
		if err != nil {
			return nil, err
		}
		out[mech] = access.SCRAMCredential{Iterations: iterations, Salt: salt, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}
	}
	return out, nil
}
