package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/meshward/meshward/mesh"
)

// evalQuery evaluates "x = <ref>" over the engine's policy and data.
func (e *Engine) evalQuery(ctx context.Context, input ast.Value, ref string) (ast.Value, error) {
	pq, err := rego.New(rego.Query("x = "+ref), rego.Compiler(e.policy.Load().compiler), rego.Store(e.store)).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalGenerateJSON(keepAST))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%s: %d results", ref, len(rs))
	}
	return rs[0].Bindings["x"].(ast.Value), nil
}

// mustEval evaluates a query over the engine's policy and data.
func mustEval(t *testing.T, e *Engine, input ast.Value, query string) ast.Value {
	t.Helper()
	v, err := e.evalQuery(context.Background(), input, query)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUserModules(t *testing.T) {
	frozen := `package meshward.ext

deny contains "writes are frozen" if input.attributes.request.http.method == "POST"
`
	debug := `package meshward.ext

allow if input.attributes.request.http.headers["x-debug"] == "1"
`
	objectResult := `package envoy.authz

default allow := {"allowed": false, "http_status": 418, "body": "no tea", "headers": {"x-why": "policy"}}

allow := {
	"allowed": true,
	"headers": {"x-ok": ["a", "b"]},
	"response_headers_to_add": [{"x-r": "1"}],
	"request_headers_to_remove": ["x-secret"],
	"dynamic_metadata": {"k": 1},
} if data.meshward.authz.allow
`
	// An opa-envoy-plugin policy in Rego v0, as written before OPA 1.0.
	classic := `package envoy.authz

import input.attributes.request.http as http_request

default allow = false

allow {
	http_request.method == "GET"
	startswith(http_request.path, "/public")
}
`
	tests := map[string]struct {
		modules map[string]string
		opts    Options
		req     Request
		want    Decision // ID is ignored; Reason is a prefix
		err     error
	}{
		"user deny explains a deny": {
			modules: map[string]string{"frozen.rego": frozen},
			req:     Request{Source: buyer, Destination: store, Method: "POST", Path: "/books-bought"},
			want:    Decision{Reason: "denied by data.meshward.ext.deny: writes are frozen"},
		},
		"user deny leaves other requests": {
			modules: map[string]string{"frozen.rego": frozen},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Allowed: true, Reason: "bookbuyer/bookbuyer may call", Matched: []string{"TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"}},
		},
		"user deny refuses an smi allow": {
			modules: map[string]string{"frozen.rego": strings.ReplaceAll(frozen, `"POST"`, `"GET"`)},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "denied by data.meshward.ext.deny: writes are frozen"},
		},
		"user allow adds": {
			modules: map[string]string{"debug.rego": debug},
			req:     get(thief, store, "/", map[string]string{"X-Debug": "1"}),
			want:    Decision{Allowed: true, Reason: "allowed by data.meshward.ext.allow; SMI access alone denies: no TrafficTarget allows bookthief/bookthief", Matched: []string{"data.meshward.ext.allow"}},
		},
		"user deny beats user allow": {
			modules: map[string]string{"debug.rego": debug, "frozen.rego": frozen},
			req:     Request{Source: thief, Destination: store, Method: "POST", Path: "/", Headers: map[string]string{"x-debug": "1"}},
			want:    Decision{Reason: "denied by data.meshward.ext.deny: writes are frozen"},
		},
		"object result allowed": {
			modules: map[string]string{"authz.rego": objectResult},
			req:     get(buyer, store, "/books-bought", nil),
			want: Decision{
				Allowed: true, Reason: "bookbuyer/bookbuyer may call bookstore/bookstore",
				Matched:                []string{"TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"},
				Headers:                map[string][]string{"x-ok": {"a", "b"}},
				ResponseHeadersToAdd:   map[string][]string{"x-r": {"1"}},
				RequestHeadersToRemove: []string{"x-secret"},
				DynamicMetadata:        map[string]any{"k": jsonNumber(1)},
			},
		},
		"object result denied": {
			modules: map[string]string{"authz.rego": objectResult},
			req:     get(thief, store, "/books-bought", nil),
			want: Decision{
				Reason: "no TrafficTarget allows", HTTPStatus: 418, Body: "no tea",
				Headers: map[string][]string{"x-why": {"policy"}},
			},
		},
		"rego v0 policy runs unchanged": {
			modules: map[string]string{"classic.rego": classic},
			req:     get(thief, store, "/public/index.html", nil),
			want:    Decision{Allowed: true, Reason: "allowed by the policy at envoy/authz/allow; SMI access alone denies: no TrafficTarget", Matched: []string{"policy envoy/authz/allow"}},
		},
		"replacement denies what smi allows": {
			modules: map[string]string{"classic.rego": classic},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "denied by the policy at envoy/authz/allow although SMI access allows it: bookbuyer/bookbuyer may call"},
		},
		"result with a reason": {
			modules: map[string]string{"r.rego": "package envoy.authz\n\nallow := {\"allowed\": false, \"reason\": \"closed for lunch\"}\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "closed for lunch (denied by the policy at envoy/authz/allow although SMI access allows it"},
		},
		"custom decision path": {
			modules: map[string]string{"my.rego": "package myorg.authz\n\nresult := data.meshward.authz.allow\n"},
			opts:    Options{DecisionPath: "myorg/authz/result"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Allowed: true, Reason: "bookbuyer/bookbuyer may call bookstore/bookstore", Matched: []string{"TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"}},
		},
		"undefined decision fails closed": {
			modules: map[string]string{"tcp.rego": "package envoy.authz\n\nallow if input.meshward.protocol == \"tcp\"\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "no decision, denied because the mesh fails closed: policy decision is undefined"},
			err:     ErrUndefinedDecision,
		},
		"string result fails closed": {
			modules: map[string]string{"s.rego": "package envoy.authz\n\nallow := \"yes\"\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "no decision, denied because the mesh fails closed: policy decision is neither"},
			err:     ErrInvalidDecision,
		},
		"object without allowed fails closed": {
			modules: map[string]string{"o.rego": "package envoy.authz\n\nallow := {\"headers\": {}}\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "no decision, denied"},
			err:     ErrInvalidDecision,
		},
		"bad http status fails closed": {
			modules: map[string]string{"o.rego": "package envoy.authz\n\nallow := {\"allowed\": true, \"http_status\": 999}\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "no decision, denied"},
			err:     ErrInvalidDecision,
		},
		"evaluation error fails closed": {
			modules: map[string]string{"c.rego": "package envoy.authz\n\nallow := true if input.meshward.protocol == \"http\"\n\nallow := false if input.meshward.protocol == \"http\"\n"},
			req:     get(buyer, store, "/books-bought", nil),
			want:    Decision{Reason: "no decision, denied because the mesh fails closed: policy evaluation failed"},
			err:     ErrEvaluation,
		},
		"dry run allows and says why": {
			opts: Options{DryRun: true},
			req:  get(thief, store, "/books-bought", nil),
			want: Decision{Allowed: true, DryRun: true, Reason: "dry run, allowed although the policy denies: no TrafficTarget allows bookthief/bookthief"},
		},
		"dry run keeps allows": {
			opts: Options{DryRun: true},
			req:  get(buyer, store, "/books-bought", nil),
			want: Decision{Allowed: true, DryRun: true, Reason: "bookbuyer/bookbuyer may call", Matched: []string{"TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, tc.opts, bookstore(), tc.modules)
			d, err := e.DecideRequest(context.Background(), tc.req)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			checkDecision(t, d, tc.want)
		})
	}
}

func jsonNumber(n int) any {
	v, _ := ast.JSON(ast.IntNumberTerm(n).Value)
	return v
}

func checkDecision(t *testing.T, got, want Decision) {
	t.Helper()
	if got.ID == "" {
		t.Error("decision has no id")
	}
	if !strings.HasPrefix(got.Reason, want.Reason) {
		t.Errorf("reason %q, want prefix %q", got.Reason, want.Reason)
	}
	if want.Matched == nil {
		want.Matched = []string{}
	}
	got.ID, got.Reason, want.Reason = "", "", ""
	if got.Headers != nil && len(got.Headers) == 0 {
		got.Headers = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decision\n got %+v\nwant %+v", got, want)
	}
}

func TestFailOpen(t *testing.T) {
	m := bookstore()
	m.Options.FailOpen = true
	e := newEngine(t, Options{}, m, map[string]string{"s.rego": "package envoy.authz\n\nallow := 1\n"})
	d, err := e.DecideRequest(context.Background(), get(thief, store, "/", nil))
	if !errors.Is(err, ErrInvalidDecision) || !d.Allowed || !strings.HasPrefix(d.Reason, "no decision, allowed because the mesh fails open") {
		t.Fatalf("decision %+v, %v; want allowed by fail-open with ErrInvalidDecision", d, err)
	}
}

func TestCompileErrorKeepsPreviousPolicy(t *testing.T) {
	ctx := context.Background()
	deny := map[string]string{"deny.rego": "package meshward.ext\n\ndeny contains \"no\" if true\n"}
	e := newEngine(t, Options{}, bookstore(), deny)
	req := get(buyer, store, "/books-bought", nil)

	tests := map[string]struct {
		modules map[string]string
		file    string
		line    int
		message string
		reason  error
	}{
		"parse error": {
			modules: map[string]string{"policies/bad.rego": "package meshward.ext\n\ndeny contains x if {\n\tx := \n}\n"},
			file:    "policies/bad.rego", line: 5, message: "rego_parse_error",
		},
		"unsafe variable": {
			modules: map[string]string{"unsafe.rego": "package meshward.ext\n\ndeny contains x if {\n\ty := 1\n}\n"},
			file:    "unsafe.rego", line: 3, message: "rego_unsafe_var_error",
		},
		"reserved package": {
			modules: map[string]string{"sneaky.rego": "package meshward.authz\n\nallow if true\n"},
			file:    "sneaky.rego", line: 1, message: "package meshward.authz is reserved", reason: ErrReservedPackage,
		},
		"reserved data path": {
			modules: map[string]string{"data.rego": "package meshward\n\naccess := {}\n"},
			file:    "data.rego", line: 1, message: "package meshward is reserved", reason: ErrReservedPackage,
		},
		"two defaults": {
			modules: map[string]string{"d.rego": "package meshward.ext\n\ndefault allow := false\n\ndefault allow := false\n"},
			file:    "d.rego", line: 1, message: "multiple default rules",
		},
		"boolean deny": {
			modules: map[string]string{"b.rego": "package meshward.ext\n\ndeny if true\n"},
			file:    "b.rego", line: 3, message: "must be a set of reasons",
		},
		"number allow": {
			modules: map[string]string{"n.rego": "package meshward.ext\n\nallow := 1\n"},
			file:    "n.rego", line: 3, message: "must be a boolean",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := e.SetUserModules(ctx, tc.modules)
			var ce *CompileError
			if !errors.Is(err, ErrCompile) || !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *CompileError", err)
			}
			if tc.reason != nil && !errors.Is(err, tc.reason) {
				t.Errorf("error %v does not match %v", err, tc.reason)
			}
			if tc.reason == nil && errors.Is(err, ErrReservedPackage) {
				t.Errorf("error %v matches ErrReservedPackage", err)
			}
			found := false
			for _, p := range ce.Problems {
				if p.File == tc.file && p.Line == tc.line && strings.Contains(p.Message, tc.message) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem at %s:%d with %q in %v", tc.file, tc.line, tc.message, ce.Problems)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %q does not name %s", err, tc.file)
			}
			if got := e.UserModules(); !reflect.DeepEqual(got, []string{"deny.rego"}) {
				t.Errorf("modules in force %v, want [deny.rego]", got)
			}
			d, err := e.DecideRequest(ctx, req)
			if err != nil || d.Allowed || !strings.HasPrefix(d.Reason, "denied by data.meshward.ext.deny: no") {
				t.Errorf("previous policy not in force: %+v, %v", d, err)
			}
		})
	}
}

func TestDecisionPathOption(t *testing.T) {
	for name, path := range map[string]string{"empty segment": "a//b", "no rule": "/"} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(context.Background(), Options{DecisionPath: path}); !errors.Is(err, ErrDecisionPath) {
				t.Fatalf("New(%q) error %v, want ErrDecisionPath", path, err)
			}
		})
	}
	e := newEngine(t, Options{DecisionPath: "/envoy/authz/allow/"}, (*mesh.Model)(nil), nil)
	if e.DecisionPath() != "/envoy/authz/allow/" {
		t.Fatal(e.DecisionPath())
	}
}
