// Package rego holds meshward's built-in Rego policies, embedded in the
// binary: the SMI access decision (package meshward.authz, data document at
// data.meshward), its explanations, the hooks for user policy
// (package meshward.ext) and the default decision at envoy/authz/allow
// (package envoy.authz). The policy package compiles them with user modules;
// docs/policy.md describes the documents they read.
//
// Every module has a _test.rego file next to it; the Go tests of this
// package run them, check `opa fmt` formatting and compile in strict mode.
package rego

import (
	"embed"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:embed authz.rego reason.rego ext.rego envoy_authz.rego ingress.rego egress.rego
var files embed.FS

// Module is one built-in Rego file.
type Module struct {
	// Name is the file name, used in error locations.
	Name string
	// Package is the Rego package the module declares, without "data.".
	Package string
	// Source is the module text.
	Source string
}

// EntryPackage is the package of the default decision module. It is left
// out when a user module declares the same package.
const EntryPackage = "envoy.authz"

// DefaultDecisionPath is the decision the ext_authz server evaluates unless
// configured otherwise, as in opa-envoy-plugin.
const DefaultDecisionPath = "envoy/authz/allow"

// References the policy engine evaluates next to the decision path: the
// matched rules with every decision, the explanation when a decision needs
// more explaining than its matched rules, and SMI access alone and its
// reason, which are the default decision and its explanation when no user
// module extends it (package meshward.ext).
const (
	MatchedRef = "data.meshward.authz.matched"
	ExplainRef = "data.meshward.authz.explain"
	AccessRef  = "data.meshward.authz.allow"
	ReasonRef  = "data.meshward.authz.reason"
)

// DefaultDecisionRef is DefaultDecisionPath as a reference.
var DefaultDecisionRef = ast.MustParseRef("data." + strings.ReplaceAll(DefaultDecisionPath, "/", "."))

// Modules returns the built-in modules sorted by name.
func Modules() []Module {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		panic(err) // the embedded directory always exists
	}
	out := make([]Module, 0, len(entries))
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		src := string(b)
		out = append(out, Module{Name: e.Name(), Package: packageOf(src), Source: src})
	}
	slices.SortFunc(out, func(a, b Module) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// packageOf returns the package declared by a built-in module.
func packageOf(src string) string {
	for line := range strings.SplitSeq(src, "\n") {
		if p, ok := strings.CutPrefix(line, "package "); ok {
			return strings.TrimSpace(p)
		}
	}
	return ""
}
