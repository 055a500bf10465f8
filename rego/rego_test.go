package rego

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// regoFiles reads every .rego file of the package directory, tests included.
func regoFiles(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("*.rego")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

func parse(t *testing.T, files map[string]string) map[string]*ast.Module {
	t.Helper()
	out := make(map[string]*ast.Module, len(files))
	for name, src := range files {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		out[name] = m
	}
	return out
}

// TestRego runs the _test.rego files, as `opa test` does.
func TestRego(t *testing.T) {
	ctx := context.Background()
	modules := parse(t, regoFiles(t))
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithStrict(true)).
		SetStore(inmem.New()).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		RunTests(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for r := range ch {
		ran++
		if !r.Pass() {
			msg := r.String()
			if r.Error != nil {
				msg += ": " + r.Error.Error()
			}
			if len(r.Output) > 0 {
				msg += "\n" + string(r.Output)
			}
			t.Errorf("%s", msg)
		}
	}
	if ran < 10 {
		t.Fatalf("only %d Rego tests ran", ran)
	}
	t.Logf("%d Rego tests ran", ran)
}

// TestFormat checks that every file is as `opa fmt` writes it.
func TestFormat(t *testing.T) {
	for name, src := range regoFiles(t) {
		got, err := format.SourceWithOpts(name, []byte(src), format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, []byte(src)) {
			t.Errorf("%s is not formatted: run opa fmt -w, or write it as:\n%s", name, got)
		}
	}
}

// TestStrict compiles every file in strict mode, as `opa check --strict`.
func TestStrict(t *testing.T) {
	c := ast.NewCompiler().WithStrict(true)
	c.Compile(parse(t, regoFiles(t)))
	if c.Failed() {
		t.Fatal(c.Errors)
	}
}

// TestModules checks the embedded modules: every non-test file, with its
// package.
func TestModules(t *testing.T) {
	var want []string
	for name := range regoFiles(t) {
		if !strings.HasSuffix(name, "_test.rego") {
			want = append(want, name)
		}
	}
	slices.Sort(want)
	var got []string
	for _, m := range Modules() {
		got = append(got, m.Name)
		if m.Package == "" || m.Source == "" {
			t.Errorf("%s: package %q, %d bytes", m.Name, m.Package, len(m.Source))
		}
		if m.Name == "envoy_authz.rego" && m.Package != EntryPackage {
			t.Errorf("entry module declares %q, want %q", m.Package, EntryPackage)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("embedded %v, want %v", got, want)
	}
}
