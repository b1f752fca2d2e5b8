package fpe

import (
	"bytes"
	"crypto/sha256"
	"strconv"
	"sync"

	"github.com/capitalone/fpe/ff1"
)

const (
	// KeySize is the FPE key size in bytes: FF1 over AES-256.
	KeySize = 32
	// maxTweak bounds the FF1 tweak: prefix, a 128-byte domain name, mode,
	// length, BIN and last 4 fit well within it.
	maxTweak = 256
	// maxDomainLen bounds domain names.
	maxDomainLen = 128
	// maxWalk bounds cycle-walking. Each step lands on a Luhn-valid number
	// with probability 1/10, so 1000 steps fail with probability 0.9^1000,
	// about 10^-46: the bound exists only to turn a library bug into an
	// error instead of a hang.
	maxWalk = 1000
	// tweakTag starts every tweak, separating kafkagate's FF1 use from any
	// other use of the same key.
	tweakTag = "kafkagate-fpe"
)

// ff1Pool is FF1 in radix 10 under one key. capitalone/fpe's ff1.Cipher
// shares a CBC encrypter between calls and is not safe for concurrent use,
// so every call takes a cipher of its own from a pool. It validates its
// input itself, because ff1 accepts signs and very short strings.
type ff1Pool struct {
	pool sync.Pool // of *ff1.Cipher
}

// newFF1 accepts AES-128/192/256 keys (the NIST samples need all three);
// NewCipher allows only 256-bit keys.
func newFF1(key []byte) (*ff1Pool, error) {
	k := bytes.Clone(key)
	first, err := ff1.NewCipher(10, maxTweak, k, nil)
	if err != nil {
		return nil, newErr("init", CodeInvalidKey, "key of %d bytes: %v", len(key), err)
	}
	p := &ff1Pool{}
	p.pool.New = func() any {
		c, err := ff1.NewCipher(10, maxTweak, k, nil)
		if err != nil { // cannot happen: the same arguments succeeded above
			return nil
		}
		return &c
	}
	p.pool.Put(&first)
	return p, nil
}

// crypt runs FF1 on x, which must be 6 to 64 ASCII digits.
func (p *ff1Pool) crypt(op string, x string, tweak []byte, encrypt bool) (string, error) {
	if len(x) < DigitsMinDigits {
		return "", newErr(op, CodeDomainTooSmall, "%d digits to encrypt, need at least %d", len(x), DigitsMinDigits)
	}
	if len(x) > DigitsMaxDigits {
		return "", newErr(op, CodeTooLong, "%d digits to encrypt, at most %d allowed", len(x), DigitsMaxDigits)
	}
	for i := 0; i < len(x); i++ {
		if !isDigit(x[i]) {
			return "", newErr(op, CodeInvalidCharacters, "byte %d is not an ASCII digit", i)
		}
	}
	c, _ := p.pool.Get().(*ff1.Cipher)
	if c == nil {
		return "", newErr(op, CodeInternal, "no FF1 cipher")
	}
	var (
		out string
		err error
	)
	if encrypt {
		out, err = c.EncryptWithTweak(x, tweak)
	} else {
		out, err = c.DecryptWithTweak(x, tweak)
	}
	p.pool.Put(c)
	if err != nil {
		return "", newErr(op, CodeInternal, "FF1: %v", err)
	}
	if len(out) != len(x) {
		return "", newErr(op, CodeInternal, "FF1 changed the length")
	}
	return out, nil
}

// Cipher is format-preserving encryption under one key of one domain and
// version. It needs no Vault: build it from raw key bytes for tests and
// benchmarks. It is safe for concurrent use.
type Cipher struct {
	domain  string
	version int
	prefix  string // tweak prefix: kafkagate-fpe|<domain>|v<version>|
	ff      *ff1Pool
}

// NewCipher returns a Cipher for key (32 bytes, AES-256), the FPE domain
// (e.g. "payments.card_number") and the key version (>= 1). Domain and
// version are bound into every tweak. The key is copied.
func NewCipher(key []byte, domain string, version int) (*Cipher, error) {
	if err := CheckDomain("init", domain); err != nil {
		return nil, err
	}
	if version < 1 {
		return nil, newErr("init", CodeUnknownVersion, "version %d: versions start at 1", version)
	}
	if len(key) != KeySize {
		return nil, newErr("init", CodeInvalidKey, "key has %d bytes, need %d (AES-256)", len(key), KeySize)
	}
	ff, err := newFF1(key)
	if err != nil {
		return nil, err
	}
	return &Cipher{
		domain:  domain,
		version: version,
		prefix:  tweakTag + "|" + domain + "|v" + strconv.Itoa(version) + "|",
		ff:      ff,
	}, nil
}

// Domain is the cipher's FPE domain.
func (c *Cipher) Domain() string { return c.domain }

// Version is the cipher's key version.
func (c *Cipher) Version() int { return c.version }

// Encrypt encrypts value in format f. Digits are replaced, separators stay
// where they are, and the length is kept. Refusals are *Error values.
func (c *Cipher) Encrypt(f Format, value string) (string, error) {
	return c.apply("encrypt", f, value, true)
}

// Decrypt reverses Encrypt with the same format.
func (c *Cipher) Decrypt(f Format, value string) (string, error) {
	return c.apply("decrypt", f, value, false)
}

func (c *Cipher) apply(op string, f Format, value string, encrypt bool) (string, error) {
	if err := f.check(op); err != nil {
		return "", err
	}
	var buf [DigitsMaxDigits + 1]byte
	d, err := scan(op, value, buf[:])
	if err != nil {
		return "", err
	}
	n := len(d)
	if err := checkLength(op, f.mode(), n); err != nil {
		return "", err
	}
	m := f.effective(n)
	what := "card number"
	if !encrypt {
		what = "token"
	}
	switch m {
	case ModeDigits:
		out, err := c.ff.crypt(op, string(d), c.tweak(f, m, n, nil), encrypt)
		if err != nil {
			return "", err
		}
		copy(d, out)

	case ModeFull:
		if !luhnValid(d) {
			return "", newErr(op, CodeNotLuhn, "%s fails the Luhn check (mode full keeps Luhn validity and needs a valid input)", what)
		}
		out, err := c.ff.crypt(op, string(d[:n-1]), c.tweak(f, m, n, nil), encrypt)
		if err != nil {
			return "", err
		}
		copy(d, out)
		d[n-1] = luhnCheckDigit(d[:n-1])

	case ModeKeepBINLast4, ModeKeepBINLast4NoLuhn:
		mid := n - binDigits - last4Digits
		if mid < DigitsMinDigits {
			return "", newErr(op, CodeDomainTooSmall, "a %d-digit card leaves %d digits between BIN and last 4, need at least %d (use format full or fallback=full)", n, mid, DigitsMinDigits)
		}
		walk := m == ModeKeepBINLast4
		if walk && !luhnValid(d) {
			return "", newErr(op, CodeNotLuhn, "%s fails the Luhn check (mode %s keeps Luhn validity and needs a valid input)", what, m)
		}
		tw := c.tweak(f, m, n, d)
		x := string(d[binDigits : n-last4Digits])
		for i := 0; ; i++ {
			if i == maxWalk {
				return "", newErr(op, CodeInternal, "cycle-walking did not end after %d steps", maxWalk)
			}
			x, err = c.ff.crypt(op, x, tw, encrypt)
			if err != nil {
				return "", err
			}
			copy(d[binDigits:], x)
			if !walk || luhnValid(d) {
				break
			}
		}
	}
	// Put the digits back between the separators.
	out := []byte(value)
	j := 0
	for i := range out {
		if isDigit(out[i]) {
			out[i] = d[j]
			j++
		}
	}
	return string(out), nil
}

// tweak binds domain, version, mode and length, plus BIN and last 4 in the
// keep modes (d is then the whole number):
// kafkagate-fpe|<domain>|v<version>|<mode>|<n>[|<bin>|<last4>][|b<sha256(bind)[:16]>].
func (c *Cipher) tweak(f Format, m Mode, n int, d []byte) []byte {
	t := make([]byte, 0, len(c.prefix)+len(m)+48)
	t = append(t, c.prefix...)
	t = append(t, m...)
	t = append(t, '|')
	t = strconv.AppendInt(t, int64(n), 10)
	if d != nil {
		t = append(t, '|')
		t = append(t, d[:binDigits]...)
		t = append(t, '|')
		t = append(t, d[n-last4Digits:]...)
	}
	if f.Bind != "" {
		sum := sha256.Sum256([]byte(f.Bind))
		t = append(t, "|b"...)
		t = append(t, sum[:16]...)
	}
	return t
}

// CheckDomain refuses a domain name that is not 1-128 characters from
// [A-Za-z0-9._-] starting with a letter or digit (the name is part of the
// tweak, which uses '|', and of a KMS storage path), with an *Error of code
// CodeInvalidDomain for operation op.
func CheckDomain(op, domain string) error {
	if domain == "" || len(domain) > maxDomainLen {
		return newErr(op, CodeInvalidDomain, "domain name must have 1 to %d characters", maxDomainLen)
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		ok := isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return newErr(op, CodeInvalidDomain, "domain %q: only letters, digits, '.', '_' and '-' (not first) are allowed", domain)
		}
	}
	return nil
}
