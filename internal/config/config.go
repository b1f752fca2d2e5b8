// Package config loads kafkagate's configuration file, which keeps the
// original demo's getting_started.ini format (Python ConfigParser
// semantics: "=" or ":" delimiters, case-insensitive keys, full-line "#"
// and ";" comments, indented continuation lines, "%%" for a literal "%")
// and adds kafkagate's own sections: [kafkagate] and [policy:<topic>].
package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"

	"gopkg.in/ini.v1"

	"github.com/kafkagate/kafkagate/internal/policy"
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("configuration error")

// File is a loaded configuration.
type File struct {
	Path     string
	sections map[string]map[string]string
	order    []string
	Policies *policy.Set
}

// Load reads and parses path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// Parse parses configuration text.
func Parse(data []byte) (*File, error) {
	// ConfigParser refuses keys before the first section header.
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] != '[' {
			return nil, fmt.Errorf("%w: %q appears before any [section] header", ErrConfig, trunc(t))
		}
		break
	}
	raw, err := ini.LoadSources(ini.LoadOptions{
		InsensitiveKeys:            true,
		IgnoreInlineComment:        true,
		AllowPythonMultilineValues: true,
		KeyValueDelimiters:         "=:",
		PreserveSurroundedQuote:    true,
		SpaceBeforeInlineComment:   false,
		AllowNonUniqueSections:     false,
		AllowDuplicateShadowValues: false,
	}, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	f := &File{sections: map[string]map[string]string{}}
	defaults := map[string]string{}
	own := map[string]map[string]string{} // without DEFAULT's keys
	for _, sec := range raw.Sections() {
		kv := map[string]string{}
		for _, k := range sec.Keys() {
			v, err := interpolate(k.Value())
			if err != nil {
				return nil, fmt.Errorf("%w: [%s] %s: %v", ErrConfig, sec.Name(), k.Name(), err)
			}
			kv[k.Name()] = v
		}
		if sec.Name() == ini.DefaultSection {
			defaults = kv // ConfigParser's DEFAULT: inherited by every section
			continue
		}
		f.sections[sec.Name()] = kv
		own[sec.Name()] = maps.Clone(kv)
		f.order = append(f.order, sec.Name())
	}
	for _, kv := range f.sections {
		for k, v := range defaults {
			if _, ok := kv[k]; !ok {
				kv[k] = v
			}
		}
	}
	var ps []*policy.Policy
	for _, name := range f.order {
		topic, ok := strings.CutPrefix(name, "policy:")
		if !ok {
			continue
		}
		// DEFAULT's keys are not policy keys: a policy reads its own only.
		p, err := policy.Parse(strings.TrimSpace(topic), own[name])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		ps = append(ps, p)
	}
	if f.Policies, err = policy.NewSet(ps...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return f, nil
}

// interpolate applies ConfigParser's BasicInterpolation escapes: "%%" is
// "%"; a lone "%" is an error (as in Python) so a secret is never silently
// altered. %(name)s references are not supported and are refused.
func interpolate(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", errors.New("'%' must be written '%%' (ConfigParser interpolation)")
	}
	return b.String(), nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Section returns a copy of a section's keys (lower-case) and values; nil
// when the section is absent.
func (f *File) Section(name string) map[string]string {
	kv, ok := f.sections[name]
	if !ok {
		return nil
	}
	out := make(map[string]string, len(kv))
	for k, v := range kv {
		out[k] = v
	}
	return out
}

// Has reports whether a section exists.
func (f *File) Has(name string) bool { _, ok := f.sections[name]; return ok }

// Get returns section.key, or def when absent or empty.
func (f *File) Get(section, key, def string) string {
	if v := strings.TrimSpace(f.sections[section][strings.ToLower(key)]); v != "" {
		return v
	}
	return def
}

// Sections lists section names in file order.
func (f *File) Sections() []string { return append([]string(nil), f.order...) }
