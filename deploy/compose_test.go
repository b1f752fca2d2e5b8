// Package deploy_test checks deploy/: the compose stack's service names,
// addresses and environment against the product configuration
// (deploy/kafkagate.ini and getting_started.ini.orig), the Dockerfile's
// shape, and, where Docker runs, the gateway against real Kafka and Vault
// containers.
package deploy_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kafkagate/kafkagate/internal/config"
)

type compose struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       *build            `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// expand resolves ${VAR:-default} as compose does with VAR unset.
func expand(s string) string {
	return regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// flag returns the value after name in args.
func flag(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// mountOf returns the container path a host path (relative to deploy/)
// or named volume is mounted at.
func mountOf(s service, source string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[0] == source {
			return parts[1]
		}
	}
	return ""
}

func TestComposeAgreesWithConfiguration(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"kafka", "vault", "provision", "access", "gateway"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %q missing; have %v", name, keys(c.Services))
		}
	}
	kafka, vault, prov, access, gw := c.Services["kafka"], c.Services["vault"], c.Services["provision"], c.Services["access"], c.Services["gateway"]

	// The configuration the kafkagate services mount.
	const iniHost = "./kafkagate.ini"
	for name, s := range map[string]service{"provision": prov, "gateway": gw} {
		p := mountOf(s, iniHost)
		if p == "" || flag(s.Command, "--config") != p {
			t.Fatalf("%s: mounts %s at %q but runs with --config %q", name, iniHost, p, flag(s.Command, "--config"))
		}
	}
	cfg, err := config.Load("kafkagate.ini")
	if err != nil {
		t.Fatal(err)
	}

	// Kafka: KRaft (no ZooKeeper), and kafkagate's bootstrap.servers is
	// the listener the broker advertises on the compose network.
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want Apache Kafka", kafka.Image)
	}
	if !strings.Contains(kafka.Environment["KAFKA_PROCESS_ROLES"], "controller") || kafka.Environment["KAFKA_ZOOKEEPER_CONNECT"] != "" {
		t.Errorf("kafka is not in KRaft mode: %v", kafka.Environment)
	}
	boot := cfg.Get("default", "bootstrap.servers", "")
	advertised := strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",")
	found := false
	for _, l := range advertised {
		_, hostport, _ := strings.Cut(l, "://")
		found = found || hostport == boot
	}
	host, _, _ := strings.Cut(boot, ":")
	if !found || host != "kafka" {
		t.Errorf("bootstrap.servers %q is not a listener service kafka advertises (%v)", boot, advertised)
	}
	mmb, _ := strconv.Atoi(cfg.Get("default", "message.max.bytes", "0"))
	brokerMax, _ := strconv.Atoi(kafka.Environment["KAFKA_MESSAGE_MAX_BYTES"])
	if mmb == 0 || brokerMax < mmb {
		t.Errorf("broker message.max.bytes %d is below kafkagate's %d: file chunks of purchases_large_encrypted would be refused", brokerMax, mmb)
	}

	// Vault: the address and token the kafkagate services use are the dev
	// server's.
	if !strings.HasPrefix(vault.Image, "hashicorp/vault:") || !slices.Contains(vault.Command, "-dev") {
		t.Errorf("vault: image %q command %v, want a Vault dev server", vault.Image, vault.Command)
	}
	if !slices.Contains(vault.Command, "-dev-listen-address=0.0.0.0:8200") {
		t.Errorf("vault listens on %v, want 0.0.0.0:8200 (reachable as vault:8200)", vault.Command)
	}
	root := expand(vault.Environment["VAULT_DEV_ROOT_TOKEN_ID"])
	for name, s := range map[string]service{"provision": prov, "gateway": gw} {
		if s.Environment["VAULT_ADDR"] != "http://vault:8200" {
			t.Errorf("%s: VAULT_ADDR %q, want http://vault:8200", name, s.Environment["VAULT_ADDR"])
		}
		if root == "" || expand(s.Environment["VAULT_TOKEN"]) != root {
			t.Errorf("%s: VAULT_TOKEN %q is not vault's dev root token %q", name, s.Environment["VAULT_TOKEN"], root)
		}
	}

	// Provisioning runs once, after Kafka and Vault are healthy; the
	// access job after it; the gateway after both.
	if len(prov.Command) == 0 || !slices.Contains(prov.Command, "provision") {
		t.Errorf("provision runs %v", prov.Command)
	}
	for dep, want := range map[string]string{"kafka": "service_healthy", "vault": "service_healthy"} {
		if prov.DependsOn[dep].Condition != want {
			t.Errorf("provision depends on %s: %q, want %s", dep, prov.DependsOn[dep].Condition, want)
		}
		if c.Services[dep].Healthcheck == nil {
			t.Errorf("%s has no healthcheck", dep)
		}
	}
	if access.DependsOn["provision"].Condition != "service_completed_successfully" || gw.DependsOn["access"].Condition != "service_completed_successfully" {
		t.Errorf("order: access after provision %q, gateway after access %q", access.DependsOn["provision"].Condition, gw.DependsOn["access"].Condition)
	}

	// The access file: written by the access job where kafkagate.ini's
	// access_file says, on the volume the gateway mounts.
	af := cfg.Get("kafkagate", "access_file", "")
	if af == "" || flag(access.Command, "--access-file") != af {
		t.Errorf("access writes %q, kafkagate.ini's access_file is %q", flag(access.Command, "--access-file"), af)
	}
	for name, s := range map[string]service{"access": access, "gateway": gw, "provision": prov} {
		dir := mountOf(s, "kafkagate-state")
		if dir == "" || !strings.HasPrefix(af, dir+"/") {
			t.Errorf("%s mounts kafkagate-state at %q, not holding %s", name, dir, af)
		}
	}
	if _, ok := c.Volumes["kafkagate-state"]; !ok {
		t.Error("volume kafkagate-state is not declared")
	}

	// The gateway listens where its port is published.
	_, port, _ := strings.Cut(cfg.Get("kafkagate", "listen", ""), ":")
	published := false
	for _, p := range gw.Ports {
		published = published || strings.HasSuffix(p, ":"+port) && strings.HasPrefix(p, "127.0.0.1:")
	}
	if port == "" || !published {
		t.Errorf("gateway listens on port %q, publishes %v (want it published on 127.0.0.1)", port, gw.Ports)
	}

	// All three kafkagate services run the image of deploy/Dockerfile.
	for name, s := range map[string]service{"provision": prov, "access": access, "gateway": gw} {
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || filepath.Clean(s.Build.Context) != ".." {
			t.Errorf("%s is not built from deploy/Dockerfile at the repository root: %+v", name, s.Build)
		}
	}
}

// TestDeployIniIsTheTemplate: deploy/kafkagate.ini is
// getting_started.ini.orig but for the service addresses and the access
// file, so the policies, topics and key names are the demo's.
func TestDeployIniIsTheTemplate(t *testing.T) {
	orig, err := config.Load("../getting_started.ini.orig")
	if err != nil {
		t.Fatal(err)
	}
	dep, err := config.Load("kafkagate.ini")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(orig.Sections(), dep.Sections()) {
		t.Fatalf("sections differ: %v vs %v", orig.Sections(), dep.Sections())
	}
	allowed := map[string]bool{"default/bootstrap.servers": true, "kafkagate/listen": true, "kafkagate/access_file": true}
	for _, sec := range orig.Sections() {
		a, b := orig.Section(sec), dep.Section(sec)
		for k := range merge(a, b) {
			if a[k] != b[k] && !allowed[sec+"/"+k] {
				t.Errorf("[%s] %s: %q in the template, %q in deploy/kafkagate.ini", sec, k, a[k], b[k])
			}
		}
	}
	if dep.Get("kafkagate", "access_file", "") == "" || dep.Get("kafkagate", "listen", "") == orig.Get("kafkagate", "listen", "") {
		t.Error("deploy/kafkagate.ini must listen beyond loopback with an access file")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(text, -1)
	if len(from) < 2 {
		t.Fatalf("want a multi-stage build, have %d FROM lines", len(from))
	}
	final := from[len(from)-1][1]
	if !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage %q: want a static base (distroless/static or scratch)", final)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "./cmd/gateway") {
		t.Error("the binary must be built static (CGO_ENABLED=0) from ./cmd/gateway")
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(text, -1)
	if len(users) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	u := users[len(users)-1][1]
	if u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("USER %s: want non-root", u)
	}
}

// TestComposeConfigValid asks docker compose itself to validate the
// file, where the compose plugin is installed.
func TestComposeConfigValid(t *testing.T) {
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Skip("docker compose is not installed here; the file is checked as YAML by TestComposeAgreesWithConfiguration")
	}
	out, err := exec.Command("docker", "compose", "-f", "docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func merge(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
