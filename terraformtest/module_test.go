package terraformtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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
