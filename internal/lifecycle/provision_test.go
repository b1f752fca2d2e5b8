package lifecycle_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

const provisionConfig = `
[kafkagate]
transit_mount = kgtransit
fpe_refresh = 1h

[policy:orders]
fields =
    Name        transit
    credit_card fpe format=full domain=shop.cards

[policy:docs]
mode = envelope
`

// provisionedGateway provisions the keys of configuration text (root
// token) and serves a gateway for it, for the test.
func provisionedGateway(t *testing.T, env *testkit.Env, text string) (*server.Gateway, *httptest.Server) {
	t.Helper()
	cfg := testkit.Config(t, text)
	if _, err := lifecycle.Provision(context.Background(), env.VC, lifecycle.ProvisionOptions{Policies: cfg.Policies, TransitMount: cfg.Get("kafkagate", "transit_mount", "transit")}); err != nil {
		t.Fatal(err)
	}
	gw := testkit.Gateway(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 5*time.Second)})
	return gw, testkit.ServeAPI(t, gw)
}

// roleGateway is a gateway logged in to Vault with the AppRole
// credentials provision wrote for role.
func roleGateway(t *testing.T, env *testkit.Env, cfg *config.File, dir, role string) (*server.Gateway, string, string) {
	t.Helper()
	gw := testkit.Gateway(t, env, server.Options{
		Config: cfg,
		Vault: vaultclient.Config{Addr: env.Vault.Addr, Timeout: 5 * time.Second,
			RoleIDFile: filepath.Join(dir, role+".role-id"), SecretIDFile: filepath.Join(dir, role+".secret-id")},
	})
	srv := testkit.ServeAPI(t, gw)
	cid := testkit.ClusterID(t, gw)
	return gw, srv.URL + "/v3/clusters/" + cid + "/topics/", gw.Vault.AuthMethod()
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	resp, b := testkit.Do(t, nil, method, url, "", body)
	return resp.StatusCode, b
}

// drifted lists the actions of rep that found drift, as "kind name: detail".
func drifted(rep *lifecycle.ProvisionReport) []string {
	var out []string
	for _, a := range rep.Actions {
		if a.Status == lifecycle.StatusDrift {
			out = append(out, a.Kind+" "+a.Name+": "+a.Detail)
		}
	}
	return out
}

func errorCode(t *testing.T, b []byte) int {
	t.Helper()
	var e struct {
		ErrorCode int `json:"error_code"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return e.ErrorCode
}

// TestProvisionIdempotentLeastPrivilege: a dry run plans what the first
// run creates and changes nothing; the second run changes nothing; a
// policy edited by hand is reported as drift and left alone; the producer
// credential encrypts and cannot decrypt (Vault's 403 becomes error 50321),
// the consumer credential the reverse.
func TestProvisionIdempotentLeastPrivilege(t *testing.T) {
	env := testkit.Start(t)
	cfg := testkit.Config(t, provisionConfig)
	// 8 MiB records, as getting_started.ini.orig: the envelope topic docs
	// (and its dead-letter topic) must take them.
	ks := testkit.KafkaSettings(t, env.Brokers, "message.max.bytes", "8388608")
	kc := testkit.KafkaClient(t, ks)
	dir := filepath.Join(t.TempDir(), "creds")
	o := lifecycle.ProvisionOptions{
		Policies: cfg.Policies, TransitMount: "kgtransit", FPE: core.KeyringOptions(cfg),
		CredentialsDir: dir, Kafka: kc, TokenTTL: 10 * time.Minute,
	}
	admin, err := sarama.NewClusterAdmin(env.Brokers, ks.Sarama)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	checkProvisionRuns(t, env, o)
	checkProvisioned(t, dir, kc, admin)
	checkProvisionDrift(t, env, admin, cfg, o)
	checkRoleSeparation(t, env, cfg, dir)
	checkEnvelopeRoles(t, env, dir)
}

// checkProvisionRuns: a dry run plans what the first run creates and
// changes nothing; the second run changes nothing.
func checkProvisionRuns(t *testing.T, env *testkit.Env, o lifecycle.ProvisionOptions) {
	ctx := context.Background()
	dry := o
	dry.DryRun = true
	plan, err := lifecycle.Provision(ctx, env.VC, dry)
	if err != nil {
		t.Fatal(err)
	}
	first, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	var tb strings.Builder
	_ = first.WriteTable(&tb)
	t.Logf("first run:\n%s", tb.String())
	if plan.Count(lifecycle.StatusCreated) != 0 || plan.Count(lifecycle.StatusWouldCreate) != first.Count(lifecycle.StatusCreated) || first.Count(lifecycle.StatusCreated) < 20 || first.Count(lifecycle.StatusDrift) != 0 {
		t.Fatalf("dry run: %d would_create / %d created; first run: %d created, %d drift", plan.Count(lifecycle.StatusWouldCreate), plan.Count(lifecycle.StatusCreated), first.Count(lifecycle.StatusCreated), first.Count(lifecycle.StatusDrift))
	}
	second, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Count(lifecycle.StatusOK) != len(second.Actions) || len(second.Actions) != len(first.Actions) {
		tb.Reset()
		_ = second.WriteTable(&tb)
		t.Fatalf("second run changed or drifted:\n%s", tb.String())
	}
	t.Logf("dry run: %d would_create; first run: %d created; second run: %d of %d unchanged", plan.Count(lifecycle.StatusWouldCreate), first.Count(lifecycle.StatusCreated), second.Count(lifecycle.StatusOK), len(second.Actions))
}

// checkProvisioned: credentials are readable by their owner only; the
// topics exist; the envelope topic and its dead-letter topic take
// message.max.bytes records (a topic override), the fields topics keep
// the broker's default.
func checkProvisioned(t *testing.T, dir string, kc *kafka.Client, admin sarama.ClusterAdmin) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2*2*3 {
		t.Fatalf("%d credential files, want 12", len(ents))
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	for _, tp := range []string{"orders", "orders.dlq", "docs", "docs.dlq"} {
		if ps, err := kc.Partitions(tp); err != nil || len(ps) != 3 {
			t.Fatalf("topic %s: %v %v", tp, ps, err)
		}
	}
	for tp, want := range map[string]string{"docs": "8388608", "docs.dlq": "8388608", "orders": "", "orders.dlq": ""} {
		v, override := topicConfig(t, admin, tp, lifecycle.TopicMaxMessageBytes)
		if override != (want != "") || (want != "" && v != want) {
			t.Fatalf("topic %s: max.message.bytes %q (override %v), want %q", tp, v, override, want)
		}
		t.Logf("topic %s: max.message.bytes %s (override %v)", tp, v, override)
	}
}

// checkProvisionDrift: a policy, a topic and a role edited by hand are
// reported as drift and left alone; the policy is restored afterwards.
func checkProvisionDrift(t *testing.T, env *testkit.Env, admin sarama.ClusterAdmin, cfg *config.File, o lifecycle.ProvisionOptions) {
	ctx := context.Background()
	edited := `path "kgtransit/decrypt/*" { capabilities = ["update"] }`
	if err := env.VC.API().Sys().PutPolicyWithContext(ctx, lifecycle.RoleName("orders", lifecycle.RoleProducer), edited); err != nil {
		t.Fatal(err)
	}
	// So is an envelope topic whose max.message.bytes was lowered.
	small := "1048576"
	if err := admin.AlterConfig(sarama.TopicResource, "docs.dlq", map[string]*string{lifecycle.TopicMaxMessageBytes: &small}, false); err != nil {
		t.Fatal(err)
	}
	// And a role whose token TTL was changed by hand.
	consumerRole := "auth/approle/role/" + lifecycle.RoleName("orders", lifecycle.RoleConsumer)
	if _, err := env.VC.Write(ctx, consumerRole, map[string]any{"token_ttl": 1200}); err != nil {
		t.Fatal(err)
	}
	third, err := lifecycle.Provision(ctx, env.VC, o)
	if err != nil {
		t.Fatal(err)
	}
	drift := drifted(third)
	slices.Sort(drift)
	if len(drift) != 3 || third.Count(lifecycle.StatusCreated) != 0 ||
		drift[0] != "approle_role "+lifecycle.RoleName("orders", lifecycle.RoleConsumer)+": token_ttl 1200, want 600" ||
		!strings.HasPrefix(drift[1], "kafka_topic docs.dlq: max.message.bytes 1048576, want at least 8388608") ||
		!strings.HasPrefix(drift[2], "vault_policy "+lifecycle.RoleName("orders", lifecycle.RoleProducer)+":") {
		t.Fatalf("after the edits: %d created, drift %q", third.Count(lifecycle.StatusCreated), drift)
	}
	t.Logf("third run drift: %q", drift)
	if got, _ := env.VC.API().Sys().GetPolicyWithContext(ctx, lifecycle.RoleName("orders", lifecycle.RoleProducer)); got != edited {
		t.Fatalf("provision changed a drifted policy: %q", got)
	}
	if v, _ := topicConfig(t, admin, "docs.dlq", lifecycle.TopicMaxMessageBytes); v != small {
		t.Fatalf("provision changed a drifted topic: max.message.bytes %q", v)
	}
	if r, err := env.VC.Read(ctx, consumerRole); err != nil || fmt.Sprint(r["token_ttl"]) != "1200" {
		t.Fatalf("provision changed a drifted role: token_ttl %v (%v)", r["token_ttl"], err)
	}
	if err := env.VC.API().Sys().PutPolicyWithContext(ctx, lifecycle.RoleName("orders", lifecycle.RoleProducer), lifecycle.PolicyHCL(mustPolicy(t, cfg, "orders"), lifecycle.RoleProducer, o)); err != nil {
		t.Fatal(err)
	}
}

// checkRoleSeparation: the producer credential encrypts and cannot
// decrypt (Vault's 403 becomes error 50321), the consumer credential the
// reverse.
func checkRoleSeparation(t *testing.T, env *testkit.Env, cfg *config.File, dir string) {
	ctx := context.Background()
	// The producer can encrypt and cannot decrypt.
	prod, produrl, method := roleGateway(t, env, cfg, dir, lifecycle.RoleName("orders", lifecycle.RoleProducer))
	if method != "approle" {
		t.Fatalf("producer gateway authenticates with %q", method)
	}
	order := `{"partition_id":0,"value":{"type":"JSON","data":{"Name":"Ann Example","credit_card":"2516-2848-6785-9087"}}}`
	if st, b := do(t, "POST", produrl+"orders/records", order); st != 200 {
		t.Fatalf("producer produce: %d %s", st, b)
	}
	st, b := do(t, "GET", produrl+"orders/records?partition=0&offset=0&max=10", "")
	if st != 503 || errorCode(t, b) != httpapi.CodeVaultDenied {
		t.Fatalf("producer read: %d %s, want 503 with %d", st, b, httpapi.CodeVaultDenied)
	}
	_, derr := prod.Transit.Decrypt(ctx, "kafka-orders", []transit.Ciphertext{{Ciphertext: "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})
	if !errors.Is(derr, vaultclient.ErrDenied) {
		t.Fatalf("producer transit/decrypt: %v, want vaultclient.ErrDenied", derr)
	}
	t.Logf("producer: produce 200; read %d error_code %d; transit/decrypt: %v", st, errorCode(t, b), derr)

	// The consumer can decrypt and cannot encrypt.
	_, consurl, _ := roleGateway(t, env, cfg, dir, lifecycle.RoleName("orders", lifecycle.RoleConsumer))
	st, b = do(t, "POST", consurl+"orders/records", order)
	if st != 503 || errorCode(t, b) != httpapi.CodeVaultDenied {
		t.Fatalf("consumer produce: %d %s, want 503 with %d", st, b, httpapi.CodeVaultDenied)
	}
	t.Logf("consumer: produce %d error_code %d", st, errorCode(t, b))
	st, b = do(t, "GET", consurl+"orders/records?partition=0&offset=0&max=10", "")
	if st != 200 || !strings.Contains(string(b), `"Name":"Ann Example"`) || !strings.Contains(string(b), `"credit_card":"2516-2848-6785-9087"`) || !strings.Contains(string(b), `"status":"decrypted"`) {
		t.Fatalf("consumer read: %d %s", st, b)
	}
}

// checkEnvelopeRoles: on the envelope topic the producer seals, only the
// consumer opens.
func checkEnvelopeRoles(t *testing.T, env *testkit.Env, dir string) {
	// (A gateway loads the FPE keys of every policy in its configuration
	// at start: one serving only docs gets a configuration with docs only.)
	docsCfg := testkit.Config(t, "[kafkagate]\ntransit_mount = kgtransit\n[policy:docs]\nmode = envelope\n")
	_, dprod, _ := roleGateway(t, env, docsCfg, dir, lifecycle.RoleName("docs", lifecycle.RoleProducer))
	_, dcons, _ := roleGateway(t, env, docsCfg, dir, lifecycle.RoleName("docs", lifecycle.RoleConsumer))
	doc := base64.StdEncoding.EncodeToString([]byte("a sealed document"))
	if st, b := do(t, "POST", dprod+"docs/records", `{"partition_id":0,"value":{"type":"BINARY","data":"`+doc+`"}}`); st != 200 {
		t.Fatalf("docs producer produce: %d %s", st, b)
	}
	if st, b := do(t, "GET", dprod+"docs/records?partition=0&offset=0&max=10", ""); st != 503 || errorCode(t, b) != httpapi.CodeVaultDenied {
		t.Fatalf("docs producer read: %d %s", st, b)
	}
	if st, b := do(t, "POST", dcons+"docs/records", `{"partition_id":0,"value":{"type":"BINARY","data":"`+doc+`"}}`); st != 503 || errorCode(t, b) != httpapi.CodeVaultDenied {
		t.Fatalf("docs consumer produce: %d %s", st, b)
	}
	if st, b := do(t, "GET", dcons+"docs/records?partition=0&offset=0&max=10", ""); st != 200 || !strings.Contains(string(b), `"value":{"type":"BINARY","data":"`+doc+`"}`) || !strings.Contains(string(b), `"status":"decrypted"`) {
		t.Fatalf("docs consumer read: %d %s", st, b)
	}
}

func mustPolicy(t *testing.T, cfg *config.File, topic string) *policy.Policy {
	t.Helper()
	p, ok := cfg.Policies.For(topic)
	if !ok {
		t.Fatalf("no policy for %s", topic)
	}
	return p
}

// topicConfig is the effective value of a topic config and whether the
// topic overrides the broker's default.
func topicConfig(t *testing.T, admin sarama.ClusterAdmin, topic, name string) (string, bool) {
	t.Helper()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
	if err != nil {
		t.Fatalf("describe %s of %s: %v", name, topic, err)
	}
	for _, e := range entries {
		if e.Name == name {
			return e.Value, e.Source == sarama.SourceTopic
		}
	}
	t.Fatalf("topic %s: no %s in %+v", topic, name, entries)
	return "", false
}
