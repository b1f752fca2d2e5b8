package sasl

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"

	"github.com/kafkagate/kafkagate/internal/access"
)

// scramConv is the server side of one SCRAM exchange (RFC 5802) as Kafka
// brokers run it (ScramSaslServer): no channel binding, an authorization
// identity only when it equals the username, and a client-final nonce
// that may carry the client nonce twice. librdkafka (kcat,
// confluent-kafka) sends client-nonce + combined-nonce there and Kafka
// accepts a nonce that ends with the combined one; xdg-go/scram's server
// demands equality, which is why the conversation is here while xdg-go
// derives the keys and is the reference client of the tests.
type scramConv struct {
	srv      *Server
	mech     string
	hash     func() hash.Hash
	nonceGen func() string

	step     int
	gs2      string // gs2 header of the client-first message, e.g. "n,,"
	c1bare   string
	s1       string
	cnonce   string
	nonce    string // combined: client nonce + server nonce
	username string
	cred     access.SCRAMCredential
}

// errMalformed and errProof are the refusals; neither quotes the client.
var (
	errMalformed = errors.New("malformed SCRAM message")
	errProof     = errors.New("unknown user or wrong password")
)

func randomNonce() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24+)
	return base64.RawStdEncoding.EncodeToString(b)
}

// first handles client-first-message: gs2-header client-first-bare.
func (c *scramConv) first(msg string) (string, error) {
	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return "", errMalformed // "p=..." asks for channel binding: not offered
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", errMalformed
	}
	c.gs2 = flag + "," + authz + ","
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errMalformed
	}
	for _, a := range attrs[2:] {
		if strings.HasPrefix(a, "m=") || a == "tokenauth=true" {
			return "", errMalformed // mandatory extensions and delegation tokens are not supported
		}
	}
	user, ok := decodeSASLName(attrs[0][2:])
	if !ok || user == "" {
		return "", errMalformed
	}
	if authz != "" {
		az, ok := strings.CutPrefix(authz, "a=")
		if name, dok := decodeSASLName(az); !ok || !dok || name != user {
			return "", errors.New("an authorization identity other than the username is not supported")
		}
	}
	c.cnonce = attrs[1][2:]
	if !printableNonce(c.cnonce) {
		return "", errMalformed
	}
	c.username, c.c1bare = user, bare
	c.cred = c.srv.credential(c.mech, user)
	c.nonce = c.cnonce + c.nonceGen()
	c.s1 = "r=" + c.nonce + ",s=" + base64.StdEncoding.EncodeToString(c.cred.Salt) + ",i=" + strconv.Itoa(c.cred.Iterations)
	return c.s1, nil
}

// final handles client-final-message: c=<cbind>,r=<nonce>[,ext],p=<proof>.
// It returns the server-final message when the proof holds.
func (c *scramConv) final(msg string) (string, error) {
	wop, proofB64, ok := cutLast(msg, ",p=")
	if !ok {
		return "", errMalformed
	}
	attrs := strings.Split(wop, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errMalformed
	}
	cbind, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil || !hmac.Equal(cbind, []byte(c.gs2)) {
		return "", errMalformed
	}
	if r := attrs[1][2:]; r != c.nonce && r != c.cnonce+c.nonce {
		return "", errMalformed
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != len(c.cred.StoredKey) {
		return "", errMalformed
	}
	authMsg := []byte(c.c1bare + "," + c.s1 + "," + wop)
	clientSig := c.mac(c.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	h := c.hash()
	h.Write(clientKey)
	if !hmac.Equal(h.Sum(nil), c.cred.StoredKey) {
		return "", errProof
	}
	return "v=" + base64.StdEncoding.EncodeToString(c.mac(c.cred.ServerKey, authMsg)), nil
}

func (c *scramConv) mac(key, data []byte) []byte {
	m := hmac.New(c.hash, key)
	m.Write(data)
	return m.Sum(nil)
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// decodeSASLName undoes RFC 5802's escaping of ',' (=2C) and '=' (=3D).
func decodeSASLName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == ',':
			return "", false
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// printableNonce: a nonce is printable ASCII without ','.
func printableNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
