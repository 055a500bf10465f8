package policy

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/meshward/meshward/policy/planeval"
)

// Decision is the answer to one request.
type Decision struct {
	// ID identifies the decision in logs; unique per decision.
	ID string `json:"id"`
	// Allowed is what to enforce.
	Allowed bool `json:"allowed"`
	// Reason says why, naming the objects involved.
	Reason string `json:"reason"`
	// Matched names the rules that allowed the request, e.g.
	// "TrafficTarget ns/t: HTTPRouteGroup ns/g match m".
	Matched []string `json:"matched"`
	// DryRun is true when the engine runs in dry-run mode; Allowed is
	// then always true and Reason tells the real decision.
	DryRun bool `json:"dryRun,omitempty"`
	// Memoised is true when the decision came from the decision cache: an
	// earlier request that agreed with this one in everything the
	// built-in policy reads was evaluated, with the same policy and data.
	Memoised bool `json:"memoised,omitempty"`

	// The fields of an object result, as opa-envoy-plugin reads them.
	HTTPStatus             int                 `json:"http_status,omitempty"`
	Headers                map[string][]string `json:"headers,omitempty"`
	ResponseHeadersToAdd   map[string][]string `json:"response_headers_to_add,omitempty"`
	RequestHeadersToRemove []string            `json:"request_headers_to_remove,omitempty"`
	Body                   string              `json:"body,omitempty"`
	DynamicMetadata        map[string]any      `json:"dynamic_metadata,omitempty"`
}

// newID returns 16 random bytes in hex. Identifiers need to be unique, not
// secret: the runtime's per-thread generator is enough and never blocks.
func newID() string {
	var b [16]byte
	lo, hi := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(lo >> (8 * i))
		b[8+i] = byte(hi >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// DecideRequest builds the input of a request and decides it. A request
// that cannot be checked (a path that fails normalisation) is denied with
// the problem as reason, and no error: it is the client's mistake.
//
// Decisions of the built-in policy alone are memoised (see Options.CacheSize).
func (e *Engine) DecideRequest(ctx context.Context, r Request) (Decision, error) {
	return e.DecideRequestWith(ctx, r, nil)
}

// DecideRequestWith is DecideRequest for a front end that adds fields to
// the input (see InputFields). fields, when not nil, is called to fill
// them only when a user module may read them: a memoised decision builds
// no input, and the built-in policy alone reads only meshward's own
// fields, the principals, the method and the headers its matches name.
func (e *Engine) DecideRequestWith(ctx context.Context, r Request, fields func(*InputFields)) (Decision, error) {
	c := e.cache.Load()
	p := e.policy.Load()
	key, cacheable := c.key(p, r)
	if cacheable {
		if d, ok := c.get(key); ok {
			d.ID, d.Memoised = newID(), true
			return e.finish(d), nil
		}
	}
	// Without user modules only the built-in policy reads the input: it
	// needs neither the front end's fields nor what lean leaves out.
	builtinOnly := len(p.user) == 0
	var f *InputFields
	if fields != nil && !builtinOnly {
		f = new(InputFields)
		fields(f)
	}
	m := e.model.Load()
	in, err := buildInput(m, &e.ports, r, f, builtinOnly)
	if err != nil {
		d := Decision{ID: newID(), Reason: err.Error()}
		return e.finish(d), nil
	}
	d, err := e.evaluate(ctx, p, m, in)
	// A context that ended during evaluation may have cut the explanation
	// short: such a decision is not memoised.
	if err == nil && cacheable && ctx.Err() == nil {
		c.put(key, d)
	}
	return e.finish(d), err
}

// Input builds the input document of a request (see docs/policy.md). The
// error wraps ErrInvalidRequest.
func (e *Engine) Input(r Request) (ast.Value, error) {
	return buildInput(e.model.Load(), &e.ports, r, nil, false)
}

// Decide evaluates the decision path for an input document, with the
// built-in decision to explain it. The Decision is always usable: when no
// decision can be made it denies (allows when the mesh option FailOpen is
// set) and the error says why, wrapping ErrUndefinedDecision,
// ErrInvalidDecision or ErrEvaluation.
func (e *Engine) Decide(ctx context.Context, input ast.Value) (Decision, error) {
	d, err := e.evaluate(ctx, e.policy.Load(), e.model.Load(), input)
	return e.finish(d), err
}

// evaluate is Decide with policy p and model m and without dry-run mode
// (finish), so that memoised decisions are stored as the policy made
// them.
func (e *Engine) evaluate(ctx context.Context, p *compiledPolicy, m *identityIndex, input ast.Value) (Decision, error) {
	d := Decision{ID: newID()}

	var cancel topdown.Cancel
	if ctx.Done() != nil {
		// Cancel the evaluation with the context, without the goroutine
		// per evaluation that OPA starts otherwise.
		c := topdown.NewCancel()
		stop := context.AfterFunc(ctx, c.Cancel)
		defer stop()
		cancel = c
	}
	var ev evaluation
	if p.decidePlan != nil {
		ev = &planEvaluation{p: p, input: ast.NewTerm(input), data: m.data, opts: planeval.Options{Cancel: cancel, RegexCache: e.regexes}}
	} else {
		txn, err := e.store.NewTransaction(ctx)
		if err != nil {
			return e.failed(d, fmt.Errorf("%w: %w", ErrEvaluation, err))
		}
		defer e.store.Abort(ctx, txn)
		cancelOpt := neverCancelOpt
		if cancel != nil {
			cancelOpt = rego.EvalExternalCancel(cancel)
		}
		opts := []rego.EvalOption{
			rego.EvalParsedInput(input),
			rego.EvalTransaction(txn),
			keepASTOpt,
			cancelOpt,
			noMetricsOpt,
		}
		if e.regexOpt != nil {
			opts = append(opts, e.regexOpt)
		}
		ev = &opaEvaluation{p: p, opts: opts}
	}

	results, err := ev.decide(ctx)
	switch {
	case err != nil:
		return e.failed(d, fmt.Errorf("%w: %w", ErrEvaluation, err))
	case len(results) == 0:
		return e.failed(d, fmt.Errorf("%w: %s has no value for this input", ErrUndefinedDecision, e.opts.DecisionPath))
	case len(results) > 1:
		return e.failed(d, fmt.Errorf("%w: %s has %d values", ErrInvalidDecision, e.opts.DecisionPath, len(results)))
	}
	if err := e.readResult(&d, results[0].result); err != nil {
		return e.failed(d, err)
	}
	if matched := results[0].matched; d.Allowed && d.Reason == "" {
		// The common case: SMI access allows (a rule matches, or the mesh
		// is permissive and knows both identities) and so does the
		// decision. The reason is the built-in one, without evaluating it.
		src, dst := inputString(input, keySource), inputString(input, keyDestination)
		if matched != nil && matched.Len() > 0 && src != "" && dst != "" {
			d.Matched = setStrings(matched)
			d.Reason = src + " may call " + dst + ": " + strings.Join(d.Matched, "; ")
			return d, nil
		}
		if m.opts.Permissive && src != "" && dst != "" {
			d.Reason = "permissive mode allows " + src + " to call " + dst + ": every pair of identities in the mesh is allowed"
			return d, nil
		}
	}
	explain, err := ev.explain(ctx)
	if err != nil {
		// The decision stands; only its explanation is missing.
		d.Reason = cmp.Or(d.Reason, fmt.Sprintf("decided by the policy at %s (no explanation: %v)", e.opts.DecisionPath, err))
		return d, nil
	}
	e.explainDecision(&d, explain, p.smi)
	return d, nil
}

// evaluation evaluates the decision query and, when asked, the
// explanation query of one decision, with OPA's evaluator or from their
// plans.
type evaluation interface {
	decide(ctx context.Context) ([]decideResult, error)
	explain(ctx context.Context) (ast.Value, error)
}

// decideResult is one solution of the decision query: the decision
// path's value and the built-in rules that match.
type decideResult struct {
	result  ast.Value
	matched ast.Set
}

// opaEvaluation evaluates with OPA's evaluator (topdown).
type opaEvaluation struct {
	p    *compiledPolicy
	opts []rego.EvalOption
}

func (o *opaEvaluation) decide(ctx context.Context) ([]decideResult, error) {
	rs, err := o.p.decide.Eval(ctx, o.opts...)
	if err != nil {
		return nil, err
	}
	out := make([]decideResult, len(rs))
	for i, r := range rs {
		out[i].result, _ = r.Bindings["result"].(ast.Value)
		out[i].matched, _ = r.Bindings["matched"].(ast.Set)
	}
	return out, nil
}

func (o *opaEvaluation) explain(ctx context.Context) (ast.Value, error) {
	rs, err := o.p.explain.Eval(ctx, o.opts...)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%d explanations", len(rs))
	}
	v, _ := rs[0].Bindings["explain"].(ast.Value)
	return v, nil
}

// planEvaluation evaluates the plans of the queries (see package
// planeval) over the model's data document.
type planEvaluation struct {
	p           *compiledPolicy
	input, data *ast.Term
	opts        planeval.Options
}

var (
	resultKey  = ast.InternedTerm("result")
	matchedKey = ast.InternedTerm("matched")
	explainKey = ast.InternedTerm("explain")
)

func (pe *planEvaluation) decide(ctx context.Context) ([]decideResult, error) {
	rs, err := pe.p.decidePlan.Eval(ctx, pe.input, pe.data, pe.opts)
	if err != nil {
		return nil, err
	}
	out := make([]decideResult, len(rs))
	for i, r := range rs {
		o, _ := r.(ast.Object)
		if o == nil {
			continue
		}
		if t := o.Get(resultKey); t != nil {
			out[i].result = t.Value
		}
		if t := o.Get(matchedKey); t != nil {
			out[i].matched, _ = t.Value.(ast.Set)
		}
	}
	return out, nil
}

func (pe *planEvaluation) explain(ctx context.Context) (ast.Value, error) {
	if pe.p.explainPlan == nil {
		return nil, errors.New("no plan for the explanation")
	}
	rs, err := pe.p.explainPlan.Eval(ctx, pe.input, pe.data, pe.opts)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%d explanations", len(rs))
	}
	o, _ := rs[0].(ast.Object)
	if o == nil || o.Get(explainKey) == nil {
		return nil, errors.New("the explanation has no value")
	}
	return o.Get(explainKey).Value, nil
}

// noMetrics keeps OPA from allocating metrics for every evaluation.
var noMetrics = metrics.NoOp()

// The evaluation options that are the same for every decision, built once.
var (
	keepASTOpt     = rego.EvalGenerateJSON(keepAST)
	noMetricsOpt   = rego.EvalMetrics(noMetrics)
	neverCancelOpt = rego.EvalExternalCancel(neverCancel{})
)

// inputString returns input.meshward[key] as a string.
func inputString(input ast.Value, key *ast.Term) string {
	o, _ := input.(ast.Object)
	if o == nil {
		return ""
	}
	mw := o.Get(keyMeshward)
	if mw == nil {
		return ""
	}
	mo, _ := mw.Value.(ast.Object)
	if mo == nil {
		return ""
	}
	return termString(mo.Get(key))
}

// setStrings returns the strings of a set, sorted.
func setStrings(s ast.Set) []string {
	if s == nil || s.Len() == 0 {
		return []string{}
	}
	out := make([]string, 0, s.Len())
	s.Foreach(func(t *ast.Term) {
		if v, ok := t.Value.(ast.String); ok {
			out = append(out, string(v))
		}
	})
	slices.Sort(out)
	return out
}

// keepAST leaves query results as AST values: the engine reads them
// directly instead of converting them to Go values first.
func keepAST(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

// neverCancel is the cancellation of an evaluation whose context cannot be
// cancelled.
type neverCancel struct{}

func (neverCancel) Cancel()         {}
func (neverCancel) Cancelled() bool { return false }

// failed makes the decision for an error: deny, or allow when the mesh
// fails open (before dry-run mode, which finish applies).
func (e *Engine) failed(d Decision, err error) (Decision, error) {
	failOpen := false
	if m := e.model.Load(); m != nil {
		failOpen = m.opts.FailOpen
	}
	d = Decision{ID: d.ID}
	d.Allowed = failOpen
	if failOpen {
		d.Reason = "no decision, allowed because the mesh fails open: " + err.Error()
	} else {
		d.Reason = "no decision, denied because the mesh fails closed: " + err.Error()
	}
	return d, err
}

// finish applies dry-run mode and logs what dry-run changes.
func (e *Engine) finish(d Decision) Decision {
	if d.Matched == nil {
		d.Matched = []string{}
	}
	if !e.opts.DryRun {
		return d
	}
	d.DryRun = true
	e.opts.Log.Info("dry-run decision", "id", d.ID, "allowed", d.Allowed, "reason", d.Reason)
	if !d.Allowed {
		d.Allowed = true
		d.Reason = "dry run, allowed although the policy denies: " + d.Reason
	}
	return d
}

// readResult reads the decision rule's value: a boolean, or an object with
// a boolean "allowed" and the optional fields of opa-envoy-plugin.
func (e *Engine) readResult(d *Decision, v ast.Value) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidDecision, e.opts.DecisionPath, fmt.Sprintf(format, args...))
	}
	switch v := v.(type) {
	case ast.Boolean:
		d.Allowed = bool(v)
		return nil
	case ast.Object:
		return readObject(d, v, bad)
	case nil:
		return fmt.Errorf("%w: %s has no value", ErrUndefinedDecision, e.opts.DecisionPath)
	default:
		return bad("the value is %s", ast.ValueName(v))
	}
}

// readObject reads an object result.
func readObject(d *Decision, o ast.Object, bad func(string, ...any) error) error {
	at := o.Get(ast.InternedTerm("allowed"))
	if at == nil {
		return bad("the object has no \"allowed\" field")
	}
	allowed, ok := at.Value.(ast.Boolean)
	if !ok {
		return bad("\"allowed\" is %s, not a boolean", ast.ValueName(at.Value))
	}
	d.Allowed = bool(allowed)
	var err error
	o.Foreach(func(k, v *ast.Term) {
		key, _ := k.Value.(ast.String)
		if err != nil {
			return
		}
		switch string(key) {
		case "headers":
			d.Headers, err = headerMap(v.Value)
		case "response_headers_to_add":
			d.ResponseHeadersToAdd, err = headerMap(v.Value)
		case "request_headers_to_remove":
			d.RequestHeadersToRemove, err = stringList(v.Value)
		case "body":
			s, ok := v.Value.(ast.String)
			if !ok {
				err = fmt.Errorf("body is %s, not a string", ast.ValueName(v.Value))
			}
			d.Body = string(s)
		case "http_status":
			n, ok := v.Value.(ast.Number)
			code, isInt := n.Int()
			if !ok || !isInt || http.StatusText(code) == "" {
				err = fmt.Errorf("http_status %v is not an HTTP status code", v)
			}
			d.HTTPStatus = code
		case "dynamic_metadata":
			var x any
			if x, err = ast.JSON(v.Value); err == nil {
				m, ok := x.(map[string]any)
				if !ok {
					err = fmt.Errorf("dynamic_metadata is %s, not an object", ast.ValueName(v.Value))
				}
				d.DynamicMetadata = m
			}
		case "reason":
			if s, ok := v.Value.(ast.String); ok {
				d.Reason = string(s)
			}
		}
	})
	if err != nil {
		return bad("%v", err)
	}
	return nil
}

// headerMap reads headers as opa-envoy-plugin does: an object of strings
// or arrays of strings, or an array of such objects.
func headerMap(v ast.Value) (map[string][]string, error) {
	out := map[string][]string{}
	add := func(v ast.Value) error {
		o, ok := v.(ast.Object)
		if !ok {
			return fmt.Errorf("headers are %s, not an object", ast.ValueName(v))
		}
		var err error
		o.Foreach(func(k, val *ast.Term) {
			name, ok := k.Value.(ast.String)
			if !ok || err != nil {
				err = cmpErr(err, fmt.Errorf("header name %v is not a string", k))
				return
			}
			switch x := val.Value.(type) {
			case ast.String:
				out[string(name)] = append(out[string(name)], string(x))
			case *ast.Array:
				vals, e := stringList(x)
				err = cmpErr(err, e)
				out[string(name)] = append(out[string(name)], vals...)
			default:
				err = cmpErr(err, fmt.Errorf("header %s is %s, not a string", name, ast.ValueName(x)))
			}
		})
		return err
	}
	if a, ok := v.(*ast.Array); ok {
		var err error
		a.Foreach(func(t *ast.Term) { err = cmpErr(err, add(t.Value)) })
		return out, err
	}
	return out, add(v)
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

func stringList(v ast.Value) ([]string, error) {
	var out []string
	var err error
	each := func(t *ast.Term) {
		s, ok := t.Value.(ast.String)
		if !ok {
			err = cmpErr(err, fmt.Errorf("%v is not a string", t))
			return
		}
		out = append(out, string(s))
	}
	switch x := v.(type) {
	case *ast.Array:
		x.Foreach(each)
	case ast.Set:
		x.Foreach(each)
	default:
		return nil, fmt.Errorf("%s is not an array of strings", ast.ValueName(v))
	}
	return out, err
}

// explainDecision sets the reason and matched rules from the built-in
// explanation, telling how user policy changed the built-in decision.
//
// smi says the decision is SMI access itself (explainSMI): the built-in
// decision is then the decision, and there are no user verdicts.
func (e *Engine) explainDecision(d *Decision, v ast.Value, smi bool) {
	o, _ := v.(ast.Object)
	if o == nil {
		if d.Reason == "" {
			d.Reason = "decided by the policy at " + e.opts.DecisionPath
		}
		return
	}
	builtinAllowed := termBool(o.Get(ast.InternedTerm("allowed")))
	if smi {
		builtinAllowed = d.Allowed
	}
	reason := termString(o.Get(ast.InternedTerm("reason")))
	userReason := d.Reason
	var denies []string
	if t := o.Get(ast.InternedTerm("user_denies")); t != nil {
		denies, _ = stringListAny(t.Value)
	}
	userAllowed := termBool(o.Get(ast.InternedTerm("user_allowed")))

	switch {
	case !d.Allowed && len(denies) > 0:
		d.Reason = "denied by data.meshward.ext.deny: " + strings.Join(denies, "; ")
	case d.Allowed && builtinAllowed:
		d.Reason = reason
		if t := o.Get(ast.InternedTerm("matched")); t != nil {
			s, _ := t.Value.(ast.Set)
			d.Matched = setStrings(s)
		}
	case d.Allowed && userAllowed:
		d.Reason = "allowed by data.meshward.ext.allow; SMI access alone denies: " + reason
		d.Matched = []string{"data.meshward.ext.allow"}
	case d.Allowed:
		d.Reason = "allowed by the policy at " + e.opts.DecisionPath + "; SMI access alone denies: " + reason
		d.Matched = []string{"policy " + e.opts.DecisionPath}
	case builtinAllowed:
		d.Reason = "denied by the policy at " + e.opts.DecisionPath + " although SMI access allows it: " + reason
	default:
		d.Reason = reason
	}
	if userReason != "" {
		d.Reason = userReason + " (" + d.Reason + ")"
	}
}

func termBool(t *ast.Term) bool {
	if t == nil {
		return false
	}
	b, _ := t.Value.(ast.Boolean)
	return bool(b)
}

func termString(t *ast.Term) string {
	if t == nil {
		return ""
	}
	s, _ := t.Value.(ast.String)
	return string(s)
}

// stringListAny reads an array or set; values that are not strings are
// rendered as JSON (user deny reasons may be objects).
func stringListAny(v ast.Value) ([]string, error) {
	var out []string
	each := func(t *ast.Term) {
		if s, ok := t.Value.(ast.String); ok {
			out = append(out, string(s))
			return
		}
		x, err := ast.JSON(t.Value)
		if err != nil {
			out = append(out, t.String())
			return
		}
		b, _ := json.Marshal(x)
		out = append(out, string(b))
	}
	switch x := v.(type) {
	case *ast.Array:
		x.Foreach(each)
	case ast.Set:
		x.Foreach(each)
	default:
		return nil, errors.New("not a collection")
	}
	return out, nil
}
