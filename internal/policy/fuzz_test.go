package policy

import "testing"

// FuzzFields: the fields-list parser never panics; what it accepts has no
// empty or overlapping paths and round-trips through JoinPath/SplitPath.
func FuzzFields(f *testing.F) {
	f.Add("Name transit, a\\.b:plain\n cc fpe format=keep-bin-last4 fallback=full")
	f.Add("a transit, a.b transit")
	f.Add("x.y.z fpe domain=d default_version=3")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFields(s)
		if err != nil {
			return
		}
		for _, fl := range fs {
			back, err := SplitPath(fl.PathString())
			if err != nil || len(back) != len(fl.Path) {
				t.Fatalf("path %q does not round-trip: %v", fl.Path, err)
			}
			for i := range back {
				if back[i] != fl.Path[i] || back[i] == "" {
					t.Fatalf("path %q -> %q", fl.Path, back)
				}
			}
		}
	})
}
