package lifecycle

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Provisioning outcome of one item (Action.Status).
const (
	StatusCreated     = "created"      // it did not exist and was created
	StatusWouldCreate = "would_create" // --dry-run: it does not exist
	StatusOK          = "ok"           // it exists as wanted: left alone
	StatusDrift       = "drift"        // it exists but differs from what the policies want: reported, left alone
)

// Provisioned item kinds (Action.Kind).
const (
	KindMount       = "transit_mount"
	KindKVMount     = "kv_mount"
	KindAuth        = "approle_auth"
	KindKey         = "transit_key"
	KindFPEKEK      = "fpe_kek"
	KindFPEDomain   = "fpe_domain"
	KindPolicy      = "vault_policy"
	KindRole        = "approle_role"
	KindCredentials = "credentials"
	KindTopic       = "kafka_topic"
)

// Access roles provisioned per topic.
const (
	RoleProducer = "producer" // encrypt (and what encryption needs), never decrypt with the topic's key
	RoleConsumer = "consumer" // decrypt
	RoleAdmin    = "admin"    // both, plus key read, rotate, config and rewrap
)

// Action is one item of a provisioning plan and what happened to it.
type Action struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// ProvisionReport lists the actions in order.
type ProvisionReport struct {
	DryRun  bool     `json:"dry_run"`
	Actions []Action `json:"actions"`
}

// Count returns the number of actions with status s.
func (r *ProvisionReport) Count(s string) int {
	n := 0
	for _, a := range r.Actions {
		if a.Status == s {
			n++
		}
	}
	return n
}

// WriteTable prints the report.
func (r *ProvisionReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSTATUS\tDETAIL")
	for _, a := range r.Actions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Kind, a.Name, a.Status, a.Detail)
	}
	fmt.Fprintf(tw, "%d created, %d would be created, %d unchanged, %d drifted\n", r.Count(StatusCreated), r.Count(StatusWouldCreate), r.Count(StatusOK), r.Count(StatusDrift))
	return tw.Flush()
}

// ProvisionOptions say what to provision.
type ProvisionOptions struct {
	Policies     *policy.Set
	TransitMount string               // default "transit"
	FPE          vaultkeyring.Options // FPE key storage (zero fields: the defaults)
	// AppRoleMount is the AppRole auth mount; default "approle".
	AppRoleMount string
	// CredentialsDir receives <role>.role-id and <role>.secret-id (mode
	// 0600, directory 0700). Empty: no AppRole roles or credentials.
	CredentialsDir string
	// TokenTTL and TokenMaxTTL of the AppRole tokens; default 1h and 24h.
	TokenTTL, TokenMaxTTL time.Duration
	// Kafka, when set, gets each policy topic and its dead-letter topic
	// (<topic><DLQSuffix>) created with Partitions and ReplicationFactor
	// (defaults 3 and 1).
	Kafka             *kafka.Client
	DLQSuffix         string // default ".dlq"
	Partitions        int32
	ReplicationFactor int16
	// MaxMessageBytes is the max.message.bytes given to the topics whose
	// policy needs large records (envelope mode: whole values and files)
	// and to their dead-letter topics; an existing one with a smaller
	// value is drift. 0: the Kafka client's producer limit ([default]
	// message.max.bytes).
	MaxMessageBytes int
	// Kubernetes, when set, gets a Kubernetes auth role per Vault policy
	// (same name and token policy, bound to a service account), for
	// gateways that log in with VAULT_K8S_ROLE (kubernetes.go).
	Kubernetes *KubernetesRoles
	// DryRun checks everything and changes nothing.
	DryRun bool
}

func (o *ProvisionOptions) defaults() {
	if o.Kubernetes != nil {
		k := *o.Kubernetes
		k.defaults()
		o.Kubernetes = &k
	}
	orDefault(&o.TransitMount, "transit")
	orDefault(&o.FPE.TransitMount, o.TransitMount)
	orDefault(&o.FPE.KEK, vaultkeyring.DefaultKEK)
	orDefault(&o.FPE.KVMount, vaultkeyring.DefaultKVMount)
	orDefault(&o.FPE.KVPrefix, vaultkeyring.DefaultKVPrefix)
	orDefault(&o.AppRoleMount, "approle")
	orDefault(&o.TokenTTL, time.Hour)
	orDefault(&o.TokenMaxTTL, 24*time.Hour)
	orDefault(&o.DLQSuffix, ".dlq")
	orDefault(&o.Partitions, 3)
	orDefault(&o.ReplicationFactor, 1)
}

// orDefault sets *v to def when *v is empty, zero or negative.
func orDefault[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// provisioner carries one Provision run.
type provisioner struct {
	o   ProvisionOptions
	vc  *vaultclient.Client
	tc  *transit.Client
	rep *ProvisionReport
}

func (p *provisioner) add(kind, name, status, detail string) {
	p.rep.Actions = append(p.rep.Actions, Action{Kind: kind, Name: name, Status: status, Detail: detail})
}

// missing records an absent item: created (by create) or, in a dry run,
// would_create.
func (p *provisioner) missing(kind, name, detail string, create func() error) error {
	if p.o.DryRun {
		p.add(kind, name, StatusWouldCreate, detail)
		return nil
	}
	if err := create(); err != nil {
		return fmt.Errorf("provision %s %s: %w", kind, name, err)
	}
	p.add(kind, name, StatusCreated, detail)
	return nil
}

// Provision sets up, idempotently, what the policies need: the transit
// mount, the topics' transit keys (envelope KEKs derived), the FPE KEK and
// version 1 of each FPE domain, per topic the Vault policies
// kafkagate-<topic>-{producer,consumer,admin} and AppRole roles of the same
// names with their credentials written to files, and the Kafka topics with
// their dead-letter topics. What exists is never changed: an item that
// differs from what the policies want is reported as drift. vc needs an
// administrative token (sys/mounts, sys/auth, sys/policies, auth/approle,
// transit/keys).
func Provision(ctx context.Context, vc *vaultclient.Client, o ProvisionOptions) (*ProvisionReport, error) {
	o.defaults()
	if err := vc.Ready(ctx); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	p := &provisioner{o: o, vc: vc, tc: transit.New(vc, transit.Options{Mount: o.TransitMount}), rep: &ProvisionReport{DryRun: o.DryRun}}
	domains := o.Policies.FPEDomains()
	if err := p.mount(ctx, KindMount, o.TransitMount, "transit", nil); err != nil {
		return p.rep, err
	}
	if len(domains) > 0 {
		if err := p.mount(ctx, KindKVMount, o.FPE.KVMount, "kv", map[string]string{"version": "2"}); err != nil {
			return p.rep, err
		}
	}
	for _, k := range PolicyKeys(o.Policies) {
		if err := p.key(ctx, KindKey, k.Name, k.Purpose == PurposeEnvelope, "for "+k.Purpose+" of "+strings.Join(k.Topics, ",")); err != nil {
			return p.rep, err
		}
	}
	if len(domains) > 0 {
		if err := p.key(ctx, KindFPEKEK, o.FPE.KEK, true, "wraps the FPE keys"); err != nil {
			return p.rep, err
		}
		kr := vaultkeyring.New(vc, o.FPE)
		for _, d := range domains {
			_, err := vc.Read(ctx, o.FPE.KVMount+"/data/"+o.FPE.KVPrefix+"/"+d)
			switch {
			case err == nil:
				p.add(KindFPEDomain, d, StatusOK, "")
			case errors.Is(err, vaultclient.ErrNotFound):
				if err := p.missing(KindFPEDomain, d, "key version 1", func() error { _, err := kr.Ensure(ctx, d); return err }); err != nil {
					return p.rep, err
				}
			default:
				return p.rep, fmt.Errorf("provision fpe domain %s: %w", d, err)
			}
		}
	}
	if o.CredentialsDir != "" {
		if err := p.authMethod(ctx, KindAuth, p.o.AppRoleMount, "approle"); err != nil {
			return p.rep, err
		}
	}
	if o.Kubernetes != nil {
		if err := p.authMethod(ctx, KindK8sAuth, o.Kubernetes.Mount, "kubernetes"); err != nil {
			return p.rep, err
		}
	}
	for _, t := range o.Policies.Topics() {
		pol, _ := o.Policies.For(t)
		if pol.Mode == policy.Passthrough {
			continue
		}
		for _, role := range []string{RoleProducer, RoleConsumer, RoleAdmin} {
			name := RoleName(t, role)
			if err := p.vaultPolicy(ctx, name, PolicyHCL(pol, role, o)); err != nil {
				return p.rep, err
			}
			if o.CredentialsDir != "" {
				if err := p.role(ctx, name); err != nil {
					return p.rep, err
				}
			}
			if o.Kubernetes != nil {
				if err := p.k8sRole(ctx, t, role, name); err != nil {
					return p.rep, err
				}
			}
		}
	}
	if o.Kafka != nil {
		if err := p.topics(o.Kafka); err != nil {
			return p.rep, err
		}
	}
	return p.rep, nil
}

// RoleName is the Vault policy and AppRole role of a topic's access role.
func RoleName(topic, role string) string { return "kafkagate-" + topic + "-" + role }

func (p *provisioner) mount(ctx context.Context, kind, path, typ string, opts map[string]string) error {
	mounts, err := p.vc.API().Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: list mounts: %w", vaultclient.Classify("list mounts", err))
	}
	if m, ok := mounts[strings.TrimSuffix(path, "/")+"/"]; ok {
		if m.Type != typ && !(typ == "kv" && m.Type == "generic") {
			p.add(kind, path, StatusDrift, fmt.Sprintf("mounted as %s, want %s", m.Type, typ))
			return nil
		}
		if typ == "kv" && m.Options["version"] != "2" {
			p.add(kind, path, StatusDrift, "KV version "+m.Options["version"]+", want 2")
			return nil
		}
		p.add(kind, path, StatusOK, "")
		return nil
	}
	return p.missing(kind, path, typ, func() error {
		return vaultclient.Classify("mount "+path, p.vc.API().Sys().MountWithContext(ctx, path, &api.MountInput{Type: typ, Description: "kafkagate", Options: opts}))
	})
}

func (p *provisioner) key(ctx context.Context, kind, name string, derived bool, detail string) error {
	ki, err := p.tc.ReadKey(ctx, name)
	switch {
	case err == nil:
		if ki.Derived != derived {
			p.add(kind, name, StatusDrift, fmt.Sprintf("derived=%t, want derived=%t", ki.Derived, derived))
			return nil
		}
		p.add(kind, name, StatusOK, fmt.Sprintf("latest version %d", ki.LatestVersion))
		return nil
	case errors.Is(err, vaultclient.ErrNotFound):
		return p.missing(kind, name, detail, func() error { return p.tc.EnsureKey(ctx, name, transit.KeySpec{Derived: derived}) })
	default:
		return fmt.Errorf("provision %s %s: %w", kind, name, err)
	}
}

// authMethod enables the auth method typ at mount unless it is there.
func (p *provisioner) authMethod(ctx context.Context, kind, mount, typ string) error {
	auths, err := p.vc.API().Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: list auth methods: %w", vaultclient.Classify("list auth", err))
	}
	path := strings.TrimSuffix(mount, "/") + "/"
	if a, ok := auths[path]; ok {
		if a.Type != typ {
			p.add(kind, mount, StatusDrift, "auth method "+a.Type+", want "+typ)
		} else {
			p.add(kind, mount, StatusOK, "")
		}
		return nil
	}
	return p.missing(kind, mount, typ, func() error {
		return vaultclient.Classify("enable "+typ, p.vc.API().Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: typ, Description: "kafkagate"}))
	})
}

func (p *provisioner) vaultPolicy(ctx context.Context, name, hcl string) error {
	cur, err := p.vc.API().Sys().GetPolicyWithContext(ctx, name)
	if err != nil {
		return fmt.Errorf("provision: read policy %s: %w", name, vaultclient.Classify("read policy", err))
	}
	if cur != "" {
		if strings.TrimSpace(cur) != strings.TrimSpace(hcl) {
			p.add(KindPolicy, name, StatusDrift, "differs from the policy generated from the topic's policy (left alone)")
		} else {
			p.add(KindPolicy, name, StatusOK, "")
		}
		return nil
	}
	return p.missing(KindPolicy, name, "", func() error {
		return vaultclient.Classify("write policy", p.vc.API().Sys().PutPolicyWithContext(ctx, name, hcl))
	})
}

func (p *provisioner) role(ctx context.Context, name string) error {
	base := "auth/" + p.o.AppRoleMount + "/role/" + name
	d, err := p.vc.Read(ctx, base)
	switch {
	case err == nil:
		if diffs := p.roleDrift(name, d); len(diffs) > 0 {
			p.add(KindRole, name, StatusDrift, strings.Join(diffs, "; "))
		} else {
			p.add(KindRole, name, StatusOK, "")
		}
	case errors.Is(err, vaultclient.ErrNotFound):
		if err := p.missing(KindRole, name, "token policy "+name, func() error {
			_, err := p.vc.Write(ctx, base, p.tokenSettings(name))
			return err
		}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("provision role %s: %w", name, err)
	}
	return p.credentials(ctx, base, name)
}

// roleDrift compares an existing AppRole role with what provision would
// write: its token settings (tokenDrift), and that logging in needs a
// secret id (Vault's default, which provision relies on).
func (p *provisioner) roleDrift(name string, d map[string]any) []string {
	diffs := p.tokenDrift(name, d)
	if b, ok := d["bind_secret_id"].(bool); !ok || !b {
		diffs = append(diffs, fmt.Sprintf("bind_secret_id %v, want true", d["bind_secret_id"]))
	}
	return diffs
}

// tokenDrift compares the token settings of an existing auth role with
// what provision would write: token policies, TTLs and type.
func (p *provisioner) tokenDrift(name string, d map[string]any) []string {
	var diffs []string
	if pols := fmt.Sprint(d["token_policies"]); pols != "["+name+"]" {
		diffs = append(diffs, "token_policies "+pols+", want ["+name+"]")
	}
	for _, c := range []struct {
		field string
		want  time.Duration
	}{{"token_ttl", p.o.TokenTTL}, {"token_max_ttl", p.o.TokenMaxTTL}} {
		got, ok := seconds(d[c.field])
		if !ok || got != int64(c.want/time.Second) {
			diffs = append(diffs, fmt.Sprintf("%s %v, want %d", c.field, d[c.field], int64(c.want/time.Second)))
		}
	}
	if tt := fmt.Sprint(d["token_type"]); tt != "service" {
		diffs = append(diffs, "token_type "+tt+", want service")
	}
	return diffs
}

// tokenSettings are the token fields provision writes on an auth role.
func (p *provisioner) tokenSettings(name string) map[string]any {
	return map[string]any{
		"token_policies": []string{name},
		"token_ttl":      int64(p.o.TokenTTL / time.Second),
		"token_max_ttl":  int64(p.o.TokenMaxTTL / time.Second),
		"token_type":     "service",
	}
}

// seconds reads a duration in seconds from a Vault response field.
func seconds(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case float64:
		return int64(x), x == float64(int64(x))
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}

// credentials writes <dir>/<name>.role-id and <name>.secret-id (0600)
// unless both exist; a role-id file that names another role id is drift.
func (p *provisioner) credentials(ctx context.Context, base, name string) error {
	dir := p.o.CredentialsDir
	ridPath, sidPath := filepath.Join(dir, name+".role-id"), filepath.Join(dir, name+".secret-id")
	rid, ridErr := os.ReadFile(ridPath)
	_, sidErr := os.Stat(sidPath)
	if ridErr == nil && sidErr == nil {
		if p.o.DryRun && !p.exists(p.rep.Actions, KindRole, name) {
			p.add(KindCredentials, name, StatusDrift, "credential files exist for a role that does not")
			return nil
		}
		d, err := p.vc.Read(ctx, base+"/role-id")
		if err != nil {
			return fmt.Errorf("provision credentials %s: %w", name, err)
		}
		if strings.TrimSpace(string(rid)) != fmt.Sprint(d["role_id"]) {
			p.add(KindCredentials, name, StatusDrift, ridPath+" holds another role id")
			return nil
		}
		p.add(KindCredentials, name, StatusOK, dir)
		return nil
	}
	return p.missing(KindCredentials, name, ridPath+", "+sidPath+" (0600)", func() error {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		d, err := p.vc.Read(ctx, base+"/role-id")
		if err != nil {
			return err
		}
		s, err := p.vc.Write(ctx, base+"/secret-id", nil)
		if err != nil {
			return err
		}
		if err := writeSecretFile(ridPath, fmt.Sprint(d["role_id"])); err != nil {
			return err
		}
		return writeSecretFile(sidPath, fmt.Sprint(s["secret_id"]))
	})
}

// exists reports whether the report has a kind/name action that is not
// would_create.
func (p *provisioner) exists(as []Action, kind, name string) bool {
	for _, a := range as {
		if a.Kind == kind && a.Name == name {
			return a.Status != StatusWouldCreate
		}
	}
	return false
}

// writeSecretFile writes v to path readable only by its owner (an existing
// file is replaced, its mode fixed).
func writeSecretFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (p *provisioner) topics(kc *kafka.Client) error {
	s := kc.Settings()
	admin, err := kafka.NewAdmin(s, "")
	if err != nil {
		return fmt.Errorf("provision topics: %w", err)
	}
	defer admin.Close()
	have, err := admin.Topics()
	if err != nil {
		return fmt.Errorf("provision topics: %w", err)
	}
	large := p.o.MaxMessageBytes
	if large <= 0 {
		large = s.MaxMessageBytes()
	}
	for _, t := range p.o.Policies.Topics() {
		pol, _ := p.o.Policies.For(t)
		maxBytes := 0 // 0: the broker's default
		if pol.Mode == policy.Envelope {
			maxBytes = large
		}
		for _, name := range []string{t, t + p.o.DLQSuffix} {
			if n, ok := have[name]; ok {
				if err := p.existingTopic(admin, name, n, maxBytes); err != nil {
					return err
				}
				continue
			}
			var configs map[string]string
			detail := fmt.Sprintf("%d partitions, replication %d", p.o.Partitions, p.o.ReplicationFactor)
			if maxBytes > 0 {
				v := strconv.Itoa(maxBytes)
				configs = map[string]string{TopicMaxMessageBytes: v}
				detail += ", " + TopicMaxMessageBytes + " " + v
			}
			if err := p.missing(KindTopic, name, detail, func() error {
				return admin.CreateTopic(name, p.o.Partitions, p.o.ReplicationFactor, configs)
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// TopicMaxMessageBytes is the topic config provision sets on topics that
// need large records.
const TopicMaxMessageBytes = "max.message.bytes"

// existingTopic reports an existing topic: drift when it needs records of
// up to maxBytes (> 0) and its effective max.message.bytes is smaller.
func (p *provisioner) existingTopic(admin *kafka.Admin, name string, partitions int32, maxBytes int) error {
	detail := fmt.Sprintf("%d partitions", partitions)
	if maxBytes <= 0 {
		p.add(KindTopic, name, StatusOK, detail)
		return nil
	}
	v, ok, err := admin.TopicConfig(name, TopicMaxMessageBytes)
	if err != nil {
		return fmt.Errorf("provision topic %s: describe %s: %w", name, TopicMaxMessageBytes, err)
	}
	cur := -1
	if ok {
		if cur, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("provision topic %s: %s %q is not an integer", name, TopicMaxMessageBytes, v)
		}
	}
	switch {
	case cur < 0:
		p.add(KindTopic, name, StatusDrift, fmt.Sprintf("%s not reported by the broker, want at least %d", TopicMaxMessageBytes, maxBytes))
	case cur < maxBytes:
		p.add(KindTopic, name, StatusDrift, fmt.Sprintf("%s %d, want at least %d (message.max.bytes; left alone)", TopicMaxMessageBytes, cur, maxBytes))
	default:
		p.add(KindTopic, name, StatusOK, fmt.Sprintf("%s, %s %d", detail, TopicMaxMessageBytes, cur))
	}
	return nil
}

// PolicyHCL is the Vault policy of a topic's access role: the producer
// may encrypt (transit/encrypt, data keys for envelope records, the blind
// index HMAC, and unwrap the FPE keys FPE needs in process) but never
// decrypt with the topic's keys; the consumer may decrypt (and compute
// blind indexes to filter); the admin may do both and read, rotate,
// configure and rewrap the keys and rotate the FPE domains.
func PolicyHCL(p *policy.Policy, role string, o ProvisionOptions) string {
	o.defaults()
	var b strings.Builder
	fmt.Fprintf(&b, "# kafkagate %s of topic %s (generated by gateway provision)\n", role, p.Topic)
	// A path that occurs twice gets the union of its capabilities, in the
	// order of first occurrence (the admin's KV rule adds create and update
	// to the read every role has).
	var order []string
	capsOf := map[string][]string{}
	path := func(pth string, caps ...string) {
		if _, ok := capsOf[pth]; !ok {
			order = append(order, pth)
		}
		for _, c := range caps {
			if !slices.Contains(capsOf[pth], c) {
				capsOf[pth] = append(capsOf[pth], c)
			}
		}
	}
	tm := o.TransitMount
	keys, domains := TopicKeys(p) // the topic's transit keys and FPE domains
	var index []string
	for _, f := range p.Fields {
		if f.Mode == policy.Transit && f.Options["index"] == "hmac" && !slices.Contains(index, p.IndexKey) {
			index = append(index, p.IndexKey)
		}
	}
	enc := role == RoleProducer || role == RoleAdmin
	dec := role == RoleConsumer || role == RoleAdmin
	for _, k := range keys {
		if enc {
			if p.Mode == policy.Envelope {
				path(tm+"/datakey/plaintext/"+k, "update")
			} else {
				path(tm+"/encrypt/"+k, "update")
			}
		}
		if dec {
			path(tm+"/decrypt/"+k, "update")
		}
	}
	for _, k := range index {
		path(tm+"/hmac/"+k, "update")
	}
	for _, d := range domains {
		path(o.FPE.KVMount+"/data/"+o.FPE.KVPrefix+"/"+d, "read")
		path(tm+"/decrypt/"+o.FPE.KEK, "update")
	}
	if role == RoleAdmin {
		for _, k := range append(slices.Clone(keys), index...) {
			path(tm+"/keys/"+k, "read")
			path(tm+"/keys/"+k+"/rotate", "update")
			path(tm+"/keys/"+k+"/config", "update")
			path(tm+"/rewrap/"+k, "update")
			path(tm+"/encrypt/"+k, "update")
		}
		for _, d := range domains {
			path(o.FPE.KVMount+"/data/"+o.FPE.KVPrefix+"/"+d, "read", "create", "update")
			path(o.FPE.KVMount+"/metadata/"+o.FPE.KVPrefix+"/"+d, "read")
			path(tm+"/datakey/wrapped/"+o.FPE.KEK, "update")
		}
	}
	for _, pth := range order {
		fmt.Fprintf(&b, "path %q {\n  capabilities = [%s]\n}\n", pth, quoteJoin(capsOf[pth]))
	}
	return b.String()
}

func quoteJoin(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
