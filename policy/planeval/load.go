package planeval

import (
	"fmt"
	"math/big"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// builtins are the built-in functions a plan may call: deterministic,
// not relations, and needing nothing of the evaluation but its context,
// cancellation and the regex cache. They run OPA's implementations.
var builtins = map[string]bool{}

func init() {
	for _, b := range []*ast.Builtin{
		// comparison and arithmetic
		ast.Equal, ast.NotEqual, ast.GreaterThan, ast.GreaterThanEq, ast.LessThan, ast.LessThanEq,
		ast.Plus, ast.Minus, ast.Multiply, ast.Abs,
		// collections
		ast.Count, ast.Member, ast.MemberWithKey, ast.ObjectGet, ast.ArrayConcat, ast.SetDiff,
		ast.Intersection, ast.Union, ast.Or, ast.And, ast.Sort,
		// strings
		ast.Concat, ast.StartsWith, ast.EndsWith, ast.Contains, ast.Lower, ast.Upper, ast.Sprintf,
		ast.Split, ast.TrimPrefix, ast.TrimSuffix, ast.IndexOf,
		ast.RegexMatch, ast.RegexIsValid,
		// types
		ast.IsString, ast.IsNumber, ast.IsBoolean, ast.IsArray, ast.IsObject, ast.IsSet, ast.IsNull,
		ast.TypeNameBuiltin,
		// networks
		ast.NetCIDRContains,
	} {
		builtins[b.Name] = true
	}
}

// loader converts a plan's statements, checking each is supported.
type loader struct {
	pol     *ir.Policy
	strings []*ast.Term
	funcs   map[string]*function
	all     []*function
	// nlocals is the highest local of the function being loaded, plus
	// one; ret is its return local (-1 in the plan).
	nlocals int
	ret     ir.Local
}

func load(pol *ir.Policy) (*Program, error) {
	if len(pol.UnplannedRules) > 0 {
		return nil, fmt.Errorf("%w: OPA could not plan %s", ErrUnsupported, pol.UnplannedRules[0].Path)
	}
	if pol.Plans == nil || len(pol.Plans.Plans) != 1 {
		return nil, fmt.Errorf("%w: want one plan", ErrUnsupported)
	}
	l := &loader{pol: pol, funcs: map[string]*function{}}
	if pol.Static != nil {
		for _, s := range pol.Static.Strings {
			l.strings = append(l.strings, ast.StringTerm(s.Value))
		}
	}
	if pol.Funcs != nil {
		for i, f := range pol.Funcs.Funcs {
			fn := &function{params: f.Params, ret: f.Return, index: i, memo: len(f.Params) == 2}
			l.funcs[f.Name] = fn
			l.all = append(l.all, fn)
		}
		for i, f := range pol.Funcs.Funcs {
			fn := l.all[i]
			l.nlocals, l.ret = int(f.Return)+1, f.Return
			for _, p := range f.Params {
				l.local(p)
			}
			for _, b := range f.Blocks {
				cb, err := l.block(b, 1)
				if err != nil {
					return nil, fmt.Errorf("function %s: %w", f.Name, err)
				}
				fn.blocks = append(fn.blocks, cb)
			}
			fn.nlocals = l.nlocals
		}
	}
	plan := pol.Plans.Plans[0]
	l.nlocals, l.ret = int(ir.Data)+1, -1
	top := &block{}
	for _, b := range plan.Blocks {
		cb, err := l.block(b, 1)
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", plan.Name, err)
		}
		// The plan's blocks run one after the other whatever each does.
		top.stmts = append(top.stmts, &blockStmt{blocks: []*block{cb}})
	}
	top.nlocals = l.nlocals
	p := &Program{plan: top}
	n := len(l.all)
	p.frames.New = func() any {
		e := &eval{memo: make([]memoEntry, n)}
		e.setOut = e.setOutput
		return e
	}
	return p, nil
}

// local notes a local variable and returns its index in the frame.
func (l *loader) local(v ir.Local) int {
	if int(v) >= l.nlocals {
		l.nlocals = int(v) + 1
	}
	return int(v)
}

func (l *loader) operand(o ir.Operand) (operand, error) {
	switch v := o.Value.(type) {
	case ir.Local:
		return operand{local: l.local(v)}, nil
	case ir.Bool:
		return operand{term: ast.InternedTerm(bool(v))}, nil
	case ir.StringIndex:
		if int(v) < 0 || int(v) >= len(l.strings) {
			return operand{}, fmt.Errorf("%w: string %d out of range", ErrUnsupported, v)
		}
		return operand{term: l.strings[v]}, nil
	}
	return operand{}, fmt.Errorf("%w: operand %v", ErrUnsupported, o.Value)
}

func (l *loader) operands(os ...ir.Operand) ([]operand, error) {
	out := make([]operand, len(os))
	for i, o := range os {
		var err error
		if out[i], err = l.operand(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// block converts a block; levels is how many enclosing blocks a break in
// it may leave, so that no break leaves the function or the plan.
func (l *loader) block(b *ir.Block, levels uint32) (*block, error) {
	out := &block{stmts: make([]stmt, 0, len(b.Stmts))}
	for _, s := range b.Stmts {
		cs, err := l.stmt(s, levels)
		if err != nil {
			if loc := s.GetLocation(); loc != nil && loc.Row > 0 {
				return nil, fmt.Errorf("%T at row %d: %w", s, loc.Row, err)
			}
			return nil, fmt.Errorf("%T: %w", s, err)
		}
		out.stmts = append(out.stmts, cs)
	}
	return out, nil
}

func (l *loader) stmt(s ir.Stmt, levels uint32) (stmt, error) {
	switch s := s.(type) {
	case *ir.BlockStmt:
		out := &blockStmt{}
		for _, b := range s.Blocks {
			cb, err := l.block(b, levels+1)
			if err != nil {
				return nil, err
			}
			out.blocks = append(out.blocks, cb)
		}
		return out, nil
	case *ir.BreakStmt:
		if s.Index >= levels {
			return nil, fmt.Errorf("%w: break %d leaves the function", ErrUnsupported, s.Index)
		}
		return breakStmt(s.Index), nil
	case *ir.ScanStmt:
		b, err := l.block(s.Block, levels+2)
		if err != nil {
			return nil, err
		}
		return &scanStmt{source: l.local(s.Source), key: l.local(s.Key), value: l.local(s.Value), block: b}, nil
	case *ir.NotStmt:
		b, err := l.block(s.Block, levels+1)
		if err != nil {
			return nil, err
		}
		return &notStmt{block: b}, nil
	case *ir.CallStmt:
		return l.call(s)
	case *ir.DotStmt:
		o, err := l.operands(s.Source, s.Key)
		if err != nil {
			return nil, err
		}
		return &dotStmt{source: o[0], key: o[1], target: l.local(s.Target)}, nil
	case *ir.AssignVarStmt:
		o, err := l.operand(s.Source)
		if err != nil {
			return nil, err
		}
		return &assignStmt{source: o, target: l.local(s.Target)}, nil
	case *ir.AssignVarOnceStmt:
		o, err := l.operand(s.Source)
		if err != nil {
			return nil, err
		}
		return &assignStmt{source: o, target: l.local(s.Target), once: true}, nil
	case *ir.AssignIntStmt:
		return &assignStmt{source: operand{term: ast.InternedTerm(int(s.Value))}, target: l.local(s.Target)}, nil
	case *ir.ResetLocalStmt:
		return resetStmt(l.local(s.Target)), nil
	case *ir.ReturnLocalStmt:
		if s.Source != l.ret {
			return nil, fmt.Errorf("%w: return of %v, not the function's return local", ErrUnsupported, s.Source)
		}
		// The call reads the function's return local when its blocks are
		// done: nothing to do here.
		return nopStmt{}, nil
	case *ir.IsDefinedStmt:
		return &definedStmt{local: l.local(s.Source), want: true}, nil
	case *ir.IsUndefinedStmt:
		return &definedStmt{local: l.local(s.Source)}, nil
	case *ir.EqualStmt:
		o, err := l.operands(s.A, s.B)
		if err != nil {
			return nil, err
		}
		return &equalStmt{a: o[0], b: o[1], want: true}, nil
	case *ir.NotEqualStmt:
		o, err := l.operands(s.A, s.B)
		if err != nil {
			return nil, err
		}
		return &equalStmt{a: o[0], b: o[1]}, nil
	case *ir.IsArrayStmt:
		return l.isType(s.Source, isArray)
	case *ir.IsObjectStmt:
		return l.isType(s.Source, isObject)
	case *ir.IsSetStmt:
		return l.isType(s.Source, isSet)
	case *ir.MakeNullStmt:
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return ast.InternedNullTerm }}, nil
	case *ir.MakeNumberIntStmt:
		t := ast.InternedTerm(int(s.Value))
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return t }}, nil
	case *ir.MakeNumberRefStmt:
		if s.Index < 0 || s.Index >= len(l.strings) {
			return nil, fmt.Errorf("%w: number string %d out of range", ErrUnsupported, s.Index)
		}
		text := string(l.strings[s.Index].Value.(ast.String))
		if _, ok := new(big.Float).SetString(text); !ok {
			return nil, fmt.Errorf("%w: %q is not a number", ErrUnsupported, text)
		}
		t := ast.NewTerm(ast.Number(text))
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return t }}, nil
	case *ir.MakeArrayStmt:
		c := int(s.Capacity)
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return ast.NewTerm(ast.NewArrayWithCapacity(c)) }}, nil
	case *ir.MakeObjectStmt:
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return ast.NewTerm(ast.NewObject()) }}, nil
	case *ir.MakeSetStmt:
		return &makeStmt{target: l.local(s.Target), make: func() *ast.Term { return ast.NewTerm(ast.NewSet()) }}, nil
	case *ir.SetAddStmt:
		o, err := l.operand(s.Value)
		if err != nil {
			return nil, err
		}
		return &setAddStmt{value: o, set: l.local(s.Set)}, nil
	case *ir.ArrayAppendStmt:
		o, err := l.operand(s.Value)
		if err != nil {
			return nil, err
		}
		return &arrayAppendStmt{value: o, array: l.local(s.Array)}, nil
	case *ir.ObjectInsertStmt:
		o, err := l.operands(s.Key, s.Value)
		if err != nil {
			return nil, err
		}
		return &objectInsertStmt{key: o[0], value: o[1], object: l.local(s.Object)}, nil
	case *ir.ObjectInsertOnceStmt:
		o, err := l.operands(s.Key, s.Value)
		if err != nil {
			return nil, err
		}
		return &objectInsertStmt{key: o[0], value: o[1], object: l.local(s.Object), once: true}, nil
	case *ir.ResultSetAddStmt:
		return resultStmt(l.local(s.Value)), nil
	case *ir.NopStmt:
		return nopStmt{}, nil
	}
	return nil, fmt.Errorf("%w: statement %T", ErrUnsupported, s)
}

func (l *loader) isType(o ir.Operand, k kind) (stmt, error) {
	op, err := l.operand(o)
	if err != nil {
		return nil, err
	}
	return &isTypeStmt{source: op, kind: k}, nil
}

func (l *loader) call(s *ir.CallStmt) (stmt, error) {
	args, err := l.operands(s.Args...)
	if err != nil {
		return nil, err
	}
	out := &callStmt{args: args, result: l.local(s.Result)}
	if fn, ok := l.funcs[s.Func]; ok {
		if len(args) != len(fn.params) {
			return nil, fmt.Errorf("%w: %s called with %d arguments, has %d parameters", ErrUnsupported, s.Func, len(args), len(fn.params))
		}
		out.fn = fn
		return out, nil
	}
	if !builtins[s.Func] || !slices.ContainsFunc(l.pol.Static.BuiltinFuncs, func(b *ir.BuiltinFunc) bool { return b.Name == s.Func }) {
		return nil, fmt.Errorf("%w: built-in function %s", ErrUnsupported, s.Func)
	}
	impl := topdown.GetBuiltin(s.Func)
	if impl == nil {
		return nil, fmt.Errorf("%w: built-in function %s has no implementation", ErrUnsupported, s.Func)
	}
	out.fn = &function{builtin: impl}
	return out, nil
}
