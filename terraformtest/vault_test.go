package terraformtest

import (
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// Tests: Vault module against the ini

func vaultEvaluator(t *testing.T) *evaluator {
	t.Helper()
	ev, err := newEvaluator(loadModules(t)["vault"])
	if err != nil {
		t.Fatalf("terraform/vault: %v", err)
	}
	return ev
}

func TestVaultTransitKeysCoverIniPolicies(t *testing.T) {
	f := loadIni(t)
	ev := vaultEvaluator(t)
	n := needsOf(f)
	if len(n.topicKeys) == 0 || len(n.envKeys) == 0 || len(n.fpeDomains) == 0 {
		t.Fatalf("the demo ini should use a per-topic key, an envelope key and FPE; got %+v", n)
	}
	t.Logf("ini needs: mount %s, topic keys %v, envelope keys %v, FPE domains %v", n.mount, n.topicKeys, n.envKeys, n.fpeDomains)
	for _, p := range missingTransitKeys(f, ev) {
		t.Error(p)
	}
	var mounts []string
	for _, attrs := range ev.instances("vault_mount") {
		if str(attrs["type"]) == "transit" {
			mounts = append(mounts, str(attrs["path"]))
		}
	}
	if !slices.Equal(mounts, []string{n.mount}) {
		t.Errorf("transit mounts %v, want [%s] ([kafkagate] transit_mount)", mounts, n.mount)
	}
	if got := str(ev.variableDefault("kv_mount")); got != fpeKVMount {
		t.Errorf("kv_mount defaults to %q, want %q (docs/design.md)", got, fpeKVMount)
	}
	if got := str(ev.variableDefault("fpe_kv_prefix")); got != fpeKVPrefix {
		t.Errorf("fpe_kv_prefix defaults to %q, want %q (docs/design.md)", got, fpeKVPrefix)
	}
}

// TestVaultPolicies: per encrypting topic of the ini, the producer policy
// encrypts and never decrypts record data, the consumer decrypts and never
// encrypts, the admin manages the topic's keys, and no policy of a topic
// touches another topic's key. (TestVaultMatchesProvision checks that the
// policies are exactly those of gateway provision.)
func TestVaultPolicies(t *testing.T) {
	f := loadIni(t)
	ev := vaultEvaluator(t)
	pols, err := ev.vaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	per, allKeys := encryptingTopics(f)
	if len(per) != 3 {
		t.Fatalf("the demo ini should have three encrypting topics, got %v", sortedKeys(per))
	}
	for _, topic := range sortedKeys(per) {
		checkTopicPolicies(t, pols, needsOf(f).mount, topic, per[topic], allKeys)
	}
}

// topicNeeds is what one encrypting topic of the ini needs from Vault.
type topicNeeds struct {
	key      string // transit key (fields) or KEK (envelope); "" without transit fields
	envelope bool
	domains  []string
}

// encryptingTopics returns the needs of each topic of f whose policy
// encrypts, and every transit key or KEK they use.
func encryptingTopics(f *config.File) (map[string]topicNeeds, []string) {
	per := map[string]topicNeeds{}
	var allKeys []string
	for _, topic := range f.Policies.Topics() {
		p, _ := f.Policies.For(topic)
		var n topicNeeds
		switch p.Mode {
		case policy.Envelope:
			n = topicNeeds{key: p.Envelope.Key, envelope: true}
		case policy.Fields:
			for _, fl := range p.Fields {
				switch fl.Mode {
				case policy.Transit:
					n.key = p.TransitKey
				case policy.FPE:
					n.domains = append(n.domains, fl.Options["domain"])
				}
			}
		default:
			continue
		}
		per[topic] = n
		if n.key != "" && !slices.Contains(allKeys, n.key) {
			allKeys = append(allKeys, n.key)
		}
	}
	return per, allKeys
}

// checkTopicPolicies checks the producer, consumer and admin policies of
// one topic: each may do its job with the topic's key (transit mount
// mnt), nothing more, and nothing with another topic's key.
func checkTopicPolicies(t *testing.T, pols map[string]terraformPolicy, mnt, topic string, n topicNeeds, allKeys []string) {
	has := func(role, path, c string) bool {
		caps := capsFor(pols[role].rules, path)
		return slices.Contains(caps, c) && !slices.Contains(caps, "deny")
	}
	prod, cons, adm := lifecycle.RoleName(topic, lifecycle.RoleProducer), lifecycle.RoleName(topic, lifecycle.RoleConsumer), lifecycle.RoleName(topic, lifecycle.RoleAdmin)
	for _, r := range []string{prod, cons, adm} {
		if _, ok := pols[r]; !ok {
			t.Fatalf("no vault_policy %q (have %v)", r, sortedKeys(pols))
		}
	}
	k := n.key
	enc := mnt + "/encrypt/" + k
	if n.envelope {
		enc = mnt + "/datakey/plaintext/" + k
	}
	for _, c := range []struct {
		role, path, cap string
		want            bool
	}{
		{prod, enc, "update", true},
		{prod, mnt + "/encrypt/" + k, "create", false}, // no key upsert
		{prod, mnt + "/keys/" + k + "/rotate", "update", false},
		{cons, mnt + "/decrypt/" + k, "update", true},
		{cons, enc, "update", false},
		{adm, mnt + "/keys/" + k, "read", true},
		{adm, mnt + "/keys/" + k + "/rotate", "update", true},
		{adm, mnt + "/keys/" + k + "/config", "update", true},
		{adm, mnt + "/rewrap/" + k, "update", true},
	} {
		if has(c.role, c.path, c.cap) != c.want {
			t.Errorf("policy %s: %s on %s: have %v, want %v", c.role, c.cap, c.path, capsFor(pols[c.role].rules, c.path), c.want)
		}
	}
	// Record data: the producer decrypts nothing, the consumer
	// encrypts nothing, with any key.
	for _, dk := range allKeys {
		for _, c := range []string{"update", "create", "read", "sudo"} {
			if has(prod, mnt+"/decrypt/"+dk, c) {
				t.Errorf("policy %s: %s on %s/decrypt/%s", prod, c, mnt, dk)
			}
		}
		for _, p := range []string{mnt + "/encrypt/" + dk, mnt + "/datakey/plaintext/" + dk} {
			if has(cons, p, "update") {
				t.Errorf("policy %s: update on %s", cons, p)
			}
		}
		if dk == k {
			continue
		}
		// Another topic's key: nothing at all.
		for _, r := range []string{prod, cons, adm} {
			for _, p := range []string{"encrypt/", "decrypt/", "datakey/plaintext/", "datakey/wrapped/", "rewrap/", "keys/"} {
				if caps := capsFor(pols[r].rules, mnt+"/"+p+dk); len(caps) > 0 {
					t.Errorf("policy %s of topic %s: %v on %s/%s%s, the key of another topic", r, topic, caps, mnt, p, dk)
				}
			}
		}
	}
	for _, d := range n.domains {
		kv := fpeKVMount + "/data/" + fpeKVPrefix + "/" + d
		for _, r := range []string{prod, cons} {
			if !has(r, kv, "read") || !has(r, mnt+"/decrypt/"+fpeKEK, "update") {
				t.Errorf("policy %s: cannot read and unwrap the FPE key of %s", r, d)
			}
			if has(r, kv, "update") || has(r, kv, "create") {
				t.Errorf("policy %s: may write the FPE key of %s", r, d)
			}
		}
	}
	if len(n.domains) == 0 && has(prod, mnt+"/decrypt/"+fpeKEK, "update") {
		t.Errorf("policy %s: unwraps FPE keys, but topic %s has no FPE field", prod, topic)
	}
}

// TestVaultAppRoles: one AppRole role per policy, of the same name, bound
// to that policy only.
func TestVaultAppRoles(t *testing.T) {
	ev := vaultEvaluator(t)
	pols, err := ev.vaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for inst, attrs := range ev.instances("vault_approle_auth_backend_role") {
		name := str(attrs["role_name"])
		roles = append(roles, name)
		if got := strs(attrs["token_policies"]); !slices.Equal(got, []string{name}) {
			t.Errorf("%s: token_policies %v, want [%s]", inst, got, name)
		}
		if ttl := attrs["token_ttl"]; ttl == cty.NilVal || ttl.Type() != cty.Number {
			t.Errorf("%s: token_ttl is not a number from a variable", inst)
		}
	}
	slices.Sort(roles)
	if want := sortedKeys(pols); !slices.Equal(roles, want) || len(roles) != 9 {
		t.Errorf("AppRole roles %v, want one per policy %v (3 topics x 3 roles)", roles, want)
	}
	var approle bool
	for _, attrs := range ev.instances("vault_auth_backend") {
		approle = approle || str(attrs["type"]) == "approle"
	}
	if !approle {
		t.Error("no vault_auth_backend of type approle")
	}
}
