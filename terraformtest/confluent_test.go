package terraformtest

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Tests: Confluent module against the ini

func confluentEvaluator(t *testing.T) (*module, *evaluator) {
	t.Helper()
	m := loadModules(t)["confluent"]
	ev, err := newEvaluator(m)
	if err != nil {
		t.Fatalf("terraform/confluent: %v", err)
	}
	return m, ev
}

func TestConfluentTopicsMatchIni(t *testing.T) {
	f := loadIni(t)
	_, ev := confluentEvaluator(t)
	for _, p := range topicMismatches(f, ev) {
		t.Error(p)
	}
}

func TestConfluentACLs(t *testing.T) {
	f := loadIni(t)
	_, ev := confluentEvaluator(t)
	src, dst := f.Get("encryptor", "sourcetopic", ""), f.Get("encryptor", "targettopic", "")
	large, group := f.Get("large_payload", "topic", ""), f.Get("consumer", "group.id", "")
	var want []string
	for _, tp := range []string{dst, large, dst + dlqSuffix, large + dlqSuffix} {
		want = append(want, "gateway WRITE TOPIC "+tp, "gateway DESCRIBE TOPIC "+tp)
	}
	want = append(want,
		"bridge READ TOPIC "+src, "bridge READ GROUP "+group,
		"bridge WRITE TOPIC "+dst, "bridge WRITE TOPIC "+dst+dlqSuffix,
		"consumer READ TOPIC "+dst, "consumer READ TOPIC "+large, "consumer READ GROUP "+group,
	)
	slices.Sort(want)
	principal := regexp.MustCompile(`^User:confluent_service_account\.app\[(\w+)\]$`)
	var got []string
	for inst, a := range ev.instances("confluent_kafka_acl") {
		m := principal.FindStringSubmatch(str(a["principal"]))
		if m == nil {
			t.Errorf("%s: principal %q is not one of the per-role service accounts", inst, str(a["principal"]))
			continue
		}
		if str(a["pattern_type"]) != "LITERAL" || str(a["permission"]) != "ALLOW" || str(a["host"]) != "*" {
			t.Errorf("%s: pattern_type %q permission %q host %q, want LITERAL ALLOW *", inst, str(a["pattern_type"]), str(a["permission"]), str(a["host"]))
		}
		got = append(got, strings.Join([]string{m[1], str(a["operation"]), str(a["resource_type"]), str(a["resource_name"])}, " "))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("ACLs:\n got  %q\n want %q", got, want)
	}
	var admins []string
	for inst, a := range ev.instances("confluent_role_binding") {
		admins = append(admins, inst+" "+str(a["role_name"])+" "+str(a["principal"]))
	}
	if !slices.Equal(admins, []string{"app_manager_cluster_admin CloudClusterAdmin User:confluent_service_account.app_manager"}) {
		t.Errorf("role bindings %q: want only CloudClusterAdmin for the app-manager account", admins)
	}
}

func TestConfluentOutputs(t *testing.T) {
	m, ev := confluentEvaluator(t)
	for _, name := range []string{"gateway_api_key", "bridge_api_key", "consumer_api_key"} {
		o := m.output(name)
		if o == nil {
			t.Errorf("no output %q", name)
			continue
		}
		s, ok := o.Body.Attributes["sensitive"]
		if v, known := known(exprOf(s, ok), nil); !known || !isTrue(v) {
			t.Errorf("%s: output %q must be sensitive = true", o.DefRange(), name)
		}
	}
	for _, o := range m.top("output") {
		for _, tr := range o.Body.Attributes["value"].Expr.Variables() {
			s := tr.SimpleSplit()
			if tr.RootName() == "confluent_api_key" && len(s.Rel) > 0 {
				if l, _ := s.Rel[0].(hcl.TraverseAttr); l.Name == "app_manager" {
					t.Errorf("%s: output %q exposes Terraform's own cluster-admin key", o.DefRange(), o.Labels[0])
				}
			}
		}
	}
	o := m.output("bootstrap_endpoint")
	if o == nil {
		t.Fatal("no output bootstrap_endpoint")
	}
	c := ev.ctx.NewChild()
	clusters := map[string]cty.Value{}
	for _, b := range m.labeled("resource", "confluent_kafka_cluster") {
		clusters[b.Labels[1]] = cty.ObjectVal(map[string]cty.Value{
			"bootstrap_endpoint": cty.StringVal("SASL_SSL://pkc-12345.australia-southeast1.gcp.confluent.cloud:9092"),
		})
	}
	c.Variables = map[string]cty.Value{"confluent_kafka_cluster": cty.ObjectVal(clusters)}
	v, ok := known(o.Body.Attributes["value"].Expr, c)
	if want := "pkc-12345.australia-southeast1.gcp.confluent.cloud:9092"; !ok || str(v) != want {
		t.Errorf("bootstrap_endpoint for a SASL_SSL:// endpoint = %q (known %v), want %q", str(v), ok, want)
	}
}
