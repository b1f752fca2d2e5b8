package demo_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/demo/internal/settings"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestGettingStartedOrig loads getting_started.ini.orig with the
// product's own loader, as a file (config.Load) and as the embedded
// default, and reads the demo settings from it.
func TestGettingStartedOrig(t *testing.T) {
	f, err := config.Load("../getting_started.ini.orig")
	if err != nil {
		t.Fatal(err)
	}
	emb, err := config.Parse(kafkagate.DefaultConfig)
	if err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	if strings.Join(emb.Sections(), ",") != strings.Join(f.Sections(), ",") {
		t.Errorf("embedded sections %v, file %v", emb.Sections(), f.Sections())
	}
	d, err := settings.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Demo{PlaintextTopic: "purchases", NumberOfMsg: 10, Sleep: time.Second, SourceTopic: "purchases", TargetTopic: "purchases_encrypted",
		FileTopic: "purchases_large_encrypted", SourceDir: "source", DestinationDir: "destination", Group: "python_example_group_1"}
	if d != want {
		t.Errorf("demo settings %+v, want %+v", d, want)
	}
	for topic, mode := range map[string]policy.RecordMode{d.PlaintextTopic: policy.Fields, d.TargetTopic: policy.Fields, d.FileTopic: policy.Envelope} {
		p, ok := f.Policies.For(topic)
		if !ok || p.Mode != mode {
			t.Errorf("[policy:%s]: %v %v, want mode %s", topic, p, ok, mode)
		}
	}
	ks, err := kafka.Configure(f.Section("default"), testkit.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if ks.Sarama.Producer.MaxMessageBytes != 8388608 || ks.Sarama.Net.SASL.Enable || ks.Sarama.Net.TLS.Enable {
		t.Errorf("[default] gives max %d, SASL %t, TLS %t; want 8388608 and a local PLAINTEXT broker",
			ks.Sarama.Producer.MaxMessageBytes, ks.Sarama.Net.SASL.Enable, ks.Sarama.Net.TLS.Enable)
	}
}

// TestGettingStartedConfluent follows the template's own instructions for
// Confluent Cloud: drop the two local lines and uncomment the SASL ones.
// The result must load and configure a SASL_SSL/PLAIN client.
func TestGettingStartedConfluent(t *testing.T) {
	src := string(mustRead(t, "../getting_started.ini.orig"))
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		switch {
		case l == "bootstrap.servers=127.0.0.1:9092" || l == "security.protocol=PLAINTEXT":
			continue
		case strings.HasPrefix(l, "#bootstrap.servers="):
			l = "bootstrap.servers=pkc-abc12.australia-southeast1.gcp.confluent.cloud:9092"
		case strings.HasPrefix(l, "#sasl.username="):
			l = "sasl.username=ABCDEFGHIJKLMNOP"
		case strings.HasPrefix(l, "#sasl.password="):
			l = "sasl.password=s3cr%%t/with+chars"
		case strings.HasPrefix(l, "#security.protocol=") || strings.HasPrefix(l, "#sasl.mechanisms="):
			l = l[1:]
		}
		lines = append(lines, l)
	}
	path := filepath.Join(t.TempDir(), "getting_started.ini")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	def := f.Section("default")
	if def["security.protocol"] != "SASL_SSL" || def["sasl.mechanisms"] != "PLAIN" || def["sasl.password"] != "s3cr%t/with+chars" {
		t.Fatalf("[default] = %v", def)
	}
	ks, err := kafka.Configure(def, testkit.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	if !ks.Sarama.Net.SASL.Enable || !ks.Sarama.Net.TLS.Enable || ks.Sarama.Net.SASL.User != "ABCDEFGHIJKLMNOP" || ks.Brokers[0] != "pkc-abc12.australia-southeast1.gcp.confluent.cloud:9092" {
		t.Errorf("Confluent settings: SASL %t TLS %t user %q brokers %v", ks.Sarama.Net.SASL.Enable, ks.Sarama.Net.TLS.Enable, ks.Sarama.Net.SASL.User, ks.Brokers)
	}
}

var iniBlock = regexp.MustCompile("(?ms)^```ini\n(.*?)^```")

// TestReadmeIniExamples parses every ```ini block of the README with the
// product's loader; each policy section it shows must load as a policy.
func TestReadmeIniExamples(t *testing.T) {
	blocks := iniBlock.FindAllStringSubmatch(string(mustRead(t, "../README.md")), -1)
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d ini examples, want at least 2 (a policy and the demo's getting_started.ini)", len(blocks))
	}
	for i, b := range blocks {
		f, err := config.Parse([]byte(b[1]))
		if err != nil {
			t.Errorf("README ini example %d: %v\n%s", i+1, err, b[1])
			continue
		}
		for _, s := range f.Sections() {
			if topic, ok := strings.CutPrefix(s, "policy:"); ok {
				if _, ok := f.Policies.For(topic); !ok {
					t.Errorf("README ini example %d: [%s] did not load as a policy", i+1, s)
				}
			}
		}
		if f.Has("plaintext-msg-demo") {
			if _, err := settings.Read(f); err != nil {
				t.Errorf("README ini example %d: demo settings: %v", i+1, err)
			}
		}
	}
}
