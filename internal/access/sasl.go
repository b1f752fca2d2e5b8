package access

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The SASL SCRAM mechanisms whose stored credentials an access file holds.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

// scramKeyLen is each mechanism's StoredKey and ServerKey length: its hash
// size.
var scramKeyLen = map[string]int{SCRAMSHA256: 32, SCRAMSHA512: 64}

// Bounds on a stored SCRAM credential. RFC 7677 asks for at least 4096
// iterations; the upper bound keeps a PLAIN login (one PBKDF2 run) from
// becoming a denial of service.
const (
	MinSCRAMIterations = 4096
	MaxSCRAMIterations = 1_000_000
	minSaltLen         = 8
	maxSaltLen         = 128
)

// SCRAMCredential is a SCRAM stored credential (RFC 5802 §3): what the
// server keeps instead of a password. It cannot be replayed as a password
// and does not reveal one beyond an offline guessing attack slowed by the
// iterations.
type SCRAMCredential struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// SASLUser is one sasl line: a Kafka SASL username, its stored
// credentials by mechanism (SCRAMSHA256, SCRAMSHA512) and its principal.
type SASLUser struct {
	Username  string
	Principal *Principal
	SCRAM     map[string]SCRAMCredential
}

// SASLUser finds a SASL username's entry.
func (a *Access) SASLUser(username string) (*SASLUser, bool) {
	u, ok := a.sasl[username]
	return u, ok
}

// SASLLine is the access file line of a SASL user. creds is keyed by
// mechanism; SHA-256 is written before SHA-512.
func SASLLine(username string, creds map[string]SCRAMCredential, principal string, grants []Grant) string {
	var forms []string
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		if c, ok := creds[mech]; ok {
			forms = append(forms, FormatSCRAM(mech, c))
		}
	}
	return line("sasl", []string{username, strings.Join(forms, ",")}, principal, grants)
}

// FormatSCRAM is one stored credential in access file form:
// <mechanism in lower case>:<iterations>:<salt>:<StoredKey>:<ServerKey>,
// the byte strings in standard base64.
func FormatSCRAM(mech string, c SCRAMCredential) string {
	b64 := base64.StdEncoding.EncodeToString
	return strings.ToLower(mech) + ":" + strconv.Itoa(c.Iterations) + ":" + b64(c.Salt) + ":" + b64(c.StoredKey) + ":" + b64(c.ServerKey)
}

// CheckSASLUsername accepts the usernames a sasl line may hold: 1–128
// letters, digits and ". _ - @".
func CheckSASLUsername(s string) error {
	if err := checkName(s); err != nil {
		return fmt.Errorf("%w: SASL username %w", ErrAccess, err)
	}
	return nil
}

// parseSASLLine parses `sasl <username> <credentials> <principal>
// <rights...>`. Errors never echo the credentials field.
func parseSASLLine(fields []string) (*SASLUser, error) {
	if len(fields) < 5 {
		return nil, fmt.Errorf("%w: want `sasl <username> <credentials> <principal> <rights...>` (the line printed by `gateway token sasl`)", ErrAccess)
	}
	if err := CheckSASLUsername(fields[1]); err != nil {
		return nil, err
	}
	creds, err := ParseSASLCredentials(fields[2])
	if err != nil {
		return nil, err
	}
	p, err := parsePrincipal("sasl", fields[3], fields[4:])
	if err != nil {
		return nil, err
	}
	return &SASLUser{Username: fields[1], Principal: p, SCRAM: creds}, nil
}

// ParseSASLCredentials parses a sasl line's credentials field: one or two
// stored credentials separated by a comma, each
// scram-sha-256:<iterations>:<salt>:<StoredKey>:<ServerKey> or the same
// with scram-sha-512 (see FormatSCRAM). SCRAM-SHA-256 is required: PLAIN
// logins are checked against it.
func ParseSASLCredentials(s string) (map[string]SCRAMCredential, error) {
	out := map[string]SCRAMCredential{}
	for _, form := range strings.Split(s, ",") {
		mech, c, err := parseSCRAM(form)
		if err != nil {
			return nil, fmt.Errorf("%w: SASL credentials: %v", ErrAccess, err)
		}
		if _, dup := out[mech]; dup {
			return nil, fmt.Errorf("%w: SASL credentials: %s given twice", ErrAccess, strings.ToLower(mech))
		}
		out[mech] = c
	}
	if _, ok := out[SCRAMSHA256]; !ok {
		return nil, fmt.Errorf("%w: SASL credentials: a scram-sha-256 form is required", ErrAccess)
	}
	return out, nil
}

// errSCRAMForm never quotes the field: a password may have been pasted in
// its place.
var errSCRAMForm = errors.New("want scram-sha-256:<iterations>:<salt>:<StoredKey>:<ServerKey> (optionally followed by ,scram-sha-512:...), as printed by `gateway token sasl`, never a password")

func parseSCRAM(form string) (string, SCRAMCredential, error) {
	parts := strings.Split(form, ":")
	if len(parts) != 5 {
		return "", SCRAMCredential{}, errSCRAMForm
	}
	mech := strings.ToUpper(parts[0])
	keyLen, ok := scramKeyLen[mech]
	if !ok || parts[0] != strings.ToLower(parts[0]) {
		return "", SCRAMCredential{}, errSCRAMForm
	}
	iters, err := strconv.Atoi(parts[1])
	if err != nil || iters < MinSCRAMIterations || iters > MaxSCRAMIterations {
		return "", SCRAMCredential{}, fmt.Errorf("%s iterations must be a number from %d to %d", parts[0], MinSCRAMIterations, MaxSCRAMIterations)
	}
	var c SCRAMCredential
	c.Iterations = iters
	for i, dst := range []*[]byte{&c.Salt, &c.StoredKey, &c.ServerKey} {
		b, err := base64.StdEncoding.DecodeString(parts[2+i])
		if err != nil {
			return "", SCRAMCredential{}, fmt.Errorf("%s: %s is not standard base64", parts[0], [...]string{"salt", "StoredKey", "ServerKey"}[i])
		}
		*dst = b
	}
	if len(c.Salt) < minSaltLen || len(c.Salt) > maxSaltLen {
		return "", SCRAMCredential{}, fmt.Errorf("%s: the salt must be %d to %d bytes", parts[0], minSaltLen, maxSaltLen)
	}
	if len(c.StoredKey) != keyLen || len(c.ServerKey) != keyLen {
		return "", SCRAMCredential{}, fmt.Errorf("%s: StoredKey and ServerKey must be %d bytes each", parts[0], keyLen)
	}
	return mech, c, nil
}

// KafkaPrincipal is the principal name's rights through the Kafka proxy:
// the union of the grants of the sasl and cert lines naming it (token
// lines are HTTP only); nil when no such line names it.
func (a *Access) KafkaPrincipal(name string) *Principal {
	var p *Principal
	add := func(q *Principal) {
		if q.Name != name {
			return
		}
		if p == nil {
			p = &Principal{Name: name, Method: q.Method}
		}
		p.Grants = append(p.Grants, q.Grants...)
	}
	for _, u := range a.sasl {
		add(u.Principal)
	}
	for _, c := range a.certs {
		add(c.p)
	}
	return p
}

// SASLUsers is the number of sasl lines.
func (a *Access) SASLUsers() int { return len(a.sasl) }
