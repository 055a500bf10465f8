// Package planeval evaluates Rego queries from the plans OPA's planner
// makes of them: the intermediate representation (package ir) that OPA
// compiles to WebAssembly, interpreted here in Go over AST values.
//
// OPA plans the query and the modules it reads (rules become functions,
// base documents become lookups in data), so a plan holds no more than
// the statements a decision needs. Evaluating it skips the work of OPA's
// general evaluator (unification, bindings, backtracking): for meshward's
// built-in policy a decision takes a fraction of the time and memory.
//
// Only part of the IR is supported: the statements and the built-in
// functions listed in this package, no `with`, no dynamic calls and only
// deterministic built-ins that need nothing of the evaluation but its
// context. Prepare refuses any plan that goes further, with an error
// saying what, and the caller then evaluates the query with OPA's own
// evaluator. Built-in functions are OPA's own implementations.
package planeval

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// ErrUnsupported is wrapped by Prepare's error when the plan needs what
// this package does not do.
var ErrUnsupported = errors.New("plan not supported")

// Errors of evaluation, as OPA's evaluator reports them.
var (
	ErrConflict = errors.New("conflicting values")   // a complete rule or object rule with two values
	ErrFault    = errors.New("plan evaluator fault") // a bug of this package, reported instead of a crash
)

// target is the name under which this package receives plans from OPA.
const target = "meshward-planeval"

func init() { rego.RegisterPlugin(target, planner{}) }

// planner receives the plan of a query prepared with rego.Target(target)
// and hands it to the Prepare call waiting for it (through the context).
type planner struct{}

type planKey struct{}

func (planner) IsTarget(t string) bool { return t == target }

func (planner) PrepareForEval(ctx context.Context, p *ir.Policy, _ ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	out, ok := ctx.Value(planKey{}).(**ir.Policy)
	if !ok {
		return nil, fmt.Errorf("%w: target %s is only for planeval.Prepare", ErrUnsupported, target)
	}
	*out = p
	return unusable{}, nil
}

// unusable is the evaluator OPA keeps for the target; Prepare's caller
// uses the Program instead.
type unusable struct{}

func (unusable) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, fmt.Errorf("%w: evaluate with planeval.Program", ErrUnsupported)
}

// Program is a prepared query. It is safe for concurrent use.
type Program struct {
	plan *block
	// frames pools evaluations' local variable stacks.
	frames sync.Pool
}

// function is a planned rule (or function) or a built-in.
type function struct {
	params  []ir.Local
	ret     ir.Local
	blocks  []*block
	nlocals int
	// memo is true for rules without arguments (input and data only):
	// evaluated once per evaluation, as OPA's virtual document cache does.
	memo  bool
	index int
	// builtin is set for built-in functions.
	builtin topdown.BuiltinFunc
}

// Prepare plans query over the compiled modules and prepares it. The
// error wraps ErrUnsupported when the plan needs a statement or a
// built-in function this package does not support.
func Prepare(ctx context.Context, compiler *ast.Compiler, query ast.Body) (*Program, error) {
	var pol *ir.Policy
	pctx := context.WithValue(ctx, planKey{}, &pol)
	_, err := rego.New(rego.ParsedQuery(query), rego.Compiler(compiler), rego.Target(target)).PrepareForEval(pctx)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, fmt.Errorf("%w: OPA made no plan", ErrUnsupported)
	}
	return load(pol)
}

// Eval evaluates the query with input and data (either may be nil) and
// returns its result set: one object per solution, binding the query's
// variables.
func (p *Program) Eval(ctx context.Context, input, data *ast.Term, opts Options) (_ []ast.Value, err error) {
	e := p.frames.Get().(*eval)
	defer func() {
		// A fault of this evaluator fails the evaluation, not the process.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrFault, r)
			return // e is not returned to the pool
		}
		p.put(e)
	}()
	e.bctx = topdown.BuiltinContext{
		Context:                     ctx,
		Metrics:                     noMetrics,
		Cancel:                      opts.Cancel,
		InterQueryBuiltinValueCache: opts.RegexCache,
	}
	e.results = e.results[:0]
	base := e.push(p.plan.nlocals)
	e.stack[base+int(ir.Input)] = input
	e.stack[base+int(ir.Data)] = data
	if _, _, err := p.plan.exec(e, base); err != nil {
		return nil, err
	}
	out := make([]ast.Value, len(e.results))
	for i, t := range e.results {
		out[i] = t.Value
	}
	return out, nil
}

// Options are the evaluation's settings.
type Options struct {
	// Cancel, when not nil, stops the evaluation when cancelled.
	Cancel topdown.Cancel
	// RegexCache, when not nil, keeps compiled expressions for the
	// regex built-ins (see topdown.BuiltinContext).
	RegexCache cache.InterQueryValueCache
}

var noMetrics = metrics.NoOp()

func (p *Program) put(e *eval) {
	clear(e.stack)
	e.stack = e.stack[:0]
	clear(e.memo)
	clear(e.results)
	e.depth = 0
	e.bctx = topdown.BuiltinContext{}
	p.frames.Put(e)
}

// eval is the state of one evaluation: a stack of local variables (each
// function call pushes its frame), the memoised rules and the results.
type eval struct {
	stack   []*ast.Term
	memo    []memoEntry
	results []*ast.Term
	args    []*ast.Term
	bctx    topdown.BuiltinContext
	steps   int
	// scans are the states of nested scans, depth of them in use.
	scans []*scanState
	depth int
	// out receives a built-in's result through setOut, e.setOutput bound
	// once (built-ins never call back into the evaluation).
	out    *ast.Term
	setOut func(*ast.Term) error
}

func (e *eval) setOutput(t *ast.Term) error {
	e.out = t
	return nil
}

type memoEntry struct {
	done  bool
	value *ast.Term // nil when undefined
}

// push reserves n cleared locals and returns the frame's base.
func (e *eval) push(n int) int {
	base := len(e.stack)
	e.stack = append(e.stack, make([]*ast.Term, n)...)
	return base
}

func (e *eval) pop(base int) {
	clear(e.stack[base:])
	e.stack = e.stack[:base]
}

// cancelled reports whether the evaluation was cancelled, looking every
// 64 steps.
func (e *eval) cancelled() error {
	e.steps++
	if e.steps&63 == 0 && e.bctx.Cancel != nil && e.bctx.Cancel.Cancelled() {
		return &topdown.Error{Code: topdown.CancelErr, Message: "caller cancelled query execution"}
	}
	return nil
}
