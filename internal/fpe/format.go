package fpe

// Mode says which digits of a value are encrypted and whether the Luhn check
// is kept. See docs/fpe.md for what each mode reveals.
type Mode string

// The modes. The string values are the policy spellings (format=...).
const (
	// ModeFull encrypts every digit of a card number except the check
	// digit, which is recomputed: the output is Luhn-valid. One FF1 call.
	// The input must pass the Luhn check.
	ModeFull Mode = "full"
	// ModeKeepBINLast4 keeps the first 6 and last 4 digits in clear and
	// encrypts the middle, cycle-walking until the whole number passes the
	// Luhn check. The input must pass the Luhn check and have at least 16
	// digits (6 encrypted digits), unless Format.FallbackFull is set.
	ModeKeepBINLast4 Mode = "keep-bin-last4"
	// ModeKeepBINLast4NoLuhn is ModeKeepBINLast4 without the Luhn walk: one
	// FF1 call, and the output usually fails the Luhn check.
	ModeKeepBINLast4NoLuhn Mode = "keep-bin-last4-no-luhn"
	// ModeDigits encrypts every digit of a generic numeric identifier of 6
	// to 64 digits. No Luhn handling.
	ModeDigits Mode = "digits"
)

// Length limits, in digits (separators not counted).
const (
	CardMinDigits   = 12 // card modes
	CardMaxDigits   = 19
	DigitsMinDigits = 6 // ModeDigits; also the smallest encrypted part in any mode (NIST SP 800-38G Rev.1: radix^len >= 10^6)
	DigitsMaxDigits = 64
	binDigits       = 6
	last4Digits     = 4
)

// Format is a mode plus its options. The zero Format is ModeFull. The same
// Format must be given to Encrypt and Decrypt.
type Format struct {
	Mode Mode
	// FallbackFull applies to the keep modes: a card with fewer than 16
	// digits (so fewer than 6 middle digits, e.g. a 15-digit card) is
	// encrypted in ModeFull instead of being refused with
	// fpe_domain_too_small. Lengths are preserved, so Decrypt makes the
	// same choice from the token's length.
	FallbackFull bool
	// Bind, when not empty, binds tokens to a context (kafkagate binds
	// them to the topic): its SHA-256 is part of the FF1 tweak, so a token
	// decrypts to its plaintext only under the same Bind. Empty for tokens
	// written before binding existed.
	Bind string
}

// ParseFormat parses the policy options format=<mode> and fallback=<mode>.
// An empty mode is ModeFull; fallback is "" or "full" (keep modes only).
func ParseFormat(mode, fallback string) (Format, error) {
	f := Format{Mode: Mode(mode)}
	if f.Mode == "" {
		f.Mode = ModeFull
	}
	switch fallback {
	case "":
	case string(ModeFull):
		f.FallbackFull = true
	default:
		return Format{}, newErr("parse", CodeUnknownFormat, "fallback %q: only %q is supported", fallback, ModeFull)
	}
	if err := f.check("parse"); err != nil {
		return Format{}, err
	}
	return f, nil
}

// String is the policy spelling: "keep-bin-last4" or
// "keep-bin-last4,fallback=full".
func (f Format) String() string {
	s := string(f.mode())
	if f.FallbackFull {
		s += ",fallback=full"
	}
	return s
}

// EffectiveMode is the mode used for value (a plaintext or a token: both
// have the same number of digits): f.Mode, or ModeFull when FallbackFull
// applies. It does not validate value.
func (f Format) EffectiveMode(value string) Mode {
	n := 0
	for i := 0; i < len(value); i++ {
		if isDigit(value[i]) {
			n++
		}
	}
	return f.effective(n)
}

func (f Format) mode() Mode {
	if f.Mode == "" {
		return ModeFull
	}
	return f.Mode
}

func (f Format) effective(n int) Mode {
	m := f.mode()
	if (m == ModeKeepBINLast4 || m == ModeKeepBINLast4NoLuhn) && f.FallbackFull && n-binDigits-last4Digits < DigitsMinDigits {
		return ModeFull
	}
	return m
}

func (f Format) check(op string) error {
	switch f.mode() {
	case ModeFull, ModeDigits:
		if f.FallbackFull {
			return newErr(op, CodeUnknownFormat, "fallback applies only to the keep-bin-last4 modes")
		}
	case ModeKeepBINLast4, ModeKeepBINLast4NoLuhn:
	default:
		return newErr(op, CodeUnknownFormat, "mode %q is not one of full, keep-bin-last4, keep-bin-last4-no-luhn, digits", string(f.Mode))
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scan checks value and returns its digits (as ASCII). Separators (space and
// hyphen) are allowed only singly and between two digits, so signs, leading
// or trailing separators are refused.
func scan(op, value string, buf []byte) ([]byte, error) {
	if value == "" {
		return nil, newErr(op, CodeEmpty, "value is empty")
	}
	d := buf[:0]
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case isDigit(c):
			d = append(d, c)
		case c == ' ' || c == '-':
			if i == 0 || i == len(value)-1 || !isDigit(value[i-1]) || !isDigit(value[i+1]) {
				return nil, newErr(op, CodeInvalidCharacters, "separator at byte %d is not between two digits", i)
			}
		default:
			return nil, newErr(op, CodeInvalidCharacters, "byte %d is not an ASCII digit or separator", i)
		}
	}
	return d, nil
}

// checkLength applies the mode's length limits to n digits.
func checkLength(op string, m Mode, n int) error {
	lo, hi, what := CardMinDigits, CardMaxDigits, "card number"
	if m == ModeDigits {
		lo, hi, what = DigitsMinDigits, DigitsMaxDigits, "numeric value"
	}
	if n < lo {
		return newErr(op, CodeTooShort, "%s has %d digits, need at least %d", what, n, lo)
	}
	if n > hi {
		return newErr(op, CodeTooLong, "%s has %d digits, at most %d allowed", what, n, hi)
	}
	return nil
}

// luhnValid reports whether the ASCII digits d pass the Luhn check.
func luhnValid(d []byte) bool { return luhnSum(d, false)%10 == 0 }

// Luhn reports whether s is one or more ASCII digits passing the Luhn
// check (as a card number does).
func Luhn(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return luhnValid([]byte(s))
}

// luhnCheckDigit returns the check digit (ASCII) to append to body.
func luhnCheckDigit(body []byte) byte {
	return byte('0' + (10-luhnSum(body, true)%10)%10)
}

// luhnSum sums d with every second digit from the right doubled; the
// rightmost digit is doubled when doubleLast (i.e. when a check digit will
// follow).
func luhnSum(d []byte, doubleLast bool) int {
	sum := 0
	double := doubleLast
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum
}

func (m Mode) String() string { return string(m) }
