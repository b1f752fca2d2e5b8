package terraformtest

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

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
