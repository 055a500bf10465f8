package planeval

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// module exercises the Rego the plans of the built-in policy are made
// of, and more: rules with defaults and else, partial sets and objects,
// functions, negation, every, comprehensions, base and virtual documents
// side by side, and built-ins.
const module = `package t

import rego.v1

default allow := false

allow if count(matched) > 0

allow if input.admin == true

matched contains r.name if {
	some r in data.rules[input.dst][input.src]
	regex.match(r.path, input.path)
	every h in r.headers {
		regex.match(h.re, input.headers[h.name])
	}
}

kinds contains k if {
	some r in data.rules[input.dst][input.src]
	some k in ["http", "tcp"]
	r[k]
}

by_name[r.name] := r.path if {
	some r in data.rules[input.dst][input.src]
}

reason := "admin" if {
	input.admin == true
} else := sprintf("%d rules match %s", [count(matched), input.path]) if {
	count(matched) > 0
} else := "denied"

not_listed if not data.rules[input.dst][input.src]

double(x) := y if y := x * 2

doubled := [double(n) | some n in input.numbers]

names := {n | some n, _ in data.rules}

pairs := {d: count(srcs) | some d, srcs in data.rules}

in_net if net.cidr_contains("10.0.0.0/8", input.ip)

suffix if endswith(object.get(input, "path", ""), "/x")

starts := [s | some s in input.strings; startswith(s, "a")]

conflict := input.a

conflict := input.b

first := input.numbers[0]

has_two if 2 in input.numbers

set_member if "b" in {"a", "b"}

nothing if input.missing.deeper

keyed[k] := 1 if k := input.k1

keyed[k] := 2 if k := input.k2
`

var data = map[string]any{
	"rules": map[string]any{
		"app": map[string]any{
			"client": []any{
				map[string]any{"name": "read", "path": "^/api/.*", "headers": []any{}, "http": true},
				map[string]any{"name": "write", "path": "^/api/items$", "headers": []any{
					map[string]any{"name": "x-client", "re": "^client-.*$"},
				}, "http": true},
				map[string]any{"name": "port", "path": "^$", "headers": []any{}, "tcp": true},
			},
		},
		"db": map[string]any{"app": []any{}},
	},
}

var inputs = []string{
	`{}`,
	`{"dst": "app", "src": "client", "path": "/api/books", "headers": {}}`,
	`{"dst": "app", "src": "client", "path": "/api/items", "headers": {"x-client": "client-1"}}`,
	`{"dst": "app", "src": "client", "path": "/api/items", "headers": {"x-client": "other"}}`,
	`{"dst": "app", "src": "client", "path": "/api/items"}`,
	`{"dst": "app", "src": "thief", "path": "/api/books", "headers": {}}`,
	`{"dst": "db", "src": "app", "path": "/", "admin": true}`,
	`{"dst": "app", "src": "client", "path": 7, "headers": []}`,
	`{"numbers": [1, 2, 3], "ip": "10.1.2.3", "path": "/a/x", "strings": ["ab", "b", "ac"]}`,
	`{"numbers": [], "ip": "not an address", "strings": "no"}`,
	`{"a": 1, "b": 1}`,
	`{"a": 1}`,
	`{"a": 1, "b": 2}`,
	`{"k1": "x", "k2": "y"}`,
	`{"k1": "x", "k2": "x"}`,
}

var queries = []string{
	"x = data.t.allow",
	"x = data.t.matched; y = data.t.allow",
	"x = data.t.kinds",
	"x = data.t.by_name",
	"x = data.t.reason",
	"x = data.t.not_listed",
	"x = data.t.doubled",
	"x = data.t.names",
	"x = data.t.pairs",
	"x = data.t.in_net",
	"x = data.t.suffix",
	"x = data.t.starts",
	"x = data.t.first",
	"x = data.t.has_two",
	"x = data.t.set_member",
	"x = data.t.nothing",
	"x = data.t.keyed",
	"x = data.t.conflict",
	"x = data.rules[input.dst][input.src]",
	`some r in data.rules.app.client; x = r.name`,
}

// TestAgreesWithOPA evaluates every query for every input with OPA's
// evaluator and with the plan, and wants the same result sets.
func TestAgreesWithOPA(t *testing.T) {
	ctx := context.Background()
	c := compile(t, module)
	store := inmem.NewFromObject(data)
	dataTerm := ast.NewTerm(ast.MustInterfaceToValue(data))
	for _, q := range queries {
		body := ast.MustParseBody(q)
		prog, err := Prepare(ctx, c, body)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		pq, err := rego.New(rego.ParsedQuery(body), rego.Compiler(c), rego.Store(store)).PrepareForEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			input := ast.MustParseTerm(in).Value
			rs, opaErr := pq.Eval(ctx, rego.EvalParsedInput(input))
			got, err := prog.Eval(ctx, ast.NewTerm(input), dataTerm, Options{})
			if (opaErr != nil) != (err != nil) {
				t.Errorf("%s with %s: error %v, OPA's %v", q, in, err, opaErr)
				continue
			}
			if opaErr != nil {
				continue
			}
			want := make([]string, 0, len(rs))
			for _, r := range rs {
				want = append(want, canonical(t, r.Bindings))
			}
			have := make([]string, 0, len(got))
			for _, v := range got {
				obj := map[string]any{}
				if err := v.(ast.Object).Iter(func(k, v *ast.Term) error {
					if name := string(k.Value.(ast.String)); !strings.HasPrefix(name, "__") {
						j, err := ast.JSON(v.Value)
						obj[name] = j
						return err
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				have = append(have, canonical(t, obj))
			}
			slices.Sort(want)
			slices.Sort(have)
			if !slices.Equal(have, want) {
				t.Errorf("%s with %s:\n got %v\nwant %v", q, in, have, want)
			}
		}
	}
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compile(t *testing.T, src string) *ast.Compiler {
	t.Helper()
	m, err := ast.ParseModuleWithOpts("t.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	c := ast.NewCompiler()
	if c.Compile(map[string]*ast.Module{"t.rego": m}); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

// TestRefusesWhatItDoesNotSupport checks that Prepare names what a plan
// needs and this package lacks, so that callers fall back to OPA.
func TestRefusesWhatItDoesNotSupport(t *testing.T) {
	for name, c := range map[string]struct{ module, query, want string }{
		"non-deterministic built-in": {"package u\nx := time.now_ns()", "x = data.u.x", "time.now_ns"},
		"with":                       {"package u\nx := input.a\ny := z if z := x with input.a as 1", "y = data.u.y", "With"},
		"a whole package":            {"package u\nx := input.a\ny := 2", "x = data.u", "ObjectMerge"},
		"built-in not listed":        {"package u\nx := base64.encode(input.a)", "x = data.u.x", "base64.encode"},
	} {
		t.Run(name, func(t *testing.T) {
			comp := compile(t, c.module)
			_, err := Prepare(context.Background(), comp, ast.MustParseBody(c.query))
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Prepare: %v; want ErrUnsupported naming %s", err, c.want)
			}
		})
	}
}

// TestCancelled checks that a cancelled evaluation stops with OPA's
// cancellation error.
func TestCancelled(t *testing.T) {
	c := compile(t, "package u\nn := count([x | some x in numbers.range(1, 100000); x > 0])")
	_, err := Prepare(context.Background(), c, ast.MustParseBody("x = data.u.n"))
	if !errors.Is(err, ErrUnsupported) {
		// numbers.range is not listed: use a scan over input instead.
		t.Fatalf("Prepare: %v", err)
	}
	c = compile(t, "package u\nn := count([x | some x in input.numbers; x > 0])")
	prog, err := Prepare(context.Background(), c, ast.MustParseBody("x = data.u.n"))
	if err != nil {
		t.Fatal(err)
	}
	numbers := make([]*ast.Term, 10000)
	for i := range numbers {
		numbers[i] = ast.InternedTerm(i + 1)
	}
	cancel := topdown.NewCancel()
	cancel.Cancel()
	input := ast.ObjectTerm(ast.Item(ast.StringTerm("numbers"), ast.ArrayTerm(numbers...)))
	_, err = prog.Eval(context.Background(), input, ast.ObjectTerm(), Options{Cancel: cancel})
	var te *topdown.Error
	if !errors.As(err, &te) || te.Code != topdown.CancelErr {
		t.Errorf("Eval after cancel: %v; want a cancellation error", err)
	}
}

// panicking stands for a fault of the evaluator.
type panicking struct{}

func (panicking) exec(*eval, int) (bool, uint32, error) { panic("fault") }

// TestFaultIsAnError checks that a fault of the evaluator fails the
// evaluation with ErrFault instead of the process.
func TestFaultIsAnError(t *testing.T) {
	p := &Program{plan: &block{stmts: []stmt{panicking{}}, nlocals: 2}}
	p.frames.New = func() any { return &eval{} }
	_, err := p.Eval(context.Background(), nil, ast.ObjectTerm(), Options{})
	if !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), "fault") {
		t.Errorf("Eval: %v; want ErrFault", err)
	}
}
