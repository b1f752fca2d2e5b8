package terraformtest

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// The checks above can fail: feed them broken input.

func TestChecksCatchMistakes(t *testing.T) {
	t.Run("undeclared and unused variables", func(t *testing.T) {
		m := mustParseModule(t, `
variable "topic" {
  description = "a topic"
  type        = string
  default     = "purchases"
}
locals { x = local.y }
resource "confluent_kafka_topic" "t" {
  topic_name = var.topik
}
`)
		got := strings.Join(checkReferences(m), "\n")
		for _, want := range []string{"var.topik is not declared", "local.y is not declared", `variable "topic" is declared but never used`} {
			if !strings.Contains(got, want) {
				t.Errorf("checkReferences did not report %q; got:\n%s", want, got)
			}
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		if _, diags := parseModule("bad", map[string][]byte{"bad.tf": []byte(`resource "x" "y" { name = }`)}); !diags.HasErrors() {
			t.Error("no diagnostic for a syntax error")
		}
	})
	t.Run("literal credentials", func(t *testing.T) {
		m := mustParseModule(t, `
provider "vault" {
  token = "not-a-real-token"
}
variable "vault_token" {
  description = "a token"
  type        = string
  default     = "also-not-real"
}
resource "confluent_kafka_topic" "t" {
  credentials {
    key    = "ABCDEFGH"
    secret = confluent_api_key.k.secret
  }
}
# hvs.AAAAAAAAAAAAAAAAAAAAAAAAAA
`)
		got := findCredentials(m)
		if len(got) != 4 {
			t.Errorf("findCredentials found %d problems, want 4 (token, default, key, hvs. text):\n%s", len(got), strings.Join(got, "\n"))
		}
	})
	t.Run("misspelled policy key", func(t *testing.T) {
		bad := editedIni(t, "transit_key = kafka-{topic}", "transit_kye = kafka-{topic}", 1)
		if _, err := config.Parse([]byte(bad)); err == nil {
			t.Error("config.Parse accepted a misspelled transit_key")
		}
	})
	t.Run("transit key not created", func(t *testing.T) {
		f := testkit.Config(t, editedIni(t, "transit_key = kafka-{topic}", "transit_key = orders-{topic}", -1))
		if got := missingTransitKeys(f, vaultEvaluator(t)); !strings.Contains(strings.Join(got, "\n"), `"orders-purchases_encrypted"`) {
			t.Errorf("missingTransitKeys = %q, want a problem about orders-purchases_encrypted", got)
		}
	})
	t.Run("topic renamed in the ini", func(t *testing.T) {
		f := testkit.Config(t, editedIni(t, "targettopic = purchases_encrypted", "targettopic = purchases_enc", 1))
		_, ev := confluentEvaluator(t)
		if got := topicMismatches(f, ev); len(got) < 2 {
			t.Errorf("topicMismatches = %q, want the variable default and the topic set reported", got)
		}
	})
	t.Run("vault path patterns", func(t *testing.T) {
		for _, c := range []struct {
			pattern, path string
			want          bool
		}{
			{"transit/encrypt/k", "transit/encrypt/k", true},
			{"transit/encrypt/k", "transit/encrypt/k2", false},
			{"transit/decrypt/*", "transit/decrypt/k", true},
			{"transit/+/k", "transit/decrypt/k", true},
			{"secret/data/kafkagate/fpe/*", "secret/data/kafkagate/fpe/payments.card_number", true},
		} {
			if got := vaultMatch(c.pattern, c.path); got != c.want {
				t.Errorf("vaultMatch(%q, %q) = %v", c.pattern, c.path, got)
			}
		}
	})
}

// mustParseModule parses src as the one file of module "bad".
func mustParseModule(t *testing.T, src string) *module {
	t.Helper()
	m, diags := parseModule("bad", map[string][]byte{"bad.tf": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return m
}

// editedIni is the demo ini with the first n (all when n < 0) occurrences
// of old replaced by new; it fails t when old does not occur.
func editedIni(t *testing.T, old, new string, n int) string {
	t.Helper()
	raw := mustRead(t, iniPath)
	if !strings.Contains(raw, old) {
		t.Fatalf("%q not found in %s", old, iniPath)
	}
	return strings.Replace(raw, old, new, n)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
