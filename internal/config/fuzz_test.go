package config

import "testing"

// FuzzParse: the INI and policy loader never panics, and what it accepts
// it accepts again identically.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[default]\nbootstrap.servers = a:1\n[policy:t]\nfields =\n  a.b transit\n  c fpe format=digits\n"))
	f.Add([]byte("[policy:x]\nmode = envelope\ndek = cached\ndek_max_age = 1s\n"))
	f.Add([]byte("[DEFAULT]\nk: v%%\n[s]\n"))
	f.Add([]byte("key before section\n"))
	f.Add([]byte("[policy:t]\nfields = a transit, a.b plain\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		c2, err := Parse(data)
		if err != nil || len(c2.Sections()) != len(c.Sections()) || len(c2.Policies.Topics()) != len(c.Policies.Topics()) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
