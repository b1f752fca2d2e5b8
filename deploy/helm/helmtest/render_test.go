package helmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../kafkagate"
	releaseName = "kg"
	namespace   = "payments"
	fullname    = "kg-kafkagate" // <release>-<chart>
)

// kubeVersion is the cluster the chart is rendered for.
var kubeVersion = chartutil.KubeVersion{Version: "v1.34.0", Major: "1", Minor: "34"}

// serviceMonitor is the part of the Prometheus operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the chart writes. k8s.io/api has no type
// for it; decoding into this struct strictly still catches a misspelt or
// misplaced field.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []smEndpoint `json:"endpoints"`
	} `json:"spec"`
}

type smEndpoint struct {
	Port              string                    `json:"port"`
	Path              string                    `json:"path"`
	Scheme            string                    `json:"scheme"`
	Interval          string                    `json:"interval"`
	BearerTokenSecret *corev1.SecretKeySelector `json:"bearerTokenSecret,omitempty"`
	TLSConfig         *struct {
		InsecureSkipVerify bool   `json:"insecureSkipVerify"`
		ServerName         string `json:"serverName,omitempty"`
	} `json:"tlsConfig,omitempty"`
}

// kinds maps each kind the chart may render to its apiVersion and a new
// value of its type.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"ConfigMap":               {"v1", func() any { return new(corev1.ConfigMap) }},
	"Service":                 {"v1", func() any { return new(corev1.Service) }},
	"ServiceAccount":          {"v1", func() any { return new(corev1.ServiceAccount) }},
	"Deployment":              {"apps/v1", func() any { return new(appsv1.Deployment) }},
	"StatefulSet":             {"apps/v1", func() any { return new(appsv1.StatefulSet) }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return new(autoscalingv2.HorizontalPodAutoscaler) }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return new(policyv1.PodDisruptionBudget) }},
	"NetworkPolicy":           {"networking.k8s.io/v1", func() any { return new(networkingv1.NetworkPolicy) }},
	"ServiceMonitor":          {"monitoring.coreos.com/v1", func() any { return new(serviceMonitor) }},
}

// object is one rendered manifest, decoded.
type object struct {
	source string // template file
	kind   string
	name   string
	v      any
}

// release is a rendered chart.
type release struct {
	objects []object
	notes   string
}

// find returns the object of kind and name, or nil.
func find[T any](r *release, kind, name string) *T {
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			return o.v.(*T)
		}
	}
	return nil
}

func (r *release) count(kind string) int {
	n := 0
	for _, o := range r.objects {
		if o.kind == kind {
			n++
		}
	}
	return n
}

// readValues reads a values file of the chart's ci/ folder ("" for none).
func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "ci", file))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// renderChart renders the chart as `helm install kg --namespace payments`
// would, with vals over values.yaml, in Helm's strict mode (a template
// reading a value that does not exist fails).
func renderChart(vals map[string]any) (map[string]string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kubeVersion.String()) {
		return nil, fmt.Errorf("chart kubeVersion %q excludes %s", ch.Metadata.KubeVersion, kubeVersion)
	}
	caps := *chartutil.DefaultCapabilities
	caps.KubeVersion = kubeVersion
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}, &caps)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(ch, rv)
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStrict decodes one YAML manifest into its k8s.io/api type: YAML
// with duplicate keys, an unknown kind, another apiVersion or a field the
// type does not have is an error.
func decodeStrict(doc []byte) (kind string, v any, err error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "", nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return "", nil, err
	}
	k, ok := kinds[tm.Kind]
	if !ok {
		return "", nil, fmt.Errorf("unexpected kind %q", tm.Kind)
	}
	if tm.APIVersion != k.apiVersion {
		return "", nil, fmt.Errorf("%s: apiVersion %q, want %q", tm.Kind, tm.APIVersion, k.apiVersion)
	}
	v = k.new()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "", nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return tm.Kind, v, nil
}

// render renders the chart with vals and decodes every manifest strictly.
func render(t *testing.T, vals map[string]any) *release {
	t.Helper()
	out, err := renderChart(vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	files := make([]string, 0, len(out))
	for f := range out {
		files = append(files, f)
	}
	sort.Strings(files)
	r := &release{}
	seen := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "NOTES.txt") {
			r.notes = out[f]
			continue
		}
		for _, doc := range docSep.Split(out[f], -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			kind, v, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v\n%s", f, err, doc)
			}
			name := objectMeta(v).Name
			if name == "" {
				t.Fatalf("%s: %s without a name", f, kind)
			}
			if prev, dup := seen[kind+"/"+name]; dup {
				t.Fatalf("%s %s rendered twice (%s and %s)", kind, name, prev, f)
			}
			seen[kind+"/"+name] = f
			if ns := objectMeta(v).Namespace; ns != "" && ns != namespace {
				t.Errorf("%s %s: namespace %q", kind, name, ns)
			}
			r.objects = append(r.objects, object{source: f, kind: kind, name: name, v: v})
		}
	}
	if len(r.objects) == 0 {
		t.Fatal("the chart rendered nothing")
	}
	return r
}

func objectMeta(v any) metav1.ObjectMeta {
	switch o := v.(type) {
	case *serviceMonitor:
		return o.Metadata
	case metav1.Object:
		return metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), Labels: o.GetLabels()}
	}
	return metav1.ObjectMeta{}
}

// TestStrictDecoderRefusesUnknownFields shows that the decoder the chart's
// tests rely on fails on what Kubernetes would reject or ignore.
func TestStrictDecoderRefusesUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt field":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"misplaced field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80, path: /}]\n",
		"duplicate key":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b, a: c}\n",
		"old apiVersion":  "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n",
		"unknown kind":    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"ServiceMonitor":  "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  endpoints: [{port: http, bearerToken: x}]\n",
	} {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, v, err := decodeStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n")); err != nil || *v.(*appsv1.Deployment).Spec.Replicas != 2 {
		t.Errorf("a valid Deployment: %v", err)
	}
}

// envOf returns a container's environment as a map (values only).
func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// fileSource resolves a file path inside container c of pod spec ps to the
// Secret or ConfigMap and key it comes from.
func fileSource(ps corev1.PodSpec, c corev1.Container, path string) (kind, name, key string, err error) {
	for _, m := range c.VolumeMounts {
		var rel string
		switch {
		case m.SubPath != "" && path == m.MountPath:
			rel = m.SubPath
		case m.SubPath == "" && strings.HasPrefix(path, m.MountPath+"/"):
			rel = strings.TrimPrefix(path, m.MountPath+"/")
		default:
			continue
		}
		i := slices.IndexFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return "", "", "", fmt.Errorf("mount %s: no volume %q", m.MountPath, m.Name)
		}
		v := ps.Volumes[i]
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
		case v.ConfigMap != nil:
			kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
		default:
			return "", "", "", fmt.Errorf("%s is on volume %s, neither a Secret nor a ConfigMap", path, v.Name)
		}
		if len(items) == 0 {
			return kind, name, rel, nil
		}
		for _, it := range items {
			if it.Path == rel {
				return kind, name, it.Key, nil
			}
		}
		return "", "", "", fmt.Errorf("%s: volume %s projects no item at %s", path, v.Name, rel)
	}
	return "", "", "", fmt.Errorf("%s is on no mounted volume", path)
}

// TestHelmLint runs `helm lint`'s checks (the SDK's) for the defaults and
// each ci/ values file: no warning or error.
func TestHelmLint(t *testing.T) {
	for _, f := range []string{"", "approle-values.yaml", "tls-values.yaml", "bridge-values.yaml"} {
		l := lint.AllWithKubeVersion(chartDir, readValues(t, f), namespace, &kubeVersion)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("lint %q: %s", f, m)
			}
		}
	}
}
