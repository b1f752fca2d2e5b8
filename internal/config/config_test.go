package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestConfigParserSemantics(t *testing.T) {
	src := "# full-line comment\n; another\n[DEFAULT]\nshared = yes\n\n[default]\nBootstrap.Servers = b:9092\nsasl.password: p%%w#not-a-comment\n\n[policy:t1]\nfields =\n    Name transit\n    Address transit\n"
	f, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := f.Section("default")
	if d["bootstrap.servers"] != "b:9092" || d["sasl.password"] != "p%w#not-a-comment" || d["shared"] != "yes" {
		t.Fatalf("%q", d)
	}
	p, ok := f.Policies.For("t1")
	if !ok || len(p.Fields) != 2 {
		t.Fatalf("policy: %+v", p)
	}
	if f.Get("default", "BOOTSTRAP.SERVERS", "") != "b:9092" || f.Get("none", "x", "def") != "def" {
		t.Fatal("Get")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, src := range map[string]string{
		"key before section": "a = b\n[default]\n",
		"lone percent":       "[default]\nsasl.password = 50%off\n",
		"bad policy":         "[policy:t]\nfields = a nope\n",
	} {
		if _, err := Parse([]byte(src)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.ini")); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func TestOriginalTemplateLoads(t *testing.T) {
	b, err := os.ReadFile("../../getting_started.ini.orig")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"default", "consumer", "plaintext-msg-demo", "encryptor", "large_payload", "kafkagate"} {
		if !f.Has(s) {
			t.Errorf("section [%s] missing", s)
		}
	}
	for _, topic := range []string{f.Get("plaintext-msg-demo", "topic", ""), f.Get("encryptor", "targettopic", ""), f.Get("large_payload", "topic", "")} {
		if _, ok := f.Policies.For(topic); !ok {
			t.Errorf("no policy for demo topic %q", topic)
		}
	}
}
