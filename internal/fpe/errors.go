package fpe

import (
	"errors"
	"fmt"
)

// Stable error codes. They appear in *Error.Code, in API responses and in
// logs; they never change meaning. See docs/fpe.md.
const (
	CodeEmpty             = "fpe_empty"              // the value is empty
	CodeInvalidCharacters = "fpe_invalid_characters" // not ASCII digits with single separators between them
	CodeTooShort          = "fpe_too_short"          // fewer digits than the format allows
	CodeTooLong           = "fpe_too_long"           // more digits than the format allows
	CodeNotLuhn           = "fpe_not_luhn"           // a Luhn-keeping format got a number that fails the Luhn check
	CodeDomainTooSmall    = "fpe_domain_too_small"   // fewer than 6 digits would be encrypted (keep modes, no fallback)
	CodeUnknownVersion    = "fpe_unknown_version"    // the key version is not loaded
	CodeUnknownDomain     = "fpe_unknown_domain"     // the FPE domain is not loaded
	CodeUnknownFormat     = "fpe_unknown_format"     // the format (mode or fallback) is not known
	CodeInvalidDomain     = "fpe_invalid_domain"     // the domain name is not allowed
	CodeInvalidKey        = "fpe_invalid_key"        // a key is not 32 bytes, or a key record is malformed
	CodeInternal          = "fpe_internal"           // the FF1 library failed; should not happen
)

// Sentinel errors, one per code, for errors.Is. Every *Error matches exactly
// one of them.
var (
	ErrEmpty             = errors.New(CodeEmpty)
	ErrInvalidCharacters = errors.New(CodeInvalidCharacters)
	ErrTooShort          = errors.New(CodeTooShort)
	ErrTooLong           = errors.New(CodeTooLong)
	ErrNotLuhn           = errors.New(CodeNotLuhn)
	ErrDomainTooSmall    = errors.New(CodeDomainTooSmall)
	ErrUnknownVersion    = errors.New(CodeUnknownVersion)
	ErrUnknownDomain     = errors.New(CodeUnknownDomain)
	ErrUnknownFormat     = errors.New(CodeUnknownFormat)
	ErrInvalidDomain     = errors.New(CodeInvalidDomain)
	ErrInvalidKey        = errors.New(CodeInvalidKey)
	ErrInternal          = errors.New(CodeInternal)
)

// sentinel returns the sentinel error for code, or nil.
func sentinel(code string) error {
	switch code {
	case CodeEmpty:
		return ErrEmpty
	case CodeInvalidCharacters:
		return ErrInvalidCharacters
	case CodeTooShort:
		return ErrTooShort
	case CodeTooLong:
		return ErrTooLong
	case CodeNotLuhn:
		return ErrNotLuhn
	case CodeDomainTooSmall:
		return ErrDomainTooSmall
	case CodeUnknownVersion:
		return ErrUnknownVersion
	case CodeUnknownDomain:
		return ErrUnknownDomain
	case CodeUnknownFormat:
		return ErrUnknownFormat
	case CodeInvalidDomain:
		return ErrInvalidDomain
	case CodeInvalidKey:
		return ErrInvalidKey
	case CodeInternal:
		return ErrInternal
	}
	return nil
}

// Error is a refused FPE operation. Its message names the operation, the
// code and a detail such as a digit count or a position, never the value.
type Error struct {
	Op     string // "encrypt", "decrypt", "load", ...
	Code   string // one of the Code* constants
	Detail string // human-readable; never contains the input value
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("fpe %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("fpe %s: %s: %s", e.Op, e.Code, e.Detail)
}

// Is reports whether target is the sentinel for e's code.
func (e *Error) Is(target error) bool {
	s := sentinel(e.Code)
	return s != nil && s == target
}

// Code returns the FPE error code in err's chain, or "" when err is not an
// FPE refusal (for example a Vault error).
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func newErr(op, code, format string, args ...any) *Error {
	return &Error{Op: op, Code: code, Detail: fmt.Sprintf(format, args...)}
}
