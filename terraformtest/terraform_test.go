package terraformtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/kafkagate/kafkagate/config"
	"github.com/kafkagate/kafkagate/lifecycle"
	"github.com/kafkagate/kafkagate/policy"
)

const (
	terraformDir = "../terraform"
	iniPath      = "../getting_started.ini.orig"

	// Names from docs/design.md ("Vault names").
	fpeKEK        = "kafkagate-fpe-kek"
	legacyKey     = "transit"
	fpeKVMount    = "secret"
	fpeKVPrefix   = "kafkagate/fpe"
	dlqSuffix     = ".dlq"
	largeMaxBytes = "8388608"
)

// ---------------------------------------------------------------------------
// Loading and parsing

// module is one Terraform root module: the .tf files of one directory.
type module struct {
	name   string            // directory relative to terraform/
	src    map[string][]byte // file name -> contents
	blocks []*hclsyntax.Block
}

// parseModule parses files (name -> contents) as one module. Every
// diagnostic, warnings included, is returned.
func parseModule(name string, files map[string][]byte) (*module, hcl.Diagnostics) {
	p := hclparse.NewParser()
	m := &module{name: name, src: files}
	var diags hcl.Diagnostics
	for _, fn := range sortedKeys(files) {
		f, d := p.ParseHCL(files[fn], fn)
		diags = append(diags, d...)
		if f == nil {
			continue
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fn + ": not HCL native syntax"})
			continue
		}
		for _, a := range body.Attributes {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "attribute " + a.Name + " outside any block", Subject: a.SrcRange.Ptr()})
		}
		m.blocks = append(m.blocks, body.Blocks...)
	}
	return m, diags
}

// loadModules parses every .tf file under terraform/, one module per
// directory, and fails the test on any diagnostic.
func loadModules(t *testing.T) map[string]*module {
	t.Helper()
	byDir := map[string]map[string][]byte{}
	err := filepath.WalkDir(terraformDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".tf") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dir, err := filepath.Rel(terraformDir, filepath.Dir(path))
		if err != nil {
			return err
		}
		if byDir[dir] == nil {
			byDir[dir] = map[string][]byte{}
		}
		byDir[dir][path] = b
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", terraformDir, err)
	}
	mods := map[string]*module{}
	for dir, files := range byDir {
		m, diags := parseModule(dir, files)
		for _, d := range diags {
			t.Errorf("%s: %s", dir, d.Error())
		}
		mods[dir] = m
	}
	for _, want := range []string{"confluent", "vault"} {
		if mods[want] == nil {
			t.Fatalf("no .tf files in %s/%s", terraformDir, want)
		}
	}
	return mods
}

func (m *module) top(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// labeled returns the blocks of kind (resource, data) and type typ.
func (m *module) labeled(kind, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.top(kind) {
		if len(b.Labels) == 2 && b.Labels[0] == typ {
			out = append(out, b)
		}
	}
	return out
}

func (m *module) variables() map[string]*hclsyntax.Block {
	out := map[string]*hclsyntax.Block{}
	for _, b := range m.top("variable") {
		if len(b.Labels) == 1 {
			out[b.Labels[0]] = b
		}
	}
	return out
}

func (m *module) output(name string) *hclsyntax.Block {
	for _, b := range m.top("output") {
		if len(b.Labels) == 1 && b.Labels[0] == name {
			return b
		}
	}
	return nil
}

// walkAttrs calls fn for each attribute of body and of its nested blocks;
// path lists the enclosing block types, outermost first.
func walkAttrs(body *hclsyntax.Body, path []string, fn func(path []string, a *hclsyntax.Attribute)) {
	for _, name := range sortedKeys(body.Attributes) {
		fn(path, body.Attributes[name])
	}
	for _, b := range body.Blocks {
		walkAttrs(b.Body, append(slices.Clone(path), b.Type), fn)
	}
}

// ---------------------------------------------------------------------------
// Static checks

// checkReferences reports var.X and local.X references to undeclared names
// and variables that nothing outside their own block uses.
func checkReferences(m *module) []string {
	vars := m.variables()
	locals := map[string]bool{}
	for _, b := range m.top("locals") {
		for name := range b.Body.Attributes {
			locals[name] = true
		}
	}
	used := map[string]bool{}
	var problems []string
	for _, b := range m.blocks {
		walkAttrs(b.Body, []string{b.Type}, func(_ []string, a *hclsyntax.Attribute) {
			for _, tr := range a.Expr.Variables() {
				root := tr.RootName()
				if root != "var" && root != "local" {
					continue
				}
				rng := tr.SourceRange()
				var name string
				if len(tr) > 1 {
					if step, isAttr := tr[1].(hcl.TraverseAttr); isAttr {
						name = step.Name
					}
				}
				if name == "" {
					problems = append(problems, fmt.Sprintf("%s: %s reference without a plain name", rng, root))
					continue
				}
				switch {
				case root == "var" && vars[name] == nil:
					problems = append(problems, fmt.Sprintf("%s: var.%s is not declared in module %s", rng, name, m.name))
				case root == "local" && !locals[name]:
					problems = append(problems, fmt.Sprintf("%s: local.%s is not declared in module %s", rng, name, m.name))
				}
				if root == "var" && !(b.Type == "variable" && len(b.Labels) == 1 && b.Labels[0] == name) {
					used[name] = true
				}
			}
		})
	}
	for _, name := range sortedKeys(vars) {
		if !used[name] {
			problems = append(problems, fmt.Sprintf("%s: variable %q is declared but never used", vars[name].DefRange(), name))
		}
	}
	return problems
}

var (
	// Attribute names whose value is a credential.
	credentialAttr = regexp.MustCompile(`(?i)^(token|password|passwd|secret|api_?key|api_?secret|secret_?id|client_secret|private_key|access_key|secret_key|(cloud|kafka)_api_(key|secret)|.*_(token|password|secret))$`)
	// Credential-looking strings anywhere in the text.
	credentialText = []*regexp.Regexp{
		regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`),      // Vault token
		regexp.MustCompile(`\bs\.[A-Za-z0-9]{24}\b`),             // legacy Vault token
		regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`),        // AWS access key
		regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`), // PEM private key
	}
)

// findCredentials reports literal strings assigned to credential
// attributes (token = "...", credentials { key = "..." }), literal defaults
// of credential-named variables, and credential-looking text.
func findCredentials(m *module) []string {
	var problems []string
	for _, b := range m.blocks {
		credVar := b.Type == "variable" && len(b.Labels) == 1 && credentialAttr.MatchString(b.Labels[0])
		walkAttrs(b.Body, []string{b.Type}, func(path []string, a *hclsyntax.Attribute) {
			inCredentials := path[len(path)-1] == "credentials"
			isCred := credentialAttr.MatchString(a.Name) ||
				(inCredentials && (a.Name == "key" || a.Name == "secret")) ||
				(credVar && a.Name == "default" && len(path) == 1)
			if !isCred {
				return
			}
			if s, lit := literalString(a.Expr); lit && s != "" {
				problems = append(problems, fmt.Sprintf("%s: %s is assigned a literal string", a.SrcRange, a.Name))
			}
		})
	}
	for _, fn := range sortedKeys(m.src) {
		for _, re := range credentialText {
			if loc := re.FindIndex(m.src[fn]); loc != nil {
				line := 1 + strings.Count(string(m.src[fn][:loc[0]]), "\n")
				problems = append(problems, fmt.Sprintf("%s:%d: credential-looking text matching %s", fn, line, re))
			}
		}
	}
	return problems
}

func literalString(e hclsyntax.Expression) (string, bool) {
	switch x := e.(type) {
	case *hclsyntax.TemplateExpr:
		if x.IsStringLiteral() {
			v, diags := x.Value(nil)
			if !diags.HasErrors() && v.Type() == cty.String && !v.IsNull() {
				return v.AsString(), true
			}
		}
	case *hclsyntax.LiteralValueExpr:
		if x.Val.Type() == cty.String && !x.Val.IsNull() {
			return x.Val.AsString(), true
		}
	}
	return "", false
}

// ---------------------------------------------------------------------------
// Evaluation of what depends only on variable defaults

// resState is what is known about one resource or data block.
type resState struct {
	block     *hclsyntax.Block
	forEach   bool
	attrs     map[string]cty.Value            // without for_each
	instances map[string]map[string]cty.Value // with for_each: key -> attrs
}

type evaluator struct {
	m         *module
	ctx       *hcl.EvalContext
	locals    map[string]cty.Value
	resources map[string]map[string]*resState // type -> label -> state
}

// tfCoalesce is Terraform's coalesce for strings: the first argument that
// is neither null nor empty (cty's stdlib version keeps empty strings).
var tfCoalesce = function.New(&function.Spec{
	VarParam: &function.Parameter{Name: "vals", Type: cty.String, AllowNull: true},
	Type:     function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for _, a := range args {
			if !a.IsNull() && a.AsString() != "" {
				return a, nil
			}
		}
		return cty.NilVal, errors.New("no non-null, non-empty argument")
	},
})

func functions() map[string]function.Function {
	return map[string]function.Function{
		// Terraform's own implementations of these are cty's stdlib.
		"coalesce":   tfCoalesce,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"flatten":    stdlib.FlattenFunc,
		"join":       stdlib.JoinFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"replace":    stdlib.ReplaceFunc,
		"slice":      stdlib.SliceFunc,
		"sort":       stdlib.SortFunc,
		"values":     stdlib.ValuesFunc,
		"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":   stdlib.MakeToFunc(cty.String),
		"trimprefix": stdlib.TrimPrefixFunc,
	}
}

// newEvaluator evaluates, with the variables' defaults, every local and
// every resource attribute that depends only on variables, locals and
// other such attributes. Each resource gets a placeholder id
// ("type.label" or "type.label[key]") so references to ids evaluate.
func newEvaluator(m *module) (*evaluator, error) {
	vars := map[string]cty.Value{}
	for name, b := range m.variables() {
		ty := cty.DynamicPseudoType
		var defaults *typeexpr.Defaults
		if a, ok := b.Body.Attributes["type"]; ok {
			var diags hcl.Diagnostics
			if ty, defaults, diags = typeexpr.TypeConstraintWithDefaults(a.Expr); diags.HasErrors() {
				return nil, fmt.Errorf("variable %s: type: %s", name, diags.Error())
			}
		}
		a, ok := b.Body.Attributes["default"]
		if !ok {
			vars[name] = cty.UnknownVal(ty)
			continue
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("variable %s: default is not a constant: %s", name, diags.Error())
		}
		if !v.IsNull() {
			if defaults != nil {
				v = defaults.Apply(v) // optional(type, default) attributes, as Terraform does
			}
			cv, err := convert.Convert(v, ty)
			if err != nil {
				return nil, fmt.Errorf("variable %s: default does not fit its type: %v", name, err)
			}
			v = cv
		}
		vars[name] = v
	}
	e := &evaluator{
		m:         m,
		ctx:       &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}, Functions: functions()},
		locals:    map[string]cty.Value{},
		resources: map[string]map[string]*resState{},
	}
	for _, b := range m.top("resource") {
		if len(b.Labels) != 2 {
			return nil, fmt.Errorf("%s: resource needs two labels", b.DefRange())
		}
		if e.resources[b.Labels[0]] == nil {
			e.resources[b.Labels[0]] = map[string]*resState{}
		}
		_, fe := b.Body.Attributes["for_each"]
		_, cnt := b.Body.Attributes["count"]
		e.resources[b.Labels[0]][b.Labels[1]] = &resState{block: b, forEach: fe || cnt, attrs: map[string]cty.Value{}}
	}
	for pass := 0; pass < 20; pass++ {
		e.refresh()
		if !e.step() {
			return e, nil
		}
	}
	return nil, errors.New("evaluation does not settle")
}

// step evaluates what it can; it reports whether anything new was learnt.
func (e *evaluator) step() bool {
	progress := false
	for _, b := range e.m.top("locals") {
		for _, name := range sortedKeys(b.Body.Attributes) {
			if _, done := e.locals[name]; done {
				continue
			}
			if v, ok := known(b.Body.Attributes[name].Expr, e.ctx); ok {
				e.locals[name] = v
				progress = true
			}
		}
	}
	for _, typ := range sortedKeys(e.resources) {
		for _, label := range sortedKeys(e.resources[typ]) {
			r := e.resources[typ][label]
			if !r.forEach {
				progress = evalAttrs(r.block.Body, e.ctx, r.attrs) || progress
				continue
			}
			if r.instances == nil {
				fe, ok := r.block.Body.Attributes["for_each"]
				if !ok {
					continue // count is not supported; nothing is learnt
				}
				v, ok := known(fe.Expr, e.ctx)
				if !ok {
					continue
				}
				r.instances = map[string]map[string]cty.Value{}
				for k := range eachOf(v) {
					r.instances[k] = map[string]cty.Value{}
				}
				progress = true
			}
			fe := r.block.Body.Attributes["for_each"]
			v, _ := known(fe.Expr, e.ctx)
			for k, val := range eachOf(v) {
				progress = evalAttrs(r.block.Body, e.eachCtx(k, val), r.instances[k]) || progress
			}
		}
	}
	return progress
}

func (e *evaluator) eachCtx(key string, val cty.Value) *hcl.EvalContext {
	c := e.ctx.NewChild()
	c.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(key), "value": val})}
	return c
}

// eachOf lists the instances of a for_each value: key -> each.value.
func eachOf(v cty.Value) map[string]cty.Value {
	out := map[string]cty.Value{}
	if v.IsNull() {
		return out
	}
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		if v.Type().IsSetType() {
			k = val
		}
		if k.Type() == cty.String {
			out[k.AsString()] = val
		}
	}
	return out
}

func evalAttrs(body *hclsyntax.Body, ctx *hcl.EvalContext, into map[string]cty.Value) bool {
	progress := false
	for _, name := range sortedKeys(body.Attributes) {
		if name == "for_each" || name == "count" || name == "depends_on" {
			continue
		}
		if _, done := into[name]; done {
			continue
		}
		if v, ok := known(body.Attributes[name].Expr, ctx); ok {
			into[name] = v
			progress = true
		}
	}
	return progress
}

func known(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, bool) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// refresh publishes what is known as local.* and <resource type>.*.
func (e *evaluator) refresh() {
	e.ctx.Variables["local"] = cty.ObjectVal(e.locals)
	for typ, byLabel := range e.resources {
		labels := map[string]cty.Value{}
		for label, r := range byLabel {
			if !r.forEach {
				labels[label] = withID(r.attrs, typ+"."+label)
				continue
			}
			inst := map[string]cty.Value{}
			for k, attrs := range r.instances {
				inst[k] = withID(attrs, fmt.Sprintf("%s.%s[%s]", typ, label, k))
			}
			labels[label] = cty.ObjectVal(inst)
		}
		e.ctx.Variables[typ] = cty.ObjectVal(labels)
	}
}

func withID(attrs map[string]cty.Value, id string) cty.Value {
	out := map[string]cty.Value{"id": cty.StringVal(id)}
	for k, v := range attrs {
		out[k] = v
	}
	return cty.ObjectVal(out)
}

// instances returns, per instance key ("" without for_each), the known
// attributes of every resource of type typ.
func (e *evaluator) instances(typ string) map[string]map[string]cty.Value {
	out := map[string]map[string]cty.Value{}
	for label, r := range e.resources[typ] {
		if !r.forEach {
			out[label] = r.attrs
			continue
		}
		for k, attrs := range r.instances {
			out[label+"["+k+"]"] = attrs
		}
	}
	return out
}

func (e *evaluator) variableDefault(name string) cty.Value {
	return e.ctx.Variables["var"].GetAttr(name)
}

func str(v cty.Value) string {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
		return ""
	}
	if s, err := convert.Convert(v, cty.String); err == nil {
		return s.AsString()
	}
	return ""
}

func strs(v cty.Value) []string {
	if v == cty.NilVal || v.IsNull() || !v.CanIterateElements() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, str(e))
	}
	return out
}

func isTrue(v cty.Value) bool {
	return v != cty.NilVal && !v.IsNull() && v.Type() == cty.Bool && v.True()
}

// ---------------------------------------------------------------------------
// Vault policies

type policyRule struct {
	path string
	caps []string
}

// parsePolicy parses a Vault policy (HCL: path "<path>" { capabilities =
// [...] } blocks) into its rules, in order.
func parsePolicy(name, text string) ([]policyRule, error) {
	f, diags := hclsyntax.ParseConfig([]byte(text), name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("policy %s: %s", name, diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	if len(body.Attributes) > 0 {
		return nil, fmt.Errorf("policy %s: attributes outside a path block", name)
	}
	var rules []policyRule
	for _, b := range body.Blocks {
		if b.Type != "path" || len(b.Labels) != 1 {
			return nil, fmt.Errorf("%s: block %s %q, want path \"<path>\"", b.DefRange(), b.Type, b.Labels)
		}
		a, ok := b.Body.Attributes["capabilities"]
		if !ok || len(b.Body.Attributes) != 1 || len(b.Body.Blocks) != 0 {
			return nil, fmt.Errorf("%s: path %q needs capabilities and nothing else", b.DefRange(), b.Labels[0])
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s", a.SrcRange, diags.Error())
		}
		rules = append(rules, policyRule{path: b.Labels[0], caps: strs(v)})
	}
	return rules, nil
}

// terraformPolicy is a vault_policy of the module, evaluated.
type terraformPolicy struct {
	text  string
	rules []policyRule
}

// vaultPolicies maps each vault_policy name to its text and rules.
func (e *evaluator) vaultPolicies() (map[string]terraformPolicy, error) {
	out := map[string]terraformPolicy{}
	for inst, attrs := range e.instances("vault_policy") {
		name, text := str(attrs["name"]), str(attrs["policy"])
		if name == "" || text == "" {
			return nil, fmt.Errorf("vault_policy.%s: name or policy is not known from the defaults", inst)
		}
		rules, err := parsePolicy(name, text)
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("vault_policy.%s: policy %s is declared twice", inst, name)
		}
		out[name] = terraformPolicy{text: text, rules: rules}
	}
	return out, nil
}

// vaultMatch reports whether policy path pattern covers request path p
// ("+" is one path segment, a trailing "*" any suffix).
func vaultMatch(pattern, p string) bool {
	glob := strings.HasSuffix(pattern, "*")
	var re strings.Builder
	re.WriteString("^")
	for i, seg := range strings.Split(strings.TrimSuffix(pattern, "*"), "/") {
		if i > 0 {
			re.WriteString("/")
		}
		if seg == "+" {
			re.WriteString("[^/]+")
		} else {
			re.WriteString(regexp.QuoteMeta(seg))
		}
	}
	if glob {
		re.WriteString(".*")
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(p)
}

// capsFor is the union of the capabilities of every rule matching p.
func capsFor(rules []policyRule, p string) []string {
	var out []string
	for _, r := range rules {
		if vaultMatch(r.path, p) {
			for _, c := range r.caps {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Tests: Terraform files

func TestTerraformFilesParse(t *testing.T) {
	mods := loadModules(t)
	for _, name := range []string{"confluent", "vault"} {
		for _, fn := range []string{"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} {
			if _, err := os.Stat(filepath.Join(terraformDir, name, fn)); err != nil {
				t.Errorf("terraform/%s: %v", name, err)
			}
		}
	}
	for _, name := range sortedKeys(mods) {
		t.Logf("module %s: %d files, %d top-level blocks", name, len(mods[name].src), len(mods[name].blocks))
	}
}

func TestVariableReferencesAreDeclared(t *testing.T) {
	mods := loadModules(t)
	for _, name := range sortedKeys(mods) {
		for _, p := range checkReferences(mods[name]) {
			t.Error(p)
		}
	}
}

func TestVariablesAreDocumented(t *testing.T) {
	mods := loadModules(t)
	for _, name := range sortedKeys(mods) {
		for vn, b := range mods[name].variables() {
			d, ok := b.Body.Attributes["description"]
			if s, lit := literalString(exprOf(d, ok)); !lit || len(strings.TrimSpace(s)) < 10 {
				t.Errorf("%s: variable %q has no real description", b.DefRange(), vn)
			}
			if _, ok := b.Body.Attributes["type"]; !ok {
				t.Errorf("%s: variable %q has no type", b.DefRange(), vn)
			}
		}
	}
}

func exprOf(a *hclsyntax.Attribute, ok bool) hclsyntax.Expression {
	if !ok {
		return &hclsyntax.LiteralValueExpr{Val: cty.NullVal(cty.String)}
	}
	return a.Expr
}

func TestNoCredentialsInTerraform(t *testing.T) {
	mods := loadModules(t)
	for _, name := range sortedKeys(mods) {
		for _, p := range findCredentials(mods[name]) {
			t.Error(p)
		}
	}
}

func TestProviders(t *testing.T) {
	mods := loadModules(t)
	want := map[string]struct{ provider, source, version string }{
		"confluent": {"confluent", "confluentinc/confluent", "~> 2.28"},
		"vault":     {"vault", "hashicorp/vault", "~> 4.8"},
	}
	for mod, w := range want {
		m := mods[mod]
		var found bool
		for _, tb := range m.top("terraform") {
			for _, rp := range tb.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				a, ok := rp.Body.Attributes[w.provider]
				if !ok {
					continue
				}
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() {
					t.Fatalf("%s: %s", a.SrcRange, diags.Error())
				}
				found = true
				if got := str(v.GetAttr("source")); got != w.source {
					t.Errorf("%s: source %q, want %q", a.SrcRange, got, w.source)
				}
				if got := str(v.GetAttr("version")); got != w.version {
					t.Errorf("%s: version %q, want %q", a.SrcRange, got, w.version)
				}
			}
		}
		if !found {
			t.Errorf("terraform/%s: no required_providers entry for %s", mod, w.provider)
		}
		// Credentials and the address come from the environment; TLS
		// verification stays on.
		for _, pb := range m.top("provider") {
			for name := range pb.Body.Attributes {
				switch name {
				case "namespace", "alias":
				default:
					t.Errorf("%s: provider %s sets %s; it must come from the environment (or not be set at all)", pb.Body.Attributes[name].SrcRange, pb.Labels[0], name)
				}
			}
		}
		for _, b := range m.blocks {
			walkAttrs(b.Body, []string{b.Type}, func(_ []string, a *hclsyntax.Attribute) {
				if a.Name == "skip_tls_verify" || a.Name == "insecure" {
					t.Errorf("%s: %s must not be set", a.SrcRange, a.Name)
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
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
	mnt := needsOf(f).mount
	type topicNeeds struct {
		key      string // transit key (fields) or KEK (envelope); "" without transit fields
		envelope bool
		domains  []string
	}
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
	if len(per) != 3 {
		t.Fatalf("the demo ini should have three encrypting topics, got %v", sortedKeys(per))
	}
	has := func(role, path, c string) bool {
		caps := capsFor(pols[role].rules, path)
		return slices.Contains(caps, c) && !slices.Contains(caps, "deny")
	}
	for _, topic := range sortedKeys(per) {
		n := per[topic]
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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Tests: getting_started.ini.orig

// The original template's keys, per section.
var originalKeys = map[string][]string{
	"default":            {"bootstrap.servers", "security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password", "message.max.bytes", "enable.metrics.push"},
	"consumer":           {"group.id", "auto.offset.reset"},
	"plaintext-msg-demo": {"topic", "number_of_msg"},
	"encryptor":          {"sourcetopic", "targettopic"},
	"large_payload":      {"topic", "sourcedir", "destinationdir"},
}

func TestIniOrigLoads(t *testing.T) {
	f := loadIni(t)
	raw, err := os.ReadFile(iniPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)

	for _, sec := range []string{"default", "consumer", "plaintext-msg-demo", "encryptor", "large_payload", "kafkagate",
		"policy:purchases", "policy:purchases_encrypted", "policy:purchases_large_encrypted"} {
		if !f.Has(sec) {
			t.Errorf("section [%s] missing", sec)
		}
	}
	// Original sections keep the original key spellings, nothing else
	// (sleep_ms added), and the SASL lines are there as comments.
	for sec, keys := range originalKeys {
		allowed := slices.Clone(keys)
		if sec == "plaintext-msg-demo" {
			allowed = append(allowed, "sleep_ms")
		}
		for k := range f.Section(sec) {
			if !slices.Contains(allowed, k) {
				t.Errorf("[%s] has key %q, not one of the original's %v", sec, k, keys)
			}
		}
		for _, k := range keys {
			_, active := f.Section(sec)[k]
			commented := regexp.MustCompile(`(?m)^#\s*` + regexp.QuoteMeta(k) + `\s*=`).MatchString(text)
			if !active && !(sec == "default" && commented) {
				t.Errorf("[%s] %s is missing (neither set nor shown as a comment)", sec, k)
			}
		}
	}
	for _, c := range []struct{ sec, key, want string }{
		{"default", "bootstrap.servers", "127.0.0.1:9092"},
		{"default", "security.protocol", "PLAINTEXT"},
		{"default", "message.max.bytes", largeMaxBytes},
		{"default", "enable.metrics.push", "false"},
		{"consumer", "group.id", "python_example_group_1"},
		{"consumer", "auto.offset.reset", "earliest"},
		{"plaintext-msg-demo", "topic", "purchases"},
		{"plaintext-msg-demo", "number_of_msg", "10"},
		{"plaintext-msg-demo", "sleep_ms", "1000"},
		{"encryptor", "sourcetopic", "purchases"},
		{"encryptor", "targettopic", "purchases_encrypted"},
		{"large_payload", "topic", "purchases_large_encrypted"},
		{"large_payload", "sourcedir", "source"},
		{"large_payload", "destinationdir", "destination"},
		{"kafkagate", "listen", "127.0.0.1:8080"},
		{"kafkagate", "transit_mount", "transit"},
	} {
		if got := f.Get(c.sec, c.key, "<absent>"); got != c.want {
			t.Errorf("[%s] %s = %q, want %q", c.sec, c.key, got, c.want)
		}
	}
	for _, re := range []string{`(?m)^#\s*security\.protocol\s*=\s*SASL_SSL\s*$`, `(?m)^#\s*sasl\.mechanisms\s*=\s*PLAIN\s*$`,
		`(?m)^#\s*sasl\.username\s*=\s*<API key>\s*$`, `(?m)^#\s*sasl\.password\s*=\s*<[^>]+>\s*$`} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no Confluent Cloud comment line matching %s", re)
		}
	}

	// Policies.
	// purchases: what the gateway encrypts when records are POSTed to it
	// (demo 1 writes plaintext there directly, bypassing the gateway).
	p, ok := f.Policies.For("purchases")
	if !ok || p.Mode != policy.Fields || p.TransitKey != "kafka-purchases" || len(p.Fields) != 3 {
		t.Errorf("[policy:purchases]: %+v, want fields mode with key kafka-purchases", p)
	}
	p, ok = f.Policies.For("purchases_encrypted")
	if !ok {
		t.Fatal("no [policy:purchases_encrypted]")
	}
	if p.Mode != policy.Fields || p.TransitKey != "kafka-purchases_encrypted" || !p.AAD {
		t.Errorf("[policy:purchases_encrypted]: mode %s transit_key %s aad %v, want fields kafka-purchases_encrypted true", p.Mode, p.TransitKey, p.AAD)
	}
	var fields []string
	for _, fl := range p.Fields {
		s := fl.PathString() + " " + string(fl.Mode)
		for _, k := range sortedKeys(fl.Options) {
			s += " " + k + "=" + fl.Options[k]
		}
		fields = append(fields, s)
	}
	if want := []string{"Name transit", "Address transit", "credit_card fpe domain=payments.card_number format=full"}; !slices.Equal(fields, want) {
		t.Errorf("[policy:purchases_encrypted] fields %q, want %q", fields, want)
	}
	p, ok = f.Policies.For("purchases_large_encrypted")
	if !ok || p.Mode != policy.Envelope || p.Envelope.Key != "kafkagate-envelope" || p.Envelope.DEK != "per-message" {
		t.Errorf("[policy:purchases_large_encrypted]: %+v, want envelope kafkagate-envelope per-message", p)
	}

	// ConfigParser has no inline comments: a "# ..." after a value would
	// become part of it. Comments start in column 0.
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";"):
			t.Errorf("line %d: indented comment %q (it would continue the previous value)", i+1, line)
		case strings.Contains(line, " #") || strings.Contains(line, " ;") || strings.Contains(line, "\t#"):
			t.Errorf("line %d: inline comment in %q", i+1, line)
		}
	}

	// No credentials.
	secretKey := regexp.MustCompile(`(?i)(password|secret|token|sasl\.username|api[._-]?key)`)
	for _, sec := range f.Sections() {
		for k, v := range f.Section(sec) {
			if secretKey.MatchString(k) && v != "" {
				t.Errorf("[%s] %s is set; credentials belong in the local getting_started.ini or the environment", sec, k)
			}
		}
	}
	for _, re := range credentialText {
		if re.MatchString(text) {
			t.Errorf("credential-looking text matching %s", re)
		}
	}
}

func TestIniWithoutSleepMsLoads(t *testing.T) {
	raw, err := os.ReadFile(iniPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^sleep_ms\s*[=:].*\n`)
	if n := len(re.FindAll(raw, -1)); n != 1 {
		t.Fatalf("expected exactly one sleep_ms line in %s, found %d", iniPath, n)
	}
	path := filepath.Join(t.TempDir(), "getting_started.ini")
	if err := os.WriteFile(path, re.ReplaceAll(raw, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatalf("a file without sleep_ms (like the original template) must load: %v", err)
	}
	if _, ok := f.Section("plaintext-msg-demo")["sleep_ms"]; ok {
		t.Error("sleep_ms still present after removing it")
	}
	if got := f.Get("plaintext-msg-demo", "sleep_ms", "1000"); got != "1000" {
		t.Errorf("Get with default: %q", got)
	}
	if got := f.Get("plaintext-msg-demo", "number_of_msg", ""); got != "10" {
		t.Errorf("number_of_msg = %q after removing sleep_ms", got)
	}
}

// ---------------------------------------------------------------------------
// The checks above can fail: feed them broken input.

func TestChecksCatchMistakes(t *testing.T) {
	t.Run("undeclared and unused variables", func(t *testing.T) {
		m, diags := parseModule("bad", map[string][]byte{"bad.tf": []byte(`
variable "topic" {
  description = "a topic"
  type        = string
  default     = "purchases"
}
locals { x = local.y }
resource "confluent_kafka_topic" "t" {
  topic_name = var.topik
}
`)})
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
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
		m, diags := parseModule("bad", map[string][]byte{"bad.tf": []byte(`
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
`)})
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		got := findCredentials(m)
		if len(got) != 4 {
			t.Errorf("findCredentials found %d problems, want 4 (token, default, key, hvs. text):\n%s", len(got), strings.Join(got, "\n"))
		}
	})
	t.Run("misspelled policy key", func(t *testing.T) {
		raw := mustRead(t, iniPath)
		bad := strings.Replace(raw, "transit_key = kafka-{topic}", "transit_kye = kafka-{topic}", 1)
		if bad == raw {
			t.Fatal("transit_key line not found")
		}
		if _, err := config.Parse([]byte(bad)); err == nil {
			t.Error("config.Parse accepted a misspelled transit_key")
		}
	})
	t.Run("transit key not created", func(t *testing.T) {
		raw := mustRead(t, iniPath)
		bad := strings.ReplaceAll(raw, "transit_key = kafka-{topic}", "transit_key = orders-{topic}")
		f, err := config.Parse([]byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		if got := missingTransitKeys(f, vaultEvaluator(t)); !strings.Contains(strings.Join(got, "\n"), `"orders-purchases_encrypted"`) {
			t.Errorf("missingTransitKeys = %q, want a problem about orders-purchases_encrypted", got)
		}
	})
	t.Run("topic renamed in the ini", func(t *testing.T) {
		raw := mustRead(t, iniPath)
		bad := strings.Replace(raw, "targettopic = purchases_encrypted", "targettopic = purchases_enc", 1)
		if bad == raw {
			t.Fatal("targettopic line not found")
		}
		f, err := config.Parse([]byte(bad))
		if err != nil {
			t.Fatal(err)
		}
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

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
