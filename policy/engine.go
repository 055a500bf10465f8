package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy/planeval"
	builtin "github.com/meshward/meshward/rego"
)

// Errors of the engine. Decide wraps ErrUndefinedDecision,
// ErrInvalidDecision or ErrEvaluation; SetUserModules returns a
// *CompileError, which matches ErrCompile (and ErrReservedPackage when a
// module uses a package meshward reserves).
var (
	ErrUndefinedDecision = errors.New("policy decision is undefined")
	ErrInvalidDecision   = errors.New("policy decision is neither a boolean nor an object with a boolean \"allowed\"")
	ErrEvaluation        = errors.New("policy evaluation failed")
	ErrCompile           = errors.New("policy does not compile")
	ErrReservedPackage   = errors.New("package is reserved for meshward's built-in policy")
	ErrDecisionPath      = errors.New("invalid decision path")
)

// Options configure an Engine.
type Options struct {
	// DecisionPath is the rule whose value is the decision, "/"-separated
	// under data (default envoy/authz/allow, as in opa-envoy-plugin).
	DecisionPath string
	// DryRun makes every decision an allow; the real decision is logged
	// and reported in the Decision's reason.
	DryRun bool
	// Log receives dry-run decisions and policy reloads.
	Log logr.Logger
	// CacheSize is how many decisions of the built-in policy the engine
	// memoises (DefaultCacheSize when 0; a negative size turns
	// memoisation off). Decisions are memoised only while no user module
	// is loaded; the cache is emptied whenever the policy data (see
	// Update) or the policy changes.
	CacheSize int
	// RegexCacheSize bounds the compiled regular expressions the engine
	// keeps between decisions (DefaultRegexCacheSize when 0). Every
	// HTTPRouteGroup match is a few expressions; OPA alone keeps 100,
	// shared by the process, so a busier mesh would compile expressions
	// on every decision. A negative size leaves that to OPA.
	RegexCacheSize int
	// Evaluator chooses how the built-in policy is evaluated while no user
	// module is loaded: EvaluatorPlan (the default when empty) or
	// EvaluatorOPA. User modules are always evaluated by OPA's evaluator.
	Evaluator string
	// Registry, when not nil, receives the engine's metrics.
	Registry prometheus.Registerer
}

// The evaluators of Options.Evaluator.
const (
	// EvaluatorPlan evaluates the plans OPA's planner makes of the
	// built-in policy's queries (package planeval), falling back to OPA's
	// evaluator for a policy the plan evaluator does not support.
	EvaluatorPlan = "plan"
	// EvaluatorOPA evaluates every query with OPA's evaluator (topdown).
	EvaluatorOPA = "opa"
)

// ErrEvaluator is returned by New for an unknown Options.Evaluator.
var ErrEvaluator = errors.New("unknown policy evaluator")

// DefaultRegexCacheSize is the number of compiled regular expressions the
// engine keeps when Options.RegexCacheSize is 0: the expressions of a few
// thousand HTTPRouteGroup matches in active use, a few MiB.
const DefaultRegexCacheSize = 4096

// Engine decides requests with OPA: built-in Rego, user modules and the
// mesh model's data document. It is safe for concurrent use; Update and
// SetUserModules may run while decisions are made.
type Engine struct {
	opts  Options
	store storage.Store
	// decide is the query of every decision: the decision path's value
	// and the rules of the built-in policy that match. explain is
	// evaluated only when a decision needs more explaining than that.
	decide, explain ast.Body
	// decideSMI is decide with SMI access (data.meshward.authz.allow) in
	// place of the default decision path, for a policy in which they are
	// the same (see compile); nil when another decision path is set.
	// explainSMI is the explanation such a decision needs: the built-in
	// reason and matched rules, no user verdicts.
	decideSMI, explainSMI ast.Body

	// mu serialises Update and SetUserModules.
	mu sync.Mutex
	// written is the data document last written to the store (under mu).
	written ast.Value
	policy  atomic.Pointer[compiledPolicy]
	model   atomic.Pointer[identityIndex]
	ports   portCache
	// cache memoises decisions of the current policy and model; nil when
	// memoisation is off.
	cache        atomic.Pointer[decisionCache]
	cacheMetrics *cacheMetrics
	// regexes is the engine's cache of compiled expressions (see
	// Options.RegexCacheSize) and regexOpt hands it to every evaluation;
	// both nil to use OPA's.
	regexes  cache.InterQueryValueCache
	regexOpt rego.EvalOption
}

// newRegexCache returns a cache for OPA's regular expression built-ins
// that keeps size compiled expressions (see Options.RegexCacheSize), or
// nil for a negative size.
func newRegexCache(ctx context.Context, size int) cache.InterQueryValueCache {
	switch {
	case size < 0:
		return nil
	case size == 0:
		size = DefaultRegexCacheSize
	}
	return cache.NewInterQueryValueCache(ctx, &cache.Config{
		InterQueryBuiltinValueCache: cache.InterQueryBuiltinValueCacheConfig{MaxNumEntries: &size},
	})
}

// compiledPolicy is one compiled set of modules with its prepared query.
type compiledPolicy struct {
	compiler *ast.Compiler
	decide   rego.PreparedEvalQuery
	explain  rego.PreparedEvalQuery
	// user holds the user modules' sources by path.
	user map[string]string
	// entry is false when a user module replaced the built-in entry module.
	entry bool
	// smi is true when the decision is SMI access itself: the built-in
	// entry module at the default path and no user module in
	// meshward.ext. The decision and explanation queries are then
	// decideSMI and explainSMI.
	smi bool
	// decidePlan and explainPlan are the plans of the queries, when the
	// built-in policy is all there is and EvaluatorPlan is chosen; nil
	// otherwise.
	decidePlan, explainPlan *planeval.Program
}

// New returns an engine serving the built-in policy over an empty mesh.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.DecisionPath == "" {
		opts.DecisionPath = builtin.DefaultDecisionPath
	}
	switch opts.Evaluator {
	case "":
		opts.Evaluator = EvaluatorPlan
	case EvaluatorPlan, EvaluatorOPA:
	default:
		return nil, fmt.Errorf("%w %q: want %q or %q", ErrEvaluator, opts.Evaluator, EvaluatorPlan, EvaluatorOPA)
	}
	path, err := decisionRef(opts.DecisionPath)
	if err != nil {
		return nil, err
	}
	decide, err := ast.ParseBody("result = " + path.String() + "; matched = " + builtin.MatchedRef)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrDecisionPath, opts.DecisionPath, err)
	}
	var decideSMI, explainSMI ast.Body
	if path.Equal(builtin.DefaultDecisionRef) {
		decideSMI = ast.MustParseBody("result = " + builtin.AccessRef + "; matched = " + builtin.MatchedRef)
		explainSMI = ast.MustParseBody(`explain = {"reason": ` + builtin.ReasonRef + `, "matched": ` + builtin.MatchedRef + `}`)
	}
	e := &Engine{
		opts:       opts,
		decide:     decide,
		decideSMI:  decideSMI,
		explainSMI: explainSMI,
		explain:    ast.MustParseBody("explain = " + builtin.ExplainRef),
		store:      inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true)),

		cacheMetrics: newCacheMetrics(opts.Registry),
	}
	if e.regexes = newRegexCache(ctx, opts.RegexCacheSize); e.regexes != nil {
		e.regexOpt = rego.EvalInterQueryBuiltinValueCache(e.regexes)
	}
	if err := e.Update(ctx, nil); err != nil {
		return nil, err
	}
	if err := e.SetUserModules(ctx, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// DecisionPath returns the path of the decision rule, e.g. envoy/authz/allow.
func (e *Engine) DecisionPath() string { return e.opts.DecisionPath }

// decisionRef reads a "/"-separated decision path into a data reference.
func decisionRef(p string) (ast.Ref, error) {
	p = strings.Trim(p, "/")
	ref := ast.Ref{ast.DefaultRootDocument}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			return nil, fmt.Errorf("%w %q: empty segment", ErrDecisionPath, p)
		}
		ref = append(ref, ast.StringTerm(seg))
	}
	if len(ref) < 2 {
		return nil, fmt.Errorf("%w %q: no rule named", ErrDecisionPath, p)
	}
	return ref, nil
}

// Update makes m the model that decisions use: it writes Data(m) to the
// store in one write transaction and then switches the identity index. A
// nil model is an empty mesh.
//
// A model that changes nothing the policy reads (its Services, endpoints,
// splits and routes, say, but not its identities, access rules, ingress,
// egress or options) leaves the store, the index and the memoised
// decisions as they are: endpoint churn does not empty the decision
// cache.
func (e *Engine) Update(ctx context.Context, m *mesh.Model) error {
	idx := newIdentityIndex(m)
	doc := dataValueWith(m, idx)
	idx.data = ast.ObjectTerm(ast.Item(ast.InternedTerm("meshward"), ast.NewTerm(doc)))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written != nil && e.written.Compare(doc) == 0 && sameIdentities(e.model.Load(), idx) {
		return nil
	}
	if err := storage.WriteOne(ctx, e.store, storage.AddOp, storage.Path{"meshward"}, doc); err != nil {
		return fmt.Errorf("policy data not written: %w", err)
	}
	e.written = doc
	e.model.Store(idx)
	e.resetCache()
	return nil
}

// sameIdentities reports whether two indexes know the same identities by
// name (the data document holds only those whose principal is unique).
func sameIdentities(a, b *identityIndex) bool {
	if a == nil || b == nil || len(a.byName) != len(b.byName) {
		return false
	}
	for name := range a.byName {
		if _, ok := b.byName[name]; !ok {
			return false
		}
	}
	return true
}

// resetCache replaces the decision cache with an empty one for the
// current policy and model. It runs after they are switched: see
// decisionCache.
func (e *Engine) resetCache() {
	var headers []string
	if m := e.model.Load(); m != nil {
		headers = m.headers
	}
	e.cache.Store(newDecisionCache(e.opts.CacheSize, headers, e.cacheMetrics))
}

// SetUserModules compiles the user's Rego modules (path -> source) with
// the built-in ones and prepares the decision query. Modules are read as
// Rego v1, or v0 when they only parse so. A user module that declares the
// package of the built-in entry module (envoy.authz) replaces it. Packages
// under meshward other than meshward.ext are reserved. When a module does
// not compile, the error names its file, line and OPA's message, and the
// previous policy stays in force.
func (e *Engine) SetUserModules(ctx context.Context, modules map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := e.compile(ctx, modules)
	if err != nil {
		return err
	}
	e.policy.Store(p)
	e.resetCache()
	names := slices.Sorted(maps.Keys(modules))
	e.opts.Log.V(1).Info("policy loaded", "userModules", names, "builtinEntry", p.entry, "decisionPath", e.opts.DecisionPath)
	return nil
}

// UserModules returns the paths of the user modules in force, sorted.
func (e *Engine) UserModules() []string {
	return slices.Sorted(maps.Keys(e.policy.Load().user))
}

func (e *Engine) compile(ctx context.Context, sources map[string]string) (*compiledPolicy, error) {
	cerr := &CompileError{}
	modules := make(map[string]*ast.Module, len(sources)+4)
	entry, hooks := true, false
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		m, err := parseUserModule(name, sources[name])
		if err != nil {
			cerr.add(err)
			continue
		}
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		if reserved(pkg) {
			cerr.Problems = append(cerr.Problems, Problem{
				File: name, Line: m.Package.Location.Row, reserved: true,
				Message: fmt.Sprintf("package %s is reserved for meshward's built-in policy; extend it from package meshward.ext", pkg),
			})
			continue
		}
		if pkg == builtin.EntryPackage {
			entry = false
		}
		if pkg == "meshward.ext" {
			cerr.Problems = append(cerr.Problems, checkExt(name, m)...)
		}
		if pkg == "meshward.ext" || strings.HasPrefix(pkg, "meshward.ext.") {
			hooks = true
		}
		modules[name] = m
	}
	for _, b := range builtin.Modules() {
		if b.Package == builtin.EntryPackage && !entry {
			continue
		}
		name := "meshward:" + b.Name
		m, err := ast.ParseModuleWithOpts(name, b.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			cerr.add(err) // cannot happen: the Go tests compile the built-ins
			continue
		}
		modules[name] = m
	}
	if len(cerr.Problems) > 0 {
		return nil, cerr
	}
	c := ast.NewCompiler()
	if c.Compile(modules); c.Failed() {
		cerr.add(c.Errors)
		return nil, cerr
	}
	out := &compiledPolicy{compiler: c, entry: entry, user: make(map[string]string, len(sources))}
	maps.Copy(out.user, sources)
	// The built-in entry module allows what SMI access allows unless a
	// user's meshward.ext says otherwise: without such a module its
	// decision is data.meshward.authz.allow, one rule evaluation less.
	decide, explain := e.decide, e.explain
	if entry && !hooks && e.decideSMI != nil {
		decide, explain, out.smi = e.decideSMI, e.explainSMI, true
	}
	for q, pq := range map[*ast.Body]*rego.PreparedEvalQuery{&decide: &out.decide, &explain: &out.explain} {
		var err error
		*pq, err = rego.New(rego.ParsedQuery(*q), rego.Compiler(c), rego.Store(e.store)).PrepareForEval(ctx)
		if err != nil {
			cerr.add(err)
			return nil, cerr
		}
	}
	if out.smi && e.opts.Evaluator == EvaluatorPlan {
		e.planPolicy(ctx, out, decide, explain)
	}
	return out, nil
}

// planPolicy prepares the plans of the built-in policy's queries. Should
// the plan evaluator not support them, the policy is evaluated by OPA's
// evaluator and the log says why.
func (e *Engine) planPolicy(ctx context.Context, p *compiledPolicy, decide, explain ast.Body) {
	var plans [2]*planeval.Program
	for i, q := range []ast.Body{decide, explain} {
		var err error
		if plans[i], err = planeval.Prepare(ctx, p.compiler, q); err != nil {
			e.opts.Log.Info("built-in policy evaluated by OPA's evaluator: its plan is not supported", "error", err.Error())
			return
		}
	}
	p.decidePlan, p.explainPlan = plans[0], plans[1]
}

// parseUserModule parses a module as Rego v1, falling back to v0 for
// policies written before OPA 1.0 (as many opa-envoy-plugin policies are).
func parseUserModule(name, src string) (*ast.Module, error) {
	m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err == nil {
		if m == nil {
			return nil, ast.Errors{ast.NewError(ast.ParseErr, &ast.Location{File: name, Row: 1}, "module is empty: it declares no package")}
		}
		return m, nil
	}
	if m0, err0 := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV0}); err0 == nil && m0 != nil {
		return m0, nil
	}
	return nil, err
}

// checkExt checks the shapes of the rules the built-in policy reads from
// package meshward.ext, so that a mistake is reported where it is made
// rather than as a type error in the built-in modules: deny must be a set
// of reasons and allow a boolean.
func checkExt(file string, m *ast.Module) []Problem {
	var out []Problem
	for _, r := range m.Rules {
		line := r.Location.Row
		switch r.Head.Name.String() {
		case "deny":
			if r.Head.RuleKind() != ast.MultiValue || len(r.Head.Args) > 0 {
				out = append(out, Problem{
					File: file, Line: line,
					Message: "meshward.ext.deny must be a set of reasons: write `deny contains reason if { ... }`",
				})
			}
		case "allow":
			if _, ok := r.Head.Value.Value.(ast.Boolean); r.Head.RuleKind() != ast.SingleValue || len(r.Head.Args) > 0 || r.Head.Value == nil || !ok {
				out = append(out, Problem{
					File: file, Line: line,
					Message: "meshward.ext.allow must be a boolean: write `allow if { ... }`",
				})
			}
		}
	}
	return out
}

// reserved reports whether a package belongs to the built-in policy or the
// data document: meshward and everything under it except meshward.ext.
func reserved(pkg string) bool {
	if pkg != "meshward" && !strings.HasPrefix(pkg, "meshward.") {
		return false
	}
	return pkg != "meshward.ext" && !strings.HasPrefix(pkg, "meshward.ext.")
}

// Problem is one error in a user module.
type Problem struct {
	File    string
	Line    int
	Message string

	reserved bool
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	if p.File != "" {
		return p.File + ": " + p.Message
	}
	return p.Message
}

// CompileError lists the problems that kept user modules from compiling.
// It matches ErrCompile, and ErrReservedPackage when a problem is a
// reserved package.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "policy not loaded, the previous policy stays in force:\n" + strings.Join(lines, "\n")
}

// Is matches ErrCompile, and ErrReservedPackage for a reserved package.
func (e *CompileError) Is(target error) bool {
	if target == ErrCompile {
		return true
	}
	if target == ErrReservedPackage {
		return slices.ContainsFunc(e.Problems, func(p Problem) bool { return p.reserved })
	}
	return false
}

// add records OPA errors with their locations.
func (e *CompileError) add(err error) {
	var errs ast.Errors
	if errors.As(err, &errs) {
		for _, x := range errs {
			p := Problem{Message: x.Code + ": " + x.Message}
			if x.Location != nil {
				p.File, p.Line = x.Location.File, x.Location.Row
			}
			e.Problems = append(e.Problems, p)
		}
		return
	}
	var one *ast.Error
	if errors.As(err, &one) {
		e.add(ast.Errors{one})
		return
	}
	e.Problems = append(e.Problems, Problem{Message: err.Error()})
}
