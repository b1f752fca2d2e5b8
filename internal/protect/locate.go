package protect

import (
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// span is where one policy field's value sits in a JSON document.
type span struct {
	start, end int // byte offsets of the raw value; start < 0 when absent
	res        gjson.Result
}

// DefaultMaxDepth bounds JSON nesting.
const DefaultMaxDepth = 64

// locate validates doc (well-formed UTF-8 JSON object, no duplicate keys,
// nesting at most maxDepth) and finds each path's raw value. It walks the
// document once. A path that crosses a non-object (array, string, number,
// boolean) is an error, so a field can never escape its policy by changing
// shape; a path through null or a missing key is simply absent.
func locate(doc []byte, paths [][]string, maxDepth int) ([]span, *Error) {
	return newLocator(paths).locate(doc, maxDepth)
}

// locator finds one set of paths in many documents: the lookup table of
// the paths and their prefixes is built once.
type locator struct {
	n    int
	want map[string]int // full path -> index; prefixes -> -1
}

func newLocator(paths [][]string) *locator {
	want := make(map[string]int, len(paths)*2)
	for i, p := range paths {
		for j := 1; j < len(p); j++ {
			want[strings.Join(p[:j], "\x00")] = -1
		}
		want[strings.Join(p, "\x00")] = i
	}
	return &locator{n: len(paths), want: want}
}

// locate is the package function locate for l's paths.
func (l *locator) locate(doc []byte, maxDepth int) ([]span, *Error) {
	if !utf8.Valid(doc) {
		return nil, &Error{Code: CodeInvalidJSON, Msg: "value is not valid UTF-8"}
	}
	// gjson validates by recursion, one frame per nesting level: bound the
	// depth first, without recursing, so no value can exhaust the stack.
	if !depthWithin(doc, maxDepth) {
		return nil, &Error{Code: CodeTooDeep, Msg: "value nests deeper than the limit"}
	}
	if !gjson.ValidBytes(doc) {
		return nil, &Error{Code: CodeInvalidJSON, Msg: "value is not well-formed JSON"}
	}
	root := gjson.ParseBytes(doc)
	if !root.IsObject() {
		return nil, &Error{Code: CodeNotObject, Msg: "value must be a JSON object for a fields policy, got " + typeName(root)}
	}
	spans := make([]span, l.n)
	for i := range spans {
		spans[i].start = -1
	}
	w := walker{doc: doc, want: l.want, spans: spans, maxDepth: maxDepth}
	w.object(root, "", 1)
	if w.err != nil {
		return nil, w.err
	}
	return spans, nil
}

type walker struct {
	doc      []byte
	want     map[string]int
	spans    []span
	maxDepth int
	err      *Error
}

func (w *walker) object(obj gjson.Result, prefix string, depth int) {
	if depth > w.maxDepth {
		w.err = &Error{Code: CodeTooDeep, Msg: "value nests deeper than the limit"}
		return
	}
	var seen keySet
	obj.ForEach(func(k, v gjson.Result) bool {
		key := k.String()
		if !seen.add(key) {
			w.err = &Error{Code: CodeDuplicateKey, Field: joinDisplay(prefix, key), Msg: "duplicate object key"}
			return false
		}
		full := key
		if prefix != "" {
			full = prefix + "\x00" + key
		}
		idx, wanted := w.want[full]
		switch {
		case wanted && idx >= 0:
			w.spans[idx] = span{start: v.Index, end: v.Index + len(v.Raw), res: v}
			w.container(v, "", depth+1) // depth and duplicate checks only
		case wanted: // a prefix of a policy path
			switch {
			case v.IsObject():
				w.object(v, full, depth+1)
			case v.Type == gjson.Null:
			default:
				w.err = &Error{Code: CodeFieldType, Field: joinDisplay(prefix, key), Msg: "policy path continues below this field, but it is " + typeName(v) + ", not an object"}
			}
		default:
			w.container(v, "", depth+1)
		}
		return w.err == nil
	})
}

// keySet is the keys of one object seen so far: a short list scanned in
// place for the few keys most objects have, a map beyond that.
type keySet struct {
	few  [8]string
	n    int
	many map[string]struct{}
}

// add records key and reports whether it was new.
func (s *keySet) add(key string) bool {
	if s.many != nil {
		if _, dup := s.many[key]; dup {
			return false
		}
		s.many[key] = struct{}{}
		return true
	}
	for _, k := range s.few[:s.n] {
		if k == key {
			return false
		}
	}
	if s.n < len(s.few) {
		s.few[s.n] = key
		s.n++
		return true
	}
	s.many = make(map[string]struct{}, 2*len(s.few))
	for _, k := range s.few {
		s.many[k] = struct{}{}
	}
	s.many[key] = struct{}{}
	return true
}

// container checks a subtree nobody protects: depth and duplicate keys only.
func (w *walker) container(v gjson.Result, _ string, depth int) {
	switch {
	case v.IsObject():
		saved := w.want
		w.want = nil
		w.object(v, "\x01", depth) // unreachable prefix: nothing wanted below
		w.want = saved
	case v.IsArray():
		if depth > w.maxDepth {
			w.err = &Error{Code: CodeTooDeep, Msg: "value nests deeper than the limit"}
			return
		}
		v.ForEach(func(_, e gjson.Result) bool {
			w.container(e, "", depth+1)
			return w.err == nil
		})
	}
}

func typeName(v gjson.Result) string {
	switch {
	case v.IsObject():
		return "an object"
	case v.IsArray():
		return "an array"
	case v.Type == gjson.String:
		return "a string"
	case v.Type == gjson.Number:
		return "a number"
	case v.Type == gjson.True, v.Type == gjson.False:
		return "a boolean"
	case v.Type == gjson.Null:
		return "null"
	}
	return "nothing"
}

func joinDisplay(prefix, key string) string {
	if prefix == "" || prefix == "\x01" {
		return key
	}
	return strings.ReplaceAll(prefix, "\x00", ".") + "." + key
}

// splice replaces spans of doc (sorted, non-overlapping) with repl.
func splice(doc []byte, spans []span, repl [][]byte) []byte {
	type edit struct {
		start, end int
		b          []byte
	}
	edits := make([]edit, 0, len(spans))
	size := len(doc)
	for i, s := range spans {
		if s.start < 0 || repl[i] == nil {
			continue
		}
		edits = append(edits, edit{s.start, s.end, repl[i]})
		size += len(repl[i]) - (s.end - s.start)
	}
	// Sort by start (few edits: insertion sort).
	for i := 1; i < len(edits); i++ {
		for j := i; j > 0 && edits[j].start < edits[j-1].start; j-- {
			edits[j], edits[j-1] = edits[j-1], edits[j]
		}
	}
	out := make([]byte, 0, size)
	pos := 0
	for _, e := range edits {
		out = append(out, doc[pos:e.start]...)
		out = append(out, e.b...)
		pos = e.end
	}
	return append(out, doc[pos:]...)
}

// depthWithin reports whether the JSON text doc nests objects and arrays at
// most max levels deep. It scans once, iteratively, skipping strings; it
// does not validate (malformed text is for the parser to refuse, once it
// is known to be shallow enough to parse safely).
func depthWithin(doc []byte, max int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return false
			}
		case '}', ']':
			depth--
		}
	}
	return true
}
