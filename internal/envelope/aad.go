package envelope

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// aadLabel starts every associated-data string (docs/wire-format.md §3).
const aadLabel = "kafkagate-aad-v1"

// errorf wraps a sentinel with a message. Callers never pass plaintext or
// key material.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// authenticated reports whether a header is one of kafkagate's own
// (kafkagate.*, except the kafkagate.note.* annotations): such headers may
// appear at most once, and all but the key headers are in the associated
// data.
func authenticated(name string) bool {
	return strings.HasPrefix(name, HeaderPrefix) && !strings.HasPrefix(name, NotePrefix)
}

// keyHeader reports the headers that name the data key rather than
// describe the data: kafkagate.kek, kafkagate.edek and kafkagate.origin.
// They are not in the associated data (docs/wire-format.md §3), so that
// gateway rewrap can replace the wrapped DEK with its rewrapped form (and
// record the origin topic) without touching the value. Changing them
// cannot forge anything: a substituted wrapped DEK unwraps (if at all) to
// another key, which fails GCM, and the KEK's derivation context binds the
// DEK to the topic the record was sealed for.
func keyHeader(name string) bool {
	switch name {
	case HeaderKEK, HeaderEDEK, HeaderOrigin:
		return true
	}
	return false
}

// inAAD reports whether a header takes part in the associated data.
func inAAD(name string) bool { return authenticated(name) && !keyHeader(name) }

// authHeaders returns the headers of hs that are in the associated data,
// sorted by name, and fails on a repeated kafkagate header (key headers
// included).
func authHeaders(hs []Header) ([]Header, error) {
	sorted, _, err := splitHeaders(hs)
	return sorted, err
}

// splitHeaders returns the associated-data headers of hs sorted by name
// and every kafkagate header (key headers included), and fails on a
// repeated kafkagate header. A record has a handful of headers, so the
// lookups are linear scans: no map per record on the seal and open paths.
func splitHeaders(hs []Header) (sorted, all []Header, err error) {
	// One array for both lists, each with room for every header.
	buf := make([]Header, 2*len(hs))
	sorted, all = buf[:0:len(hs)], buf[len(hs):len(hs):2*len(hs)]
	for _, h := range hs {
		if !authenticated(h.Key) {
			continue
		}
		if _, dup := lookup(all, h.Key); dup {
			return nil, nil, errorf(ErrBadHeader, "header %s repeated", h.Key)
		}
		all = append(all, h)
		if !keyHeader(h.Key) {
			sorted = append(sorted, h)
		}
	}
	slices.SortFunc(sorted, func(a, b Header) int { return strings.Compare(a.Key, b.Key) })
	return sorted, all, nil
}

// lookup finds a header by name.
func lookup(hs []Header, name string) ([]byte, bool) {
	for _, h := range hs {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// buildAAD encodes the associated data of docs/wire-format.md §3. sorted
// must come from authHeaders.
func buildAAD(topic string, key []byte, sorted []Header) []byte {
	n := len(aadLabel) + 4 + len(topic) + 4 + len(key) + 4
	for _, h := range sorted {
		n += 8 + len(h.Key) + len(h.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, aadLabel...)
	b = appendLP(b, []byte(topic))
	b = appendLP(b, key)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sorted)))
	for _, h := range sorted {
		b = appendLP(b, []byte(h.Key))
		b = appendLP(b, h.Value)
	}
	return b
}

func appendLP(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}

// fields is the parsed set of kafkagate headers of a record or chunk:
// sorted holds those in the associated data, all every kafkagate header.
type fields struct {
	sorted []Header
	all    []Header
}

func parseFields(hs []Header) (fields, error) {
	sorted, all, err := splitHeaders(hs)
	if err != nil {
		return fields{}, err
	}
	return fields{sorted: sorted, all: all}, nil
}

func (f fields) get(name string) ([]byte, bool) { return lookup(f.all, name) }

func (f fields) require(name string) ([]byte, error) {
	v, ok := lookup(f.all, name)
	if !ok {
		return nil, errorf(ErrBadHeader, "header %s missing", name)
	}
	return v, nil
}

// checkFormat verifies kafkagate.format and kafkagate.alg.
func (f fields) checkFormat(want Format, alg string) error {
	v, ok := f.get(HeaderFormat)
	if !ok {
		return errorf(ErrUnknownFormat, "no %s header", HeaderFormat)
	}
	if Format(v) != want {
		switch Format(v) {
		case FormatRecord, FormatChunk:
			return errorf(ErrUnknownFormat, "%s record where %s was expected", printable(v), want)
		}
		return errorf(ErrUnknownFormat, "%s %q", HeaderFormat, printable(v))
	}
	a, ok := f.get(HeaderAlg)
	if !ok {
		return errorf(ErrBadHeader, "header %s missing", HeaderAlg)
	}
	if string(a) != alg {
		return errorf(ErrUnknownFormat, "%s %q for %s", HeaderAlg, printable(a), want)
	}
	return nil
}

// kekRef is a parsed kafkagate.kek header.
type kekRef struct {
	mount, key string
}

func (k kekRef) String() string { return k.mount + "/" + k.key }

func parseKEK(v []byte) (kekRef, error) {
	s := string(v)
	i := strings.LastIndexByte(s, '/')
	if i <= 0 || i == len(s)-1 || !utf8.ValidString(s) {
		return kekRef{}, errorf(ErrBadHeader, "%s %q is not <mount>/<key>", HeaderKEK, printable(v))
	}
	return kekRef{mount: s[:i], key: s[i+1:]}, nil
}

// printable shortens and cleans a header value for an error message. Header
// values that reach it are public metadata, never plaintext or keys.
func printable(v []byte) string {
	const max = 64
	s := string(v)
	if len(s) > max {
		s = s[:max] + "..."
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return s
}
