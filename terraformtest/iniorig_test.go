package terraformtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// Tests: getting_started.ini.orig

// The original template's keys, per section.
var originalKeys = map[string][]string{
	"default":            {"bootstrap.servers", "security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password", "message.max.bytes", "enable.metrics.push"},
	"consumer":           {"group.id", "auto.offset.reset"},
	"plaintext-msg-demo": {"topic", "number_of_msg"},
	"encryptor":          {"sourcetopic", "targettopic"},
	"large_payload":      {"topic", "sourcedir", "destinationdir"},
}

func TestIniOrigLoads(t *testing.T) {
	f := loadIni(t)
	text := mustRead(t, iniPath)
	checkOriginalTemplate(t, f, text)
	checkDemoPolicies(t, f)
	checkNoInlineComments(t, text)
	checkNoIniCredentials(t, f, text)
}

// checkOriginalTemplate checks the sections and keys of the original
// template: spellings, values and the Confluent Cloud comment lines.
func checkOriginalTemplate(t *testing.T, f *config.File, text string) {
	for _, sec := range []string{"default", "consumer", "plaintext-msg-demo", "encryptor", "large_payload", "kafkagate",
		"policy:purchases", "policy:purchases_encrypted", "policy:purchases_large_encrypted"} {
		if !f.Has(sec) {
			t.Errorf("section [%s] missing", sec)
		}
	}
	// Original sections keep the original key spellings, nothing else
	// (sleep_ms added), and the SASL lines are there as comments.
	for sec, keys := range originalKeys {
		allowed := slices.Clone(keys)
		if sec == "plaintext-msg-demo" {
			allowed = append(allowed, "sleep_ms")
		}
		for k := range f.Section(sec) {
			if !slices.Contains(allowed, k) {
				t.Errorf("[%s] has key %q, not one of the original's %v", sec, k, keys)
			}
		}
		for _, k := range keys {
			_, active := f.Section(sec)[k]
			commented := regexp.MustCompile(`(?m)^#\s*` + regexp.QuoteMeta(k) + `\s*=`).MatchString(text)
			if !active && !(sec == "default" && commented) {
				t.Errorf("[%s] %s is missing (neither set nor shown as a comment)", sec, k)
			}
		}
	}
	// Section, key and value, one a line.
	values := `
default            bootstrap.servers   127.0.0.1:9092
default            security.protocol   PLAINTEXT
default            message.max.bytes   ` + largeMaxBytes + `
default            enable.metrics.push false
consumer           group.id            python_example_group_1
consumer           auto.offset.reset   earliest
plaintext-msg-demo topic               purchases
plaintext-msg-demo number_of_msg       10
plaintext-msg-demo sleep_ms            1000
encryptor          sourcetopic         purchases
encryptor          targettopic         purchases_encrypted
large_payload      topic               purchases_large_encrypted
large_payload      sourcedir           source
large_payload      destinationdir      destination
kafkagate          listen              127.0.0.1:8080
kafkagate          transit_mount       transit
`
	for _, line := range strings.Split(strings.TrimSpace(values), "\n") {
		c := strings.Fields(line)
		if got := f.Get(c[0], c[1], "<absent>"); got != c[2] {
			t.Errorf("[%s] %s = %q, want %q", c[0], c[1], got, c[2])
		}
	}
	for _, re := range []string{`(?m)^#\s*security\.protocol\s*=\s*SASL_SSL\s*$`, `(?m)^#\s*sasl\.mechanisms\s*=\s*PLAIN\s*$`,
		`(?m)^#\s*sasl\.username\s*=\s*<API key>\s*$`, `(?m)^#\s*sasl\.password\s*=\s*<[^>]+>\s*$`} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no Confluent Cloud comment line matching %s", re)
		}
	}
}

// checkDemoPolicies checks the policies of the demo's topics.
func checkDemoPolicies(t *testing.T, f *config.File) {
	// purchases: what the gateway encrypts when records are POSTed to it
	// (demo 1 writes plaintext there directly, bypassing the gateway).
	p, ok := f.Policies.For("purchases")
	if !ok || p.Mode != policy.Fields || p.TransitKey != "kafka-purchases" || len(p.Fields) != 3 {
		t.Errorf("[policy:purchases]: %+v, want fields mode with key kafka-purchases", p)
	}
	p, ok = f.Policies.For("purchases_encrypted")
	if !ok {
		t.Fatal("no [policy:purchases_encrypted]")
	}
	if p.Mode != policy.Fields || p.TransitKey != "kafka-purchases_encrypted" || !p.AAD {
		t.Errorf("[policy:purchases_encrypted]: mode %s transit_key %s aad %v, want fields kafka-purchases_encrypted true", p.Mode, p.TransitKey, p.AAD)
	}
	var fields []string
	for _, fl := range p.Fields {
		s := fl.PathString() + " " + string(fl.Mode)
		for _, k := range sortedKeys(fl.Options) {
			s += " " + k + "=" + fl.Options[k]
		}
		fields = append(fields, s)
	}
	if want := []string{"Name transit", "Address transit", "credit_card fpe domain=payments.card_number format=full"}; !slices.Equal(fields, want) {
		t.Errorf("[policy:purchases_encrypted] fields %q, want %q", fields, want)
	}
	p, ok = f.Policies.For("purchases_large_encrypted")
	if !ok || p.Mode != policy.Envelope || p.Envelope.Key != "kafkagate-envelope" || p.Envelope.DEK != "per-message" {
		t.Errorf("[policy:purchases_large_encrypted]: %+v, want envelope kafkagate-envelope per-message", p)
	}
}

// checkNoInlineComments: ConfigParser has no inline comments, a "# ..."
// after a value would become part of it. Comments start in column 0.
func checkNoInlineComments(t *testing.T, text string) {
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";"):
			t.Errorf("line %d: indented comment %q (it would continue the previous value)", i+1, line)
		case strings.Contains(line, " #") || strings.Contains(line, " ;") || strings.Contains(line, "\t#"):
			t.Errorf("line %d: inline comment in %q", i+1, line)
		}
	}
}

// checkNoIniCredentials checks that no credential is set or written in
// the ini.
func checkNoIniCredentials(t *testing.T, f *config.File, text string) {
	secretKey := regexp.MustCompile(`(?i)(password|secret|token|sasl\.username|api[._-]?key)`)
	for _, sec := range f.Sections() {
		for k, v := range f.Section(sec) {
			if secretKey.MatchString(k) && v != "" {
				t.Errorf("[%s] %s is set; credentials belong in the local getting_started.ini or the environment", sec, k)
			}
		}
	}
	for _, re := range credentialText {
		if re.MatchString(text) {
			t.Errorf("credential-looking text matching %s", re)
		}
	}
}

func TestIniWithoutSleepMsLoads(t *testing.T) {
	raw, err := os.ReadFile(iniPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^sleep_ms\s*[=:].*\n`)
	if n := len(re.FindAll(raw, -1)); n != 1 {
		t.Fatalf("expected exactly one sleep_ms line in %s, found %d", iniPath, n)
	}
	path := filepath.Join(t.TempDir(), "getting_started.ini")
	if err := os.WriteFile(path, re.ReplaceAll(raw, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatalf("a file without sleep_ms (like the original template) must load: %v", err)
	}
	if _, ok := f.Section("plaintext-msg-demo")["sleep_ms"]; ok {
		t.Error("sleep_ms still present after removing it")
	}
	if got := f.Get("plaintext-msg-demo", "sleep_ms", "1000"); got != "1000" {
		t.Errorf("Get with default: %q", got)
	}
	if got := f.Get("plaintext-msg-demo", "number_of_msg", ""); got != "10" {
		t.Errorf("number_of_msg = %q after removing sleep_ms", got)
	}
}
