package planeval

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// A statement runs in a frame (base is the index of its first local in
// the evaluation's stack). It stops its block when it fails (stop with
// index 0) or breaks (stop with the number of further blocks to leave),
// as in OPA's IR: a block that stops with index 0 ends and execution goes
// on after it; with index n > 0 it stops its own enclosing block with
// index n-1.
type stmt interface {
	exec(e *eval, base int) (stop bool, index uint32, err error)
}

// operand is a local variable or, when term is set, a constant.
type operand struct {
	local int
	term  *ast.Term
}

func (o operand) get(e *eval, base int) *ast.Term {
	if o.term != nil {
		return o.term
	}
	return e.stack[base+o.local]
}

type block struct {
	stmts []stmt
	// nlocals is the frame size of the plan's top block.
	nlocals int
}

func (b *block) exec(e *eval, base int) (bool, uint32, error) {
	for _, s := range b.stmts {
		stop, index, err := s.exec(e, base)
		switch {
		case err != nil:
			return false, 0, err
		case !stop:
			continue
		case index == 0:
			return false, 0, nil
		default:
			return true, index - 1, nil
		}
	}
	return false, 0, nil
}

// fail is what a statement returns when its condition does not hold.
func fail() (bool, uint32, error) { return true, 0, nil }

func ok() (bool, uint32, error) { return false, 0, nil }

// blockStmt runs its blocks one after the other; a break leaving one of
// them leaves the statement's block too (it is not a block of its own).
type blockStmt struct{ blocks []*block }

func (s *blockStmt) exec(e *eval, base int) (bool, uint32, error) {
	for _, b := range s.blocks {
		if stop, index, err := b.exec(e, base); stop || err != nil {
			return stop, index, err
		}
	}
	return ok()
}

type breakStmt uint32

func (s breakStmt) exec(*eval, int) (bool, uint32, error) { return true, uint32(s), nil }

type nopStmt struct{}

func (nopStmt) exec(*eval, int) (bool, uint32, error) { return ok() }

// scanStmt runs its block for every key and value of a collection (none
// for anything else). A break of one block ends the scan; of two or more,
// leaves enclosing blocks.
type scanStmt struct {
	source, key, value int
	block              *block
}

func (s *scanStmt) exec(e *eval, base int) (bool, uint32, error) {
	src := e.stack[base+s.source]
	if src == nil {
		return ok()
	}
	st := e.scan(s, base)
	defer e.endScan()
	switch c := src.Value.(type) {
	case ast.Object:
		c.Until(st.visit)
	case *ast.Array:
		for i := range c.Len() {
			if st.visit(ast.InternedTerm(i), c.Elem(i)) {
				break
			}
		}
	case ast.Set:
		for _, t := range c.Slice() {
			if st.visit(t, t) {
				break
			}
		}
	}
	if st.err != nil {
		return false, 0, st.err
	}
	if st.stop && st.index > 0 {
		return true, st.index - 1, nil
	}
	return ok()
}

// scanState is the state of a scan in progress. An evaluation keeps one
// per level of nested scans, each with its visit method bound once, so
// that a scan allocates nothing.
type scanState struct {
	e     *eval
	s     *scanStmt
	base  int
	stop  bool
	index uint32
	err   error
	visit func(k, v *ast.Term) bool
}

func (st *scanState) run(k, v *ast.Term) bool {
	if st.err = st.e.cancelled(); st.err != nil {
		return true
	}
	st.e.stack[st.base+st.s.key], st.e.stack[st.base+st.s.value] = k, v
	st.stop, st.index, st.err = st.s.block.exec(st.e, st.base)
	return st.stop || st.err != nil
}

// scan starts a scan: it returns the state of the next level.
func (e *eval) scan(s *scanStmt, base int) *scanState {
	if e.depth == len(e.scans) {
		st := &scanState{e: e}
		st.visit = st.run
		e.scans = append(e.scans, st)
	}
	st := e.scans[e.depth]
	e.depth++
	st.s, st.base, st.stop, st.index, st.err = s, base, false, 0, nil
	return st
}

func (e *eval) endScan() {
	e.depth--
	e.scans[e.depth].s = nil
}

// notStmt holds when its block does not run to its end.
type notStmt struct{ block *block }

func (s *notStmt) exec(e *eval, base int) (bool, uint32, error) {
	for _, st := range s.block.stmts {
		stop, index, err := st.exec(e, base)
		switch {
		case err != nil:
			return false, 0, err
		case !stop:
			continue
		case index == 0:
			return ok()
		default:
			return true, index - 1, nil
		}
	}
	return fail()
}

// callStmt calls a planned function or a built-in; undefined results
// fail.
type callStmt struct {
	fn     *function
	args   []operand
	result int
}

func (s *callStmt) exec(e *eval, base int) (bool, uint32, error) {
	if err := e.cancelled(); err != nil {
		return false, 0, err
	}
	var out *ast.Term
	var err error
	if s.fn.builtin != nil {
		out, err = s.callBuiltin(e, base)
	} else {
		out, err = s.callFunction(e, base)
	}
	if err != nil || out == nil {
		return out == nil, 0, err
	}
	e.stack[base+s.result] = out
	return ok()
}

func (s *callStmt) callFunction(e *eval, base int) (*ast.Term, error) {
	fn := s.fn
	if fn.memo {
		if m := e.memo[fn.index]; m.done {
			return m.value, nil
		}
	}
	frame := e.push(fn.nlocals)
	for i, p := range fn.params {
		a := s.args[i].get(e, base)
		if a == nil {
			e.pop(frame)
			return nil, nil
		}
		e.stack[frame+int(p)] = a
	}
	for _, b := range fn.blocks {
		if _, _, err := b.exec(e, frame); err != nil {
			e.pop(frame)
			return nil, err
		}
	}
	out := e.stack[frame+int(fn.ret)]
	e.pop(frame)
	if fn.memo {
		e.memo[fn.index] = memoEntry{done: true, value: out}
	}
	return out, nil
}

// callBuiltin runs OPA's implementation. As in OPA's evaluator, an error
// makes the call undefined unless the built-in halts the evaluation.
func (s *callStmt) callBuiltin(e *eval, base int) (*ast.Term, error) {
	args := e.args[:0]
	for _, a := range s.args {
		t := a.get(e, base)
		if t == nil {
			return nil, nil
		}
		args = append(args, t)
	}
	e.args = args[:0]
	e.out = nil
	err := s.fn.builtin(e.bctx, args, e.setOut)
	out := e.out
	e.out = nil
	clear(args)
	if err != nil {
		if h := (topdown.Halt{}); errors.As(err, &h) {
			return nil, h.Err
		}
		return nil, nil
	}
	return out, nil
}

// dotStmt looks a key up in an object, an array or a set.
type dotStmt struct {
	source, key operand
	target      int
}

func (s *dotStmt) exec(e *eval, base int) (bool, uint32, error) {
	src, key := s.source.get(e, base), s.key.get(e, base)
	if src == nil || key == nil {
		return fail()
	}
	var v *ast.Term
	switch c := src.Value.(type) {
	case ast.Object:
		v = c.Get(key)
	case *ast.Array:
		v = c.Get(key)
	case ast.Set:
		if c.Contains(key) {
			v = key
		}
	}
	if v == nil {
		return fail()
	}
	e.stack[base+s.target] = v
	return ok()
}

// assignStmt sets a local; once, it may only set it to the value it has.
type assignStmt struct {
	source operand
	target int
	once   bool
}

func (s *assignStmt) exec(e *eval, base int) (bool, uint32, error) {
	v := s.source.get(e, base)
	if s.once {
		if old := e.stack[base+s.target]; old != nil {
			if v == nil || old.Value.Compare(v.Value) != 0 {
				return false, 0, fmt.Errorf("%w: a complete rule or function has more than one value", ErrConflict)
			}
			return ok()
		}
	}
	e.stack[base+s.target] = v
	return ok()
}

type resetStmt int

func (s resetStmt) exec(e *eval, base int) (bool, uint32, error) {
	e.stack[base+int(s)] = nil
	return ok()
}

type definedStmt struct {
	local int
	want  bool
}

func (s *definedStmt) exec(e *eval, base int) (bool, uint32, error) {
	if (e.stack[base+s.local] != nil) != s.want {
		return fail()
	}
	return ok()
}

type equalStmt struct {
	a, b operand
	want bool
}

func (s *equalStmt) exec(e *eval, base int) (bool, uint32, error) {
	a, b := s.a.get(e, base), s.b.get(e, base)
	if a == nil || b == nil || (a.Value.Compare(b.Value) == 0) != s.want {
		return fail()
	}
	return ok()
}

type kind int

const (
	isArray kind = iota
	isObject
	isSet
)

type isTypeStmt struct {
	source operand
	kind   kind
}

func (s *isTypeStmt) exec(e *eval, base int) (bool, uint32, error) {
	v := s.source.get(e, base)
	if v == nil {
		return fail()
	}
	var is bool
	switch v.Value.(type) {
	case *ast.Array:
		is = s.kind == isArray
	case ast.Object:
		is = s.kind == isObject
	case ast.Set:
		is = s.kind == isSet
	}
	if !is {
		return fail()
	}
	return ok()
}

// makeStmt sets a local to a new value (a constant, or a new empty
// collection).
type makeStmt struct {
	target int
	make   func() *ast.Term
}

func (s *makeStmt) exec(e *eval, base int) (bool, uint32, error) {
	e.stack[base+s.target] = s.make()
	return ok()
}

// collection returns the collection a statement adds to, in local l, as a
// T: the planner makes it before adding to it, so anything else is a
// fault.
func collection[T ast.Value](e *eval, base, l int, what string) (T, error) {
	var zero T
	t := e.stack[base+l]
	if t == nil {
		return zero, fmt.Errorf("%w: %s: undefined collection", ErrFault, what)
	}
	c, ok := t.Value.(T)
	if !ok {
		return zero, fmt.Errorf("%w: %s: the collection is %s", ErrFault, what, ast.ValueName(t.Value))
	}
	return c, nil
}

// defined returns the operands' values, or a fault naming what when one is
// undefined (the planner adds only defined values).
func defined(e *eval, base int, what string, ops ...operand) ([2]*ast.Term, error) {
	var out [2]*ast.Term
	for i, o := range ops {
		if out[i] = o.get(e, base); out[i] == nil {
			return out, fmt.Errorf("%w: %s: undefined value", ErrFault, what)
		}
	}
	return out, nil
}

type setAddStmt struct {
	value operand
	set   int
}

func (s *setAddStmt) exec(e *eval, base int) (bool, uint32, error) {
	v, err := defined(e, base, "set insert", s.value)
	if err != nil {
		return false, 0, err
	}
	c, err := collection[ast.Set](e, base, s.set, "set insert")
	if err != nil {
		return false, 0, err
	}
	c.Add(v[0])
	return ok()
}

type arrayAppendStmt struct {
	value operand
	array int
}

func (s *arrayAppendStmt) exec(e *eval, base int) (bool, uint32, error) {
	v, err := defined(e, base, "array append", s.value)
	if err != nil {
		return false, 0, err
	}
	a, err := collection[*ast.Array](e, base, s.array, "array append")
	if err != nil {
		return false, 0, err
	}
	e.stack[base+s.array] = ast.NewTerm(a.Append(v[0]))
	return ok()
}

type objectInsertStmt struct {
	key, value operand
	object     int
	once       bool
}

func (s *objectInsertStmt) exec(e *eval, base int) (bool, uint32, error) {
	kv, err := defined(e, base, "object insert", s.key, s.value)
	if err != nil {
		return false, 0, err
	}
	o, err := collection[ast.Object](e, base, s.object, "object insert")
	if err != nil {
		return false, 0, err
	}
	k, v := kv[0], kv[1]
	if s.once {
		if old := o.Get(k); old != nil {
			if old.Value.Compare(v.Value) != 0 {
				return false, 0, fmt.Errorf("%w: object rule has two values for key %v", ErrConflict, k)
			}
			return ok()
		}
	}
	o.Insert(k, v)
	return ok()
}

type resultStmt int

func (s resultStmt) exec(e *eval, base int) (bool, uint32, error) {
	v := e.stack[base+int(s)]
	if v == nil {
		return fail()
	}
	for _, r := range e.results {
		if r.Value.Compare(v.Value) == 0 {
			return ok()
		}
	}
	e.results = append(e.results, v)
	return ok()
}
