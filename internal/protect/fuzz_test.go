package protect

import (
	"encoding/json"
	"testing"
)

// FuzzLocate: the JSON walker never panics, and replacing every located
// field with another JSON string always yields valid JSON.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{`{"a":"x","b":{"c":"y"}}`, `{"a":1,"a":2}`, `{"b":[{"c":1}]}`, `[]`, `{"b":null}`, `{"a\u0062":"z"}`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	paths := [][]string{{"a"}, {"b", "c"}, {"ab"}}
	f.Fuzz(func(t *testing.T, doc []byte) {
		sp, err := locate(doc, paths, 16)
		if err != nil {
			if err.Code == "" {
				t.Fatal("error without code")
			}
			return
		}
		repl := make([][]byte, len(sp))
		for i, s := range sp {
			if s.start >= 0 {
				repl[i] = []byte(`"vault:v1:AAAA"`)
			}
		}
		out := splice(doc, sp, repl)
		if !json.Valid(out) {
			t.Fatalf("splice made invalid JSON: %s -> %s", doc, out)
		}
	})
}

// FuzzFieldsHeader: the kafkagate.fields header decoder never panics and
// only accepts headers it can re-encode.
func FuzzFieldsHeader(f *testing.F) {
	f.Add([]byte(`{"v":1,"f":[{"p":"a","m":"transit","k":"k","a":1}]}`))
	f.Add([]byte(`{"v":1,"f":[{"p":"cc","m":"fpe","d":"d","n":2,"fmt":"full"}]}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeFieldsHeader(b)
		if err != nil {
			return
		}
		if _, err := json.Marshal(h); err != nil {
			t.Fatal(err)
		}
	})
}
