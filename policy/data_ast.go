package policy

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
)

// dataValue builds the document of Data directly as an AST value, the form
// the engine's store keeps. Equal strings share one term and an access
// entry listed under several sources is one value, which keeps the data of
// large meshes small. TestDataValue checks that it equals Data.
func dataValue(m *mesh.Model) ast.Value {
	return dataValueWith(m, newIdentityIndex(m))
}

// dataValueWith is dataValue sharing the terms of the model's identity
// index.
func dataValueWith(m *mesh.Model, idx *identityIndex) ast.Value {
	if m == nil {
		m = &mesh.Model{Options: mesh.DefaultOptions()}
	}
	b := &astBuilder{
		strs:  make(map[string]*ast.Term, 4*len(m.Access)+2*len(m.Identities)),
		lists: map[string]*ast.Term{},
	}
	o := m.Options
	options := b.object(
		"permissive", ast.BooleanTerm(o.Permissive),
		"failOpen", ast.BooleanTerm(o.FailOpen),
		"pathMatch", b.str(string(o.PathMatch)),
		"principalFormat", b.str(string(o.PrincipalFormat)),
		"trustDomain", b.str(o.TrustDomain),
		"accessKinds", b.str(accessKinds(m)),
	)

	idKV := make([][2]*ast.Term, 0, len(idx.byPrincipal))
	for _, e := range idx.byPrincipal {
		idKV = append(idKV, [2]*ast.Term{e.term, e.id.name})
	}
	for _, e := range idx.byName {
		b.strs[string(e.name.Value.(ast.String))] = e.name
	}

	type dest struct {
		key     string
		sources map[string][]*ast.Term
		order   []string
	}
	var dests []*dest
	byDest := map[string]*dest{}
	for i := range m.Access {
		r := &m.Access[i]
		if len(r.Sources) == 0 {
			continue
		}
		entry := b.accessEntry(r, o.PathMatch)
		key := r.Destination.String()
		d := byDest[key]
		if d == nil {
			d = &dest{key: key, sources: map[string][]*ast.Term{}}
			byDest[key] = d
			dests = append(dests, d)
		}
		for _, s := range r.Sources {
			src := s.String()
			if _, seen := d.sources[src]; !seen {
				d.order = append(d.order, src)
			}
			d.sources[src] = append(d.sources[src], entry)
		}
	}
	accessKV := make([][2]*ast.Term, 0, len(dests))
	for _, d := range dests {
		kv := make([][2]*ast.Term, 0, len(d.order))
		for _, src := range d.order {
			kv = append(kv, [2]*ast.Term{b.str(src), ast.ArrayTerm(d.sources[src]...)})
		}
		accessKV = append(accessKV, [2]*ast.Term{b.str(d.key), ast.ObjectTerm(kv...)})
	}
	return ast.NewObject(
		[2]*ast.Term{b.str("options"), options},
		[2]*ast.Term{b.str("identities"), ast.ObjectTerm(idKV...)},
		[2]*ast.Term{b.str("access"), ast.ObjectTerm(accessKV...)},
		[2]*ast.Term{b.str("ingress"), ingressValue(m)},
		[2]*ast.Term{b.str("egress"), egressValue(m)},
	)
}

// astBuilder interns strings and lists while building a document: the
// document is never modified, so equal values may be one value.
type astBuilder struct {
	strs  map[string]*ast.Term
	lists map[string]*ast.Term
}

// emptyArray is every empty list of the document.
var emptyArray = ast.ArrayTerm()

func (b *astBuilder) str(s string) *ast.Term {
	t, ok := b.strs[s]
	if !ok {
		t = ast.StringTerm(s)
		b.strs[s] = t
	}
	return t
}

// object builds an object from alternating string keys and values.
func (b *astBuilder) object(kv ...any) *ast.Term {
	pairs := make([][2]*ast.Term, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		pairs = append(pairs, [2]*ast.Term{b.str(kv[i].(string)), kv[i+1].(*ast.Term)})
	}
	return ast.ObjectTerm(pairs...)
}

func (b *astBuilder) strings(ss []string) *ast.Term {
	if len(ss) == 0 {
		return emptyArray
	}
	key := strings.Join(ss, "\x00")
	if t, ok := b.lists[key]; ok {
		return t
	}
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = b.str(s)
	}
	t := ast.ArrayTerm(ts...)
	b.lists[key] = t
	return t
}

// array returns an array of terms, the shared empty array when empty.
func array(ts []*ast.Term) *ast.Term {
	if len(ts) == 0 {
		return emptyArray
	}
	return ast.ArrayTerm(ts...)
}

func (b *astBuilder) accessEntry(r *mesh.AccessRule, pm mesh.PathMatch) *ast.Term {
	httpTerms := make([]*ast.Term, len(r.HTTP))
	for i, h := range r.HTTP {
		headers := make([]*ast.Term, len(h.Headers))
		for j, hm := range h.Headers {
			headers[j] = b.object("name", b.str(hm.Name), "regex", b.str(FullMatch(hm.Regex)))
		}
		httpTerms[i] = b.object(
			"group", b.str(h.Group.String()),
			"name", b.str(h.Name),
			"rule", b.str(ruleLabel(r.Origin, h.Group, h.Name)),
			"methods", b.strings(h.Methods),
			"method", b.str(MethodRegex(h.Methods)),
			"path", b.str(AnchorPath(h.PathRegex, pm)),
			"headers", array(headers),
		)
	}
	return b.object(
		"origin", b.str(r.Origin.String()),
		"http", array(httpTerms),
		"tcp", b.ports(r.Origin, r.TCP),
		"udp", b.ports(r.Origin, r.UDP),
	)
}

func (b *astBuilder) ports(origin mesh.ObjectRef, ms []mesh.PortMatch) *ast.Term {
	out := make([]*ast.Term, len(ms))
	for i, pm := range ms {
		ports := make([]*ast.Term, len(pm.Ports))
		for j, p := range pm.Ports {
			ports[j] = ast.IntNumberTerm(int(p))
		}
		portList := array(ports)
		out[i] = b.object(
			"route", b.str(pm.Route.String()),
			"name", b.str(pm.Name),
			"rule", b.str(ruleLabel(origin, pm.Route, pm.Name)),
			"ports", portList,
		)
	}
	return array(out)
}
