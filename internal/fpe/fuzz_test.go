package fpe

import (
	"bytes"
	"testing"
)

// FuzzInput feeds arbitrary strings to every mode: the wrapper must refuse
// or round-trip, never panic, and an accepted value keeps its length and
// separators.
func FuzzInput(f *testing.F) {
	svc := NewService()
	if err := svc.AddKey("fuzz.domain", 1, bytes.Repeat([]byte{7}, 32), true); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"2516-2848-6785-9087", "+4111111111111111", "-12345", "", "4111 1111 1111 1111", "12345", "١٢٣٤٥٦٧", "4111--1111-1111-1111", "000000"} {
		f.Add(s, uint8(0))
	}
	modes := []Mode{ModeFull, ModeKeepBINLast4, ModeKeepBINLast4NoLuhn, ModeDigits}
	f.Fuzz(func(t *testing.T, in string, m uint8) {
		fm := Format{Mode: modes[int(m)%len(modes)], FallbackFull: m&4 != 0}
		out, v, err := svc.Encrypt("fuzz.domain", fm, in)
		if err != nil {
			if Code(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(out) != len(in) || v != 1 {
			t.Fatalf("%q -> %q (v%d)", in, out, v)
		}
		for i := range in {
			if (in[i] == '-' || in[i] == ' ') != (out[i] == '-' || out[i] == ' ') {
				t.Fatalf("separators moved: %q -> %q", in, out)
			}
		}
		back, err := svc.Decrypt("fuzz.domain", fm, 1, out)
		if err != nil || back != in {
			t.Fatalf("round trip %q -> %q -> %q (%v)", in, out, back, err)
		}
	})
}
