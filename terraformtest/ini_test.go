package terraformtest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// The demo configuration

func loadIni(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Load(iniPath)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", iniPath, err)
	}
	return f
}

// iniNeeds lists what the ini's policies need from Vault.
type iniNeeds struct {
	mount      string
	topicKeys  []string // transit keys of fields-mode policies
	envKeys    []string // envelope KEKs
	fpeDomains []string
}

func needsOf(f *config.File) iniNeeds {
	n := iniNeeds{mount: f.Get("kafkagate", "transit_mount", "transit")}
	add := func(list *[]string, s string) {
		if !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	for _, topic := range f.Policies.Topics() {
		p, _ := f.Policies.For(topic)
		switch p.Mode {
		case policy.Fields:
			add(&n.topicKeys, p.TransitKey)
			for _, fl := range p.Fields {
				if fl.Mode == policy.FPE {
					add(&n.fpeDomains, fl.Options["domain"])
				}
			}
		case policy.Envelope:
			add(&n.envKeys, p.Envelope.Key)
		}
	}
	for _, k := range f.Policies.TransitKeys() {
		add(&n.topicKeys, k)
	}
	return n
}

// missingTransitKeys lists the transit keys the ini needs that the Vault
// module does not create, and key settings that would break the product.
func missingTransitKeys(f *config.File, ev *evaluator) []string {
	n := needsOf(f)
	keys := map[string]map[string]cty.Value{}
	for _, attrs := range ev.instances("vault_transit_secret_backend_key") {
		if name := str(attrs["name"]); name != "" {
			keys[name] = attrs
		}
	}
	var problems []string
	check := func(name, why string, derived bool) {
		attrs, ok := keys[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("transit key %q (%s) is not created by terraform/vault (it creates %v)", name, why, sortedKeys(keys)))
			return
		}
		if got := isTrue(attrs["derived"]); got != derived {
			problems = append(problems, fmt.Sprintf("transit key %q: derived = %v, want %v", name, got, derived))
		}
		if ty := str(attrs["type"]); ty != "" && ty != "aes256-gcm96" {
			problems = append(problems, fmt.Sprintf("transit key %q: type %s, want aes256-gcm96", name, ty))
		}
		if b := str(attrs["backend"]); b != n.mount {
			problems = append(problems, fmt.Sprintf("transit key %q: backend %q, want [kafkagate] transit_mount %q", name, b, n.mount))
		}
	}
	for _, k := range n.topicKeys {
		check(k, "per-topic transit key of a fields policy", false)
	}
	for _, k := range n.envKeys {
		check(k, "envelope KEK", true)
	}
	check(fpeKEK, "FPE KEK", true)
	check(legacyKey, "original demo's key", false)
	return problems
}

// topicMismatches compares the Confluent module's topics and consumer
// group with the ini's demo sections.
func topicMismatches(f *config.File, ev *evaluator) []string {
	plain := f.Get("plaintext-msg-demo", "topic", "")
	src := f.Get("encryptor", "sourcetopic", "")
	dst := f.Get("encryptor", "targettopic", "")
	large := f.Get("large_payload", "topic", "")
	var problems []string
	for _, c := range []struct{ variable, want, from string }{
		{"plaintext_topic", plain, "[plaintext-msg-demo] topic"},
		{"plaintext_topic", src, "[encryptor] sourcetopic"},
		{"encrypted_topic", dst, "[encryptor] targettopic"},
		{"large_payload_topic", large, "[large_payload] topic"},
		{"consumer_group", f.Get("consumer", "group.id", ""), "[consumer] group.id"},
	} {
		if got := str(ev.variableDefault(c.variable)); got != c.want {
			problems = append(problems, fmt.Sprintf("variable %s defaults to %q, but %s is %q", c.variable, got, c.from, c.want))
		}
	}
	want := []string{plain, src, dst, large, dst + dlqSuffix, large + dlqSuffix}
	slices.Sort(want)
	want = slices.Compact(want)
	got := map[string]map[string]cty.Value{}
	for _, attrs := range ev.instances("confluent_kafka_topic") {
		got[str(attrs["topic_name"])] = attrs
	}
	if !slices.Equal(sortedKeys(got), want) {
		problems = append(problems, fmt.Sprintf("confluent_kafka_topic names %v, want %v", sortedKeys(got), want))
	}
	maxBytes := f.Get("default", "message.max.bytes", "")
	for _, name := range []string{large, large + dlqSuffix} {
		attrs, ok := got[name]
		if !ok {
			continue
		}
		cfg := attrs["config"]
		var v string
		if cfg != cty.NilVal && !cfg.IsNull() && cfg.Type().IsObjectType() && cfg.Type().HasAttribute("max.message.bytes") {
			v = str(cfg.GetAttr("max.message.bytes"))
		} else if cfg != cty.NilVal && !cfg.IsNull() && cfg.Type().IsMapType() && cfg.HasIndex(cty.StringVal("max.message.bytes")).True() {
			v = str(cfg.Index(cty.StringVal("max.message.bytes")))
		}
		if v != largeMaxBytes {
			problems = append(problems, fmt.Sprintf("topic %s: max.message.bytes %q, want %s", name, v, largeMaxBytes))
		}
		if a, b := atoi(v), atoi(maxBytes); a < b {
			problems = append(problems, fmt.Sprintf("topic %s: max.message.bytes %d is below [default] message.max.bytes %d", name, a, b))
		}
	}
	return problems
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
