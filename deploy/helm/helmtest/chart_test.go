package helmtest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

const configPath = "/etc/kafkagate/kafkagate.ini"

// chartCase is one values file and what it must produce.
type chartCase struct {
	file         string // in the chart's ci/ folder; "" for the defaults
	auth         string // kubernetes or approle
	tls          bool
	hpa          bool
	replicas     int32 // without the HPA
	delay, grace int64
	// noDrainFlags: the values set drain.flags false (preStop sleeps).
	noDrainFlags bool
	monitor      bool // ServiceMonitor instead of annotations
	bridge       bool
	receiveDir   bool
}

var cases = []chartCase{
	{file: "", auth: "kubernetes", hpa: true, delay: 5, grace: 35},
	{file: "approle-values.yaml", auth: "approle", replicas: 3, delay: 5, grace: 35, noDrainFlags: true},
	{file: "tls-values.yaml", auth: "kubernetes", tls: true, hpa: true, delay: 10, grace: 65, monitor: true},
	{file: "bridge-values.yaml", auth: "kubernetes", hpa: true, delay: 5, grace: 35, bridge: true, receiveDir: true},
}

// wantPolicies are the Vault policies `gateway provision` creates for the
// repository's default configuration: three roles of each of its three
// policy topics.
var wantPolicies = []string{
	"kafkagate-purchases-admin", "kafkagate-purchases-consumer", "kafkagate-purchases-producer",
	"kafkagate-purchases_encrypted-admin", "kafkagate-purchases_encrypted-consumer", "kafkagate-purchases_encrypted-producer",
	"kafkagate-purchases_large_encrypted-admin", "kafkagate-purchases_large_encrypted-consumer", "kafkagate-purchases_large_encrypted-producer",
}

// provisionPolicies is what `gateway provision --config` writes to Vault
// for cfg: each non-passthrough policy topic's producer, consumer and
// admin policy (lifecycle.RoleName) with its text (lifecycle.PolicyHCL),
// built with the options cmd/gateway's provision builds from the file.
func provisionPolicies(t *testing.T, cfg *config.File) map[string]string {
	t.Helper()
	o := lifecycle.ProvisionOptions{
		Policies:     cfg.Policies,
		TransitMount: cfg.Get("kafkagate", "transit_mount", "transit"),
		FPE:          core.KeyringOptions(cfg),
	}
	k, err := lifecycle.KubernetesFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.Kubernetes = k
	out := map[string]string{}
	for _, topic := range cfg.Policies.Topics() {
		p, _ := cfg.Policies.For(topic)
		if p.Mode == policy.Passthrough {
			continue
		}
		for _, role := range []string{lifecycle.RoleProducer, lifecycle.RoleConsumer, lifecycle.RoleAdmin} {
			out[lifecycle.RoleName(topic, role)] = lifecycle.PolicyHCL(p, role, o)
		}
	}
	return out
}

func TestChart(t *testing.T) {
	def, err := config.Parse(kafkagate.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := provisionPolicies(t, def)
	if got := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantPolicies) {
		t.Fatalf("default configuration's policies %v, want %v", got, wantPolicies)
	}
	compose, err := config.Load("../../kafkagate.ini")
	if err != nil {
		t.Fatal(err)
	}
	if got := provisionPolicies(t, compose); !maps.Equal(got, want) {
		t.Fatalf("deploy/kafkagate.ini and the default configuration ask for different policies")
	}
	for _, c := range cases {
		name := c.file
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			r := render(t, readValues(t, c.file))
			cfg := checkConfig(t, r, c, want)
			dep := find[appsv1.Deployment](r, "Deployment", fullname)
			if dep == nil {
				t.Fatalf("no gateway Deployment %s", fullname)
			}
			checkGateway(t, r, c, dep, cfg)
			checkVault(t, r, c, dep.Spec.Template.Spec, "gateway", cfg, "kafkagate-purchases_encrypted-producer")
			checkBridge(t, r, c, cfg)
			checkReceiveDir(t, r, c, cfg)
			checkMetrics(t, r, c, dep)
			for _, o := range r.objects {
				var ps *corev1.PodSpec
				var claims []string // a StatefulSet's volume claim templates
				switch w := o.v.(type) {
				case *appsv1.Deployment:
					ps = &w.Spec.Template.Spec
				case *appsv1.StatefulSet:
					ps = &w.Spec.Template.Spec
					for _, c := range w.Spec.VolumeClaimTemplates {
						claims = append(claims, c.Name)
					}
				}
				if ps != nil {
					checkSecurity(t, o.kind+" "+o.name, *ps, claims)
					checkNetworkPolicy(t, r, o)
				}
			}
		})
	}
}

// checkConfig loads the ConfigMap's ini with config.Parse and compares the
// policies provision would create for it with the default configuration's.
func checkConfig(t *testing.T, r *release, c chartCase, want map[string]string) *config.File {
	t.Helper()
	cm := find[corev1.ConfigMap](r, "ConfigMap", fullname)
	if cm == nil {
		t.Fatal("no ConfigMap")
	}
	ini, ok := cm.Data["kafkagate.ini"]
	if !ok {
		t.Fatalf("ConfigMap keys %v, want kafkagate.ini", slices.Sorted(maps.Keys(cm.Data)))
	}
	cfg, err := config.Parse([]byte(ini))
	if err != nil {
		t.Fatalf("the rendered ini does not load: %v\n%s", err, ini)
	}
	got := provisionPolicies(t, cfg)
	if !maps.Equal(got, want) {
		for n, h := range want {
			if got[n] != h {
				t.Errorf("policy %s: rendered ini gives\n%s\nthe default configuration\n%s", n, got[n], h)
			}
		}
		t.Fatalf("rendered ini's policies %v, want %v", slices.Sorted(maps.Keys(got)), wantPolicies)
	}
	if l := cfg.Get("kafkagate", "listen", ""); l != "0.0.0.0:8080" {
		t.Errorf("[kafkagate] listen = %q", l)
	}
	// The checks `gateway serve` makes before it dials anything.
	set, err := server.ReadSettings(cfg)
	if err != nil {
		t.Fatalf("gateway settings of the rendered ini: %v", err)
	}
	if err := server.CheckExposure(cfg.Get("kafkagate", "listen", ""), set.AccessFile != ""); err != nil {
		t.Errorf("gateway serve would refuse the rendered ini: %v", err)
	}
	if (set.TLSCert != "") != c.tls || (set.TLSKey != "") != c.tls {
		t.Errorf("TLS files %q %q with tls %v", set.TLSCert, set.TLSKey, c.tls)
	}
	if b := cfg.Get("default", "bootstrap.servers", ""); b != "kafka:9092" {
		t.Errorf("bootstrap.servers = %q", b)
	}
	if s, tt := cfg.Get("encryptor", "sourcetopic", ""), cfg.Get("encryptor", "targettopic", ""); s != "purchases" || tt != "purchases_encrypted" {
		t.Errorf("[encryptor] %q -> %q", s, tt)
	}
	if got := cfg.Get("kafkagate", "tls_cert", "") != ""; got != c.tls {
		t.Errorf("tls_cert set: %v, want %v", got, c.tls)
	}
	if c.tls && cfg.Get("kafkagate", "rate_limit", "") != "50" {
		t.Errorf("config.extra not written: rate_limit = %q", cfg.Get("kafkagate", "rate_limit", ""))
	}
	return cfg
}

func container(t *testing.T, ps corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range ps.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// selects reports whether sel selects the pod template's labels.
func selects(t *testing.T, sel *metav1.LabelSelector, pod map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(pod))
}

func checkGateway(t *testing.T, r *release, c chartCase, dep *appsv1.Deployment, cfg *config.File) {
	t.Helper()
	ps := dep.Spec.Template.Spec
	pod := dep.Spec.Template.Labels
	if !selects(t, dep.Spec.Selector, pod) {
		t.Errorf("Deployment selector %v does not select its pods %v", dep.Spec.Selector, pod)
	}
	gw := container(t, ps, "gateway")
	if !slices.Contains(gw.Args, "serve") || !slices.Contains(gw.Args, "--config="+configPath) {
		t.Errorf("gateway args %v", gw.Args)
	}
	if kind, name, key, err := fileSource(ps, gw, configPath); err != nil || kind != "ConfigMap" || name != fullname || key != "kafkagate.ini" {
		t.Errorf("%s comes from %s %s key %s (%v)", configPath, kind, name, key, err)
	}
	// The listen port is the container port the probes and Service use.
	_, port, _ := strings.Cut(cfg.Get("kafkagate", "listen", ""), ":")
	if len(gw.Ports) != 1 || gw.Ports[0].Name != "http" || strconv.Itoa(int(gw.Ports[0].ContainerPort)) != port {
		t.Errorf("gateway ports %+v, listen port %s", gw.Ports, port)
	}

	// Probes: liveness on /healthz, readiness on /readyz, over TLS when on.
	scheme := corev1.URISchemeHTTP
	if c.tls {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", gw.LivenessProbe, "/healthz"}, {"readiness", gw.ReadinessProbe, "/readyz"}, {"startup", gw.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want an HTTP GET", p.what, p.probe)
			continue
		}
		h := p.probe.HTTPGet
		if h.Path != p.path || h.Port.String() != "http" || h.Scheme != scheme {
			t.Errorf("%s probe GET %s %s port %s, want %s %s port http", p.what, h.Scheme, h.Path, h.Port.String(), scheme, p.path)
		}
	}
	if rp := gw.ReadinessProbe; rp != nil && (rp.PeriodSeconds != 5 || rp.FailureThreshold != 2 || rp.TimeoutSeconds != 4) {
		t.Errorf("readiness probe period %d s, threshold %d, timeout %d s", rp.PeriodSeconds, rp.FailureThreshold, rp.TimeoutSeconds)
	}

	// Drain: with drain.flags the gateway delays itself (--drain-delay,
	// --drain-timeout) and has no preStop; without, preStop sleeps the
	// delay. The grace period covers delay, timeout and 5 s more.
	if c.noDrainFlags {
		if gw.Lifecycle == nil || gw.Lifecycle.PreStop == nil || gw.Lifecycle.PreStop.Sleep == nil || gw.Lifecycle.PreStop.Sleep.Seconds != c.delay {
			t.Errorf("preStop %+v, want sleep %d s", gw.Lifecycle, c.delay)
		}
		if slices.ContainsFunc(gw.Args, func(a string) bool { return strings.HasPrefix(a, "--drain-") }) {
			t.Errorf("gateway args %v: drain flags with drain.flags false", gw.Args)
		}
	} else {
		if gw.Lifecycle != nil && gw.Lifecycle.PreStop != nil {
			t.Errorf("preStop %+v with drain.flags: the gateway delays itself", gw.Lifecycle.PreStop)
		}
		for _, a := range []string{fmt.Sprintf("--drain-delay=%ds", c.delay), fmt.Sprintf("--drain-timeout=%ds", c.grace-c.delay-5)} {
			if !slices.Contains(gw.Args, a) {
				t.Errorf("gateway args %v, want %s", gw.Args, a)
			}
		}
	}
	if g := ps.TerminationGracePeriodSeconds; g == nil || *g <= c.delay || *g != c.grace {
		t.Errorf("terminationGracePeriodSeconds %v, want %d (> drain delay %d)", g, c.grace, c.delay)
	}
	if gw.Resources.Requests.Cpu().MilliValue() != 500 || gw.Resources.Limits.Memory().Value() != 512<<20 {
		t.Errorf("gateway resources %+v", gw.Resources)
	}

	// Access file and TLS from the Secrets named in the values.
	if kind, name, key, err := fileSource(ps, gw, cfg.Get("kafkagate", "access_file", "")); err != nil || kind != "Secret" || name != "kafkagate-access" || key != "access" {
		t.Errorf("access_file from %s %s key %s (%v)", kind, name, key, err)
	}
	if c.tls {
		for ini, want := range map[string]string{"tls_cert": "tls.crt", "tls_key": "tls.key"} {
			if kind, name, key, err := fileSource(ps, gw, cfg.Get("kafkagate", ini, "")); err != nil || kind != "Secret" || name != "kafkagate-tls" || key != want {
				t.Errorf("%s from %s %s key %s (%v)", ini, kind, name, key, err)
			}
		}
	}

	// Replicas: the HPA owns them when on.
	hpa := find[autoscalingv2.HorizontalPodAutoscaler](r, "HorizontalPodAutoscaler", fullname)
	if c.hpa {
		if hpa == nil {
			t.Fatal("no HorizontalPodAutoscaler")
		}
		if dep.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas %d although the HPA scales it", *dep.Spec.Replicas)
		}
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != dep.Name || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA targets %+v", ref)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 {
			t.Errorf("HPA replicas %v-%d, want 2-10", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
			hpa.Spec.Metrics[0].Resource.Target.AverageUtilization == nil || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
			t.Errorf("HPA metrics %+v, want CPU at 70%%", hpa.Spec.Metrics)
		}
	} else {
		if hpa != nil {
			t.Error("HorizontalPodAutoscaler rendered with autoscaling off")
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != c.replicas {
			t.Errorf("replicas %v, want %d", dep.Spec.Replicas, c.replicas)
		}
	}
	if s := dep.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v, want maxUnavailable 0", s)
	}

	// PDB over the gateway's pods.
	pdb := find[policyv1.PodDisruptionBudget](r, "PodDisruptionBudget", fullname)
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if !selects(t, pdb.Spec.Selector, pod) || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB %+v, want maxUnavailable 1 over the gateway pods", pdb.Spec)
	}

	// Spread over zones and nodes.
	var keys []string
	for _, tc := range ps.TopologySpreadConstraints {
		keys = append(keys, tc.TopologyKey)
		if !selects(t, tc.LabelSelector, pod) || tc.MaxSkew != 1 {
			t.Errorf("topology spread %+v does not count the gateway pods", tc)
		}
	}
	if !slices.Equal(keys, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}) {
		t.Errorf("topology spread keys %v", keys)
	}

	// The Service reaches the pods' http port.
	svc := find[corev1.Service](r, "Service", fullname)
	if svc == nil || !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod) ||
		len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("gateway Service %+v", svc)
	}
}

// checkVault: the environment vaultclient reads selects exactly the
// intended login, and its files come from the named Secrets.
func checkVault(t *testing.T, r *release, c chartCase, ps corev1.PodSpec, name string, cfg *config.File, role string) {
	t.Helper()
	ctr := container(t, ps, name)
	env := envOf(ctr)
	for _, k := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_TOKEN_FILE", "VAULT_ROLE_ID", "VAULT_ROLE_ID_FILE", "VAULT_SECRET_ID_FILE",
		"VAULT_APPROLE_MOUNT", "VAULT_K8S_ROLE", "VAULT_K8S_JWT_FILE", "VAULT_K8S_MOUNT", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY"} {
		t.Setenv(k, env[k])
	}
	vc := vaultclient.FromEnv()
	if vc.Addr != "https://vault.vault.svc:8200" || vc.Token != "" || vc.TokenFile != "" || vc.SkipVerify {
		t.Errorf("%s: Vault address %q, token set %v, skip verify %v", name, vc.Addr, vc.Token+vc.TokenFile != "", vc.SkipVerify)
	}
	sa := ps.ServiceAccountName
	switch c.auth {
	case "kubernetes":
		if vc.K8sRole != role || vc.RoleIDFile != "" || vc.SecretIDFile != "" || vc.RoleID != "" {
			t.Errorf("%s: Kubernetes role %q (want %q), AppRole files %q %q", name, vc.K8sRole, role, vc.RoleIDFile, vc.SecretIDFile)
		}
		if _, ok := provisionPolicies(t, cfg)[vc.K8sRole]; !ok {
			t.Errorf("%s: VAULT_K8S_ROLE %q is not a role provision creates", name, vc.K8sRole)
		}
		k, err := lifecycle.KubernetesFromConfig(cfg)
		if err != nil || k == nil {
			t.Fatalf("%s: [kubernetes] section: %v %v", name, k, err)
		}
		if !slices.Equal(k.Namespaces, []string{namespace}) || k.ServiceAccount != sa || k.Mount != vc.K8sMount || vc.K8sMount != "kubernetes" {
			t.Errorf("%s: provision binds roles to %v/%s at %s; the pod runs as %s/%s and logs in at %s", name, k.Namespaces, k.ServiceAccount, k.Mount, namespace, sa, vc.K8sMount)
		}
		if sa != fullname {
			t.Errorf("%s: service account %q, want %q", name, sa, fullname)
		}
		acct := find[corev1.ServiceAccount](r, "ServiceAccount", sa)
		if acct == nil || acct.AutomountServiceAccountToken == nil || !*acct.AutomountServiceAccountToken {
			t.Errorf("%s: ServiceAccount %s missing or without the token Vault's login reads", name, sa)
		}
		if ps.AutomountServiceAccountToken == nil || !*ps.AutomountServiceAccountToken {
			t.Errorf("%s: the pod does not mount its service account token", name)
		}
	case "approle":
		if vc.K8sRole != "" || vc.RoleID != "" {
			t.Errorf("%s: Kubernetes role %q and role id %q set with AppRole", name, vc.K8sRole, vc.RoleID)
		}
		if cfg.Has("kubernetes") {
			t.Errorf("%s: [kubernetes] section rendered with AppRole", name)
		}
		for path, key := range map[string]string{vc.RoleIDFile: "role-id", vc.SecretIDFile: "secret-id"} {
			if kind, sec, k, err := fileSource(ps, ctr, path); err != nil || kind != "Secret" || sec != "kafkagate-approle-gateway" || k != key {
				t.Errorf("%s: %q from %s %s key %s (%v)", name, path, kind, sec, k, err)
			}
		}
		if kind, sec, k, err := fileSource(ps, ctr, vc.CACert); err != nil || kind != "Secret" || sec != "vault-ca" || k != "ca.crt" {
			t.Errorf("%s: VAULT_CACERT %q from %s %s key %s (%v)", name, vc.CACert, kind, sec, k, err)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: service account token mounted although AppRole needs none", name)
		}
	}
}

// checkSecurity: non-root, read-only root, no escalation, no capabilities,
// RuntimeDefault seccomp, for every container of every workload.
func checkSecurity(t *testing.T, what string, ps corev1.PodSpec, claims []string) {
	t.Helper()
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v", what, psc)
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s/%s: no securityContext", what, c.Name)
			continue
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || (sc.Privileged != nil && *sc.Privileged) {
			t.Errorf("%s/%s: securityContext %+v", what, c.Name, sc)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s/%s: capabilities %+v, want drop ALL", what, c.Name, sc.Capabilities)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s/%s: seccomp %+v", what, c.Name, sc.SeccompProfile)
		}
		// Every mount has its volume.
		for _, m := range c.VolumeMounts {
			if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) && !slices.Contains(claims, m.Name) {
				t.Errorf("%s/%s: mount %s of missing volume %s", what, c.Name, m.MountPath, m.Name)
			}
		}
		if c.Image != "kafkagate:0.1.0" {
			t.Errorf("%s/%s: image %q", what, c.Name, c.Image)
		}
	}
}

// checkNetworkPolicy: each workload's pods are selected by a NetworkPolicy
// that limits ingress and egress and allows DNS, Kafka and Vault.
func checkNetworkPolicy(t *testing.T, r *release, o object) {
	t.Helper()
	var pod map[string]string
	switch w := o.v.(type) {
	case *appsv1.Deployment:
		pod = w.Spec.Template.Labels
	case *appsv1.StatefulSet:
		pod = w.Spec.Template.Labels
	}
	n := 0
	for _, x := range r.objects {
		np, ok := x.v.(*networkingv1.NetworkPolicy)
		if !ok || !selects(t, &np.Spec.PodSelector, pod) {
			continue
		}
		n++
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
			t.Errorf("NetworkPolicy %s: policy types %v", np.Name, np.Spec.PolicyTypes)
		}
		var egress []string
		for _, e := range np.Spec.Egress {
			for _, p := range e.Ports {
				egress = append(egress, p.Port.String())
			}
		}
		for _, want := range []string{"53", "9092", "8200"} {
			if !slices.Contains(egress, want) {
				t.Errorf("NetworkPolicy %s: egress ports %v lack %s", np.Name, egress, want)
			}
		}
		if o.name == fullname && (len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "8080") {
			t.Errorf("NetworkPolicy %s: gateway ingress %+v, want port 8080 only", np.Name, np.Spec.Ingress)
		}
	}
	if n != 1 {
		t.Errorf("%s %s: selected by %d NetworkPolicies, want 1", o.kind, o.name, n)
	}
}

func checkBridge(t *testing.T, r *release, c chartCase, cfg *config.File) {
	t.Helper()
	b := find[appsv1.Deployment](r, "Deployment", fullname+"-bridge")
	if !c.bridge {
		if b != nil {
			t.Error("bridge rendered while disabled")
		}
		return
	}
	if b == nil {
		t.Fatal("no bridge Deployment")
	}
	if b.Spec.Replicas == nil || *b.Spec.Replicas != 3 {
		t.Errorf("bridge replicas %v, want 3 (<= 6 partitions)", b.Spec.Replicas)
	}
	ps := b.Spec.Template.Spec
	ctr := container(t, ps, "bridge")
	if !slices.Contains(ctr.Args, "bridge") || !slices.Contains(ctr.Args, "--metrics-listen=0.0.0.0:9464") || !slices.Contains(ctr.Args, "--config="+configPath) ||
		!slices.Contains(ctr.Args, "--instance-id=$(POD_NAME)") || !hasFieldEnv(ctr, "POD_NAME", "metadata.name") {
		t.Errorf("bridge args %v", ctr.Args)
	}
	if g := ps.TerminationGracePeriodSeconds; g == nil || *g != 30 {
		t.Errorf("bridge grace %v, want drain timeout + 5 = 30", g)
	}
	if p := find[policyv1.PodDisruptionBudget](r, "PodDisruptionBudget", fullname+"-bridge"); p == nil || !selects(t, p.Spec.Selector, b.Spec.Template.Labels) {
		t.Error("no PodDisruptionBudget over the bridge pods")
	}
	if gw := find[appsv1.Deployment](r, "Deployment", fullname); gw != nil && selects(t, b.Spec.Selector, gw.Spec.Template.Labels) {
		t.Error("the bridge's selector also selects gateway pods")
	}
	if !strings.Contains(r.notes, "replicas <=") {
		t.Errorf("NOTES do not state the partition limit:\n%s", r.notes)
	}
	checkVault(t, r, c, ps, "bridge", cfg, "kafkagate-purchases_encrypted-producer")

	// More replicas than partitions is refused.
	vals := readValues(t, c.file)
	vals["bridge"].(map[string]any)["replicas"] = 7
	if _, err := renderChart(vals); err == nil || !strings.Contains(err.Error(), "exceeds bridge.partitions") {
		t.Errorf("bridge.replicas 7 > partitions 6: %v", err)
	}
}

func checkReceiveDir(t *testing.T, r *release, c chartCase, cfg *config.File) {
	t.Helper()
	ss := find[appsv1.StatefulSet](r, "StatefulSet", fullname+"-receive-dir")
	if !c.receiveDir {
		if ss != nil {
			t.Error("receive-dir rendered while disabled")
		}
		return
	}
	if ss == nil {
		t.Fatal("no receive-dir StatefulSet")
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 2 {
		t.Errorf("receive-dir replicas %v", ss.Spec.Replicas)
	}
	if svc := find[corev1.Service](r, "Service", ss.Spec.ServiceName); svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet's service %q missing or not headless", ss.Spec.ServiceName)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates %d, want 1", len(ss.Spec.VolumeClaimTemplates))
	}
	pvc := ss.Spec.VolumeClaimTemplates[0]
	if pvc.Name != "data" || pvc.Spec.Resources.Requests.Storage().String() != "20Gi" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "standard" {
		t.Errorf("volume claim %s: %+v", pvc.Name, pvc.Spec)
	}
	ps := ss.Spec.Template.Spec
	ctr := container(t, ps, "receive-dir")
	var dataMount string
	for _, m := range ctr.VolumeMounts {
		if m.Name == "data" {
			dataMount = m.MountPath
		}
	}
	args := ctr.Args
	if len(args) < 3 || args[1] != "receive-dir" || dataMount == "" || !strings.HasPrefix(args[2], dataMount+"/") {
		t.Errorf("receive-dir args %v write outside its volume %q", args, dataMount)
	}
	if !slices.Contains(args, "--topic=purchases_large_encrypted") || !slices.Contains(args, "--quarantine="+dataMount+"/quarantine") ||
		!slices.Contains(args, "--instance-id=$(POD_NAME)") || !hasFieldEnv(ctr, "POD_NAME", "metadata.name") {
		t.Errorf("receive-dir args %v", args)
	}
	if p, ok := cfg.Policies.For("purchases_large_encrypted"); !ok || p.Mode != policy.Envelope {
		t.Error("receive-dir's topic has no envelope policy in the rendered ini")
	}
	checkVault(t, r, c, ps, "receive-dir", cfg, "kafkagate-purchases_large_encrypted-consumer")
}

func checkMetrics(t *testing.T, r *release, c chartCase, dep *appsv1.Deployment) {
	t.Helper()
	ann := dep.Spec.Template.Annotations
	sm := find[serviceMonitor](r, "ServiceMonitor", fullname)
	if !c.monitor {
		if sm != nil {
			t.Error("ServiceMonitor rendered while off")
		}
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "8080" || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("prometheus annotations %v", ann)
		}
		return
	}
	if _, ok := ann["prometheus.io/scrape"]; ok {
		t.Error("prometheus annotations and a ServiceMonitor both rendered")
	}
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	svc := find[corev1.Service](r, "Service", fullname)
	if !selects(t, &sm.Spec.Selector, svc.Labels) || !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor selector %v does not select Service %s %v", sm.Spec.Selector, svc.Name, svc.Labels)
	}
	if sm.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.Metadata.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name || ep.Path != "/metrics" || ep.Scheme != "https" || ep.BearerTokenSecret == nil ||
		ep.BearerTokenSecret.Name != "kafkagate-metrics-token" || ep.TLSConfig == nil || ep.TLSConfig.InsecureSkipVerify {
		t.Errorf("ServiceMonitor endpoint %+v", ep)
	}
}

// TestValuesRefused: values the chart must refuse rather than render.
func TestValuesRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"unknown auth":            {map[string]any{"vault": map[string]any{"auth": "token"}}, "vault.auth must be"},
		"approle without secret":  {map[string]any{"vault": map[string]any{"auth": "approle"}}, "vault.approle.secretName is required"},
		"no access file":          {map[string]any{"access": map[string]any{"secretName": ""}}, "access.secretName is required"},
		"tls without secret":      {map[string]any{"tls": map[string]any{"enabled": true}}, "tls.secretName is required"},
		"monitor without token":   {map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}, "bearerTokenSecret.name is required"},
		"min above max replicas":  {map[string]any{"gateway": map[string]any{"autoscaling": map[string]any{"minReplicas": 5, "maxReplicas": 3}}}, "minReplicas exceeds maxReplicas"},
		"bridge above partitions": {map[string]any{"bridge": map[string]any{"enabled": true, "replicas": 4, "partitions": 3}}, "exceeds bridge.partitions"},
	} {
		_, err := renderChart(tc.vals)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

// TestMutualTLSProbes: with client certificates required the kubelet's
// HTTP probes would fail, so they become TCP checks and NOTES say so.
func TestMutualTLSProbes(t *testing.T) {
	vals := readValues(t, "tls-values.yaml")
	vals["tls"].(map[string]any)["clientCA"] = map[string]any{"secretName": "clients-ca", "key": "ca.crt"}
	r := render(t, vals)
	dep := find[appsv1.Deployment](r, "Deployment", fullname)
	gw := container(t, dep.Spec.Template.Spec, "gateway")
	for _, p := range []*corev1.Probe{gw.LivenessProbe, gw.ReadinessProbe, gw.StartupProbe} {
		if p == nil || p.TCPSocket == nil || p.HTTPGet != nil {
			t.Errorf("probe %+v, want a TCP check", p)
		}
	}
	cfg, err := config.Parse([]byte(find[corev1.ConfigMap](r, "ConfigMap", fullname).Data["kafkagate.ini"]))
	if err != nil {
		t.Fatal(err)
	}
	if kind, name, key, err := fileSource(dep.Spec.Template.Spec, gw, cfg.Get("kafkagate", "tls_client_ca", "")); err != nil || kind != "Secret" || name != "clients-ca" || key != "ca.crt" {
		t.Errorf("tls_client_ca from %s %s key %s (%v)", kind, name, key, err)
	}
	if !strings.Contains(r.notes, "TCP checks") {
		t.Errorf("NOTES do not warn about the TCP probes:\n%s", r.notes)
	}
}

// hasFieldEnv reports whether the container sets name from the pod's
// field path (the downward API), as $(name) in args needs.
func hasFieldEnv(c corev1.Container, name, path string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == path {
			return true
		}
	}
	return false
}
