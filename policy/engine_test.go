package policy

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/internal/pathnorm"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy/policytest"
)

func newEngine(t *testing.T, opts Options, m *mesh.Model, modules map[string]string) *Engine {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := e.SetUserModules(ctx, modules); err != nil {
		t.Fatal(err)
	}
	return e
}

const (
	buyer     = "bookbuyer/bookbuyer"
	thief     = "bookthief/bookthief"
	store     = "bookstore/bookstore"
	storeV2   = "bookstore/bookstore-v2"
	warehouse = "bookwarehouse/bookwarehouse"
)

func get(src, dst, path string, headers map[string]string) Request {
	return Request{Source: src, Destination: dst, Method: "GET", Path: path, Headers: headers}
}

func tcp(src, dst string, port uint32) Request {
	return Request{Source: src, Destination: dst, Protocol: ProtocolTCP, Port: port}
}

func TestDecideBuiltin(t *testing.T) {
	e := newEngine(t, Options{}, bookstore(), nil)
	booksBought := "TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"
	tests := map[string]struct {
		req     Request
		allowed bool
		reason  string // a regular expression
		matched []string
	}{
		"listed match": {
			req: get(buyer, store, "/books-bought", nil), allowed: true,
			reason: "^bookbuyer/bookbuyer may call bookstore/bookstore: " + regexp.QuoteMeta(booksBought) + "$", matched: []string{booksBought},
		},
		"query is not part of the path": {req: get(buyer, store, "/books-bought?limit=10", nil), allowed: true},
		"dot segments are removed":      {req: get(buyer, store, "/x/../books-bought", nil), allowed: true},
		"spiffe principals": {
			req:     get("spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer", "spiffe://cluster.local/ns/bookstore/sa/bookstore", "/books-bought", nil),
			allowed: true,
		},
		"dns principals in a spiffe mesh": {
			// One principal format per mesh, the one its certificates carry
			// and Envoy's RBAC matches: the other form names nobody.
			req:    get("bookbuyer.bookbuyer.cluster.local", "bookstore.bookstore.cluster.local", "/books-bought", nil),
			reason: `^source principal "bookbuyer.bookbuyer.cluster.local" is not in the mesh$`,
		},
		"header matches": {req: get(buyer, storeV2, "/buy-a-book/new", map[string]string{"User-Agent": "bookbuyer/1.0"}), allowed: true},
		"header does not match": {
			req:    get(buyer, store, "/buy-a-book/new", map[string]string{"user-agent": "curl/8.0"}),
			reason: "^no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore allows GET /buy-a-book/new$",
		},
		"method does not match": {req: Request{Source: buyer, Destination: store, Method: "POST", Path: "/books-bought"}},
		"unlisted caller":       {req: get(thief, store, "/books-bought", nil), reason: "^no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore$"},
		"unknown caller": {
			req:    get("spiffe://cluster.local/ns/x/sa/y", store, "/", nil),
			reason: `^source principal "spiffe://cluster.local/ns/x/sa/y" is not in the mesh$`,
		},
		"unknown caller by name": {
			req:    get("x/y", store, "/", nil),
			reason: `^source principal "spiffe://cluster.local/ns/x/sa/y" is not in the mesh$`,
		},
		"no caller": {req: get("", store, "/", nil), reason: "^the request has no source principal"},
		"tcp port rule": {
			req: tcp(store, warehouse, 14001), allowed: true,
			matched: []string{"TrafficTarget bookwarehouse/bookstore-access-bookwarehouse: TCPRoute bookwarehouse/bookwarehouse-tcp match bookwarehouse-port"},
		},
		"tcp other port":        {req: tcp(store, warehouse, 80), reason: "allows port 80$"},
		"http rules do not tcp": {req: tcp(buyer, store, 14001), reason: "^HTTP rules do not allow TCP: "},
		"encoded slash refused": {req: get(buyer, store, "/books-bought%2fx", nil), reason: `encoded slash`},
		"bad protocol refused":  {req: Request{Source: buyer, Destination: store, Protocol: "sctp"}, reason: `protocol "sctp" is not`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := e.DecideRequest(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%s)", d.Allowed, tc.allowed, d.Reason)
			}
			if tc.reason != "" && !regexp.MustCompile(tc.reason).MatchString(d.Reason) {
				t.Errorf("reason %q does not match %q", d.Reason, tc.reason)
			}
			if tc.matched != nil && strings.Join(d.Matched, "\n") != strings.Join(tc.matched, "\n") {
				t.Errorf("matched %q, want %q", d.Matched, tc.matched)
			}
			if !tc.allowed && len(d.Matched) != 0 {
				t.Errorf("denied with matched rules %q", d.Matched)
			}
			if d.Matched == nil {
				t.Error("matched is nil, want a list")
			}
		})
	}
}

func TestInvalidPathIsADeny(t *testing.T) {
	e := newEngine(t, Options{}, bookstore(), nil)
	_, err := e.Input(get(buyer, store, "/a/..;/b", nil))
	if !errors.Is(err, ErrInvalidRequest) || !errors.Is(err, pathnorm.ErrDotSegmentParams) {
		t.Fatalf("Input error = %v, want ErrInvalidRequest and ErrDotSegmentParams", err)
	}
	d, err := e.DecideRequest(context.Background(), get(buyer, store, "/a/..;/b", nil))
	if err != nil || d.Allowed || d.ID == "" {
		t.Fatalf("decision %+v, %v; want a deny without error", d, err)
	}
}

func TestPermissive(t *testing.T) {
	m := bookstore()
	m.Options.Permissive = true
	e := newEngine(t, Options{}, m, nil)
	d, err := e.DecideRequest(context.Background(), get(thief, warehouse, "/anything", nil))
	if err != nil || !d.Allowed || !strings.HasPrefix(d.Reason, "permissive mode allows bookthief/bookthief to call bookwarehouse/bookwarehouse") {
		t.Fatalf("decision %+v, %v; want allowed by permissive mode", d, err)
	}
	d, _ = e.DecideRequest(context.Background(), get("x/y", warehouse, "/", nil))
	if d.Allowed {
		t.Fatalf("permissive mode allowed a caller outside the mesh: %+v", d)
	}
}

// TestAllowedReasonMatchesRego checks that the reason the engine builds for
// allowed requests is the reason of data.meshward.authz.decision.
func TestAllowedReasonMatchesRego(t *testing.T) {
	ctx := context.Background()
	open := bookstore()
	open.Options.Permissive = true
	for name, tc := range map[string]struct {
		m   *mesh.Model
		req Request
	}{
		"matched":    {bookstore(), get(buyer, store, "/books-bought", nil)},
		"permissive": {open, get(thief, store, "/", nil)},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, Options{}, tc.m, nil)
			d, err := e.DecideRequest(ctx, tc.req)
			if err != nil || !d.Allowed {
				t.Fatalf("decision %+v, %v", d, err)
			}
			in, _ := e.Input(tc.req)
			if want := mustEval(t, e, in, "data.meshward.authz.decision.reason").String(); want != `"`+d.Reason+`"` {
				t.Fatalf("engine reason %q, Rego reason %s", d.Reason, want)
			}
		})
	}
}

func TestDecisionIDs(t *testing.T) {
	e := newEngine(t, Options{}, bookstore(), nil)
	seen := map[string]bool{}
	hex := regexp.MustCompile("^[0-9a-f]{32}$")
	for range 200 {
		d, _ := e.DecideRequest(context.Background(), get(thief, store, "/", nil))
		if !hex.MatchString(d.ID) || seen[d.ID] {
			t.Fatalf("id %q is not 32 hex digits or repeats", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestUpdateSwapsData(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{}, nil, nil)
	req := get(buyer, store, "/books-bought", nil)
	if d, _ := e.DecideRequest(ctx, req); d.Allowed {
		t.Fatal("allowed before any model")
	}
	if err := e.Update(ctx, bookstore()); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.DecideRequest(ctx, req); !d.Allowed {
		t.Fatalf("denied after the update: %s", d.Reason)
	}
	if err := e.Update(ctx, &mesh.Model{Options: mesh.DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.DecideRequest(ctx, req); d.Allowed {
		t.Fatal("allowed after the access rules were removed")
	}
}

func TestConcurrentDecisionsAndUpdates(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{}, bookstore(), nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.DecideRequest(ctx, get(buyer, store, "/books-bought", nil)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 20 {
		if err := e.Update(ctx, bookstore()); err != nil {
			t.Fatal(err)
		}
		mods := map[string]string{}
		if i%2 == 0 {
			mods["x.rego"] = "package meshward.ext\n\ndeny contains \"x\" if false\n"
		}
		if err := e.SetUserModules(ctx, mods); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestCancelledEvaluationFailsClosed(t *testing.T) {
	slow := map[string]string{"slow.rego": `package envoy.authz

default allow := false

allow if {
	some i in numbers.range(1, 5000)
	some j in numbers.range(1, 5000)
	i * j == -1
}
`}
	e := newEngine(t, Options{}, bookstore(), slow)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d, err := e.DecideRequest(ctx, get(buyer, store, "/books-bought", nil))
	if !errors.Is(err, ErrEvaluation) || d.Allowed {
		t.Fatalf("decision %+v, %v; want a deny with ErrEvaluation", d, err)
	}
}

// TestCompiledExpressionsAreKept checks that the engine keeps the regular
// expressions of a mesh with more matches than OPA's own cache holds
// (100), up to Options.RegexCacheSize, and that decisions are the same
// with a cache too small for them.
func TestCompiledExpressionsAreKept(t *testing.T) {
	const n = 300
	ctx := context.Background()
	m := policytest.DistinctPaths(n)
	pattern := func(i int) ast.Value {
		return ast.String(AnchorPath(m.Access[i].HTTP[0].PathRegex, m.Options.PathMatch))
	}
	for _, c := range []struct {
		size     int
		min, max int
	}{{0, n, n}, {10, 1, 10}} {
		e, err := New(ctx, Options{CacheSize: -1, RegexCacheSize: c.size})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := benchRequest(i)
			r.Path = policytest.DistinctPath(i)
			if d, err := e.DecideRequest(ctx, r); err != nil || !d.Allowed {
				t.Fatalf("size %d: request %d: %+v, %v; want allowed", c.size, i, d, err)
			}
			r.Path = policytest.DistinctPath(i + 1)
			if d, err := e.DecideRequest(ctx, r); err != nil || d.Allowed {
				t.Fatalf("size %d: request %d for the next target's path: %+v, %v; want denied", c.size, i, d, err)
			}
		}
		kept := 0
		for i := range n {
			if re, ok := e.regexes.Get(pattern(i)); ok {
				if _, ok := re.(*regexp.Regexp); !ok {
					t.Fatalf("size %d: cache holds %T for %v", c.size, re, pattern(i))
				}
				kept++
			}
		}
		if kept < c.min || kept > c.max {
			t.Errorf("size %d: %d of %d path expressions kept, want %d to %d", c.size, kept, n, c.min, c.max)
		}
	}
	e, err := New(ctx, Options{RegexCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if e.regexes != nil || e.regexOpt != nil {
		t.Error("RegexCacheSize -1: the engine has a cache of its own, want OPA's")
	}
}

// TestEvaluators checks which evaluator decides: the built-in policy's
// plans by default, OPA's evaluator when asked or when a user module is
// loaded, and an error for an unknown evaluator.
func TestEvaluators(t *testing.T) {
	for _, c := range []struct {
		name    string
		opts    Options
		modules map[string]string
		planned bool
	}{
		{"default", Options{}, nil, true},
		{"plan", Options{Evaluator: EvaluatorPlan}, nil, true},
		{"opa", Options{Evaluator: EvaluatorOPA}, nil, false},
		{"user module", Options{}, map[string]string{"u.rego": "package meshward.ext\n\nallow if input.admin\n"}, false},
		{"other decision path", Options{DecisionPath: "meshward/authz/allow"}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, c.opts, bookstore(), c.modules)
			if p := e.policy.Load(); (p.decidePlan != nil) != c.planned || (p.explainPlan != nil) != c.planned {
				t.Errorf("planned: decision %v, explanation %v; want %v", p.decidePlan != nil, p.explainPlan != nil, c.planned)
			}
			d, err := e.DecideRequest(context.Background(), get(buyer, store, "/books-bought", nil))
			if err != nil || !d.Allowed {
				t.Errorf("decision %+v, %v; want allowed", d, err)
			}
		})
	}
	if _, err := New(context.Background(), Options{Evaluator: "wasm"}); !errors.Is(err, ErrEvaluator) || !strings.Contains(err.Error(), `"wasm"`) {
		t.Errorf("New with evaluator wasm: %v; want ErrEvaluator naming it", err)
	}
}
