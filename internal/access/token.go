package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix starts every token made by NewToken, so secret scanners can
// recognise them.
const TokenPrefix = "kgt_"

// NewToken returns a fresh random bearer token (256 bits) and its hash in
// access file form.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is a token's form in the access file: sha256:<hex>. SHA-256
// without salt suffices because tokens are 256-bit random values, not
// passwords.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:])
}

// TokenLine is the access file line of a token.
func TokenLine(hash, principal string, grants []Grant) string {
	return line("token", []string{hash}, principal, grants)
}

// line joins an access file line: kind, its credential fields, the
// principal and the rights.
func line(kind string, cred []string, principal string, grants []Grant) string {
	parts := append([]string{kind}, cred...)
	parts = append(parts, principal)
	for _, g := range grants {
		parts = append(parts, g.String())
	}
	return strings.Join(parts, " ")
}

func parseTokenHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hx, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		// Never echo the field: it may be a token pasted by mistake.
		return h, errors.New("the token field must be sha256:<64 hex digits> (the hash printed by `gateway token new`, never the token itself)")
	}
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != sha256.Size {
		return h, errors.New("the token field must be sha256:<64 hex digits>")
	}
	copy(h[:], b)
	return h, nil
}
