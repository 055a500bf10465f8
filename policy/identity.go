package policy

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
)

// identity is one identity of the model with its input terms built once.
type identity struct {
	// name is "ns/name".
	name *ast.Term
	// principal is the principal in the mesh's principal format.
	principal *ast.Term
}

// identityIndex resolves principals and "ns/name" strings to identities
// through the model's identity list: a principal is looked up whole, never
// split on ".".
type identityIndex struct {
	opts mesh.Options
	// byPrincipal holds every identity's principal in the mesh's format.
	byPrincipal map[string]principalEntry
	// byName is keyed by "ns/name".
	byName map[string]*identity
	// headers are the header names the model's HTTP matches read
	// (matchedHeaders).
	headers []string
	// data is the policy's data document, {"meshward": ...}, as the plan
	// evaluator reads it (the store holds the same document).
	data *ast.Term
}

type principalEntry struct {
	term *ast.Term
	id   *identity
}

func newIdentityIndex(m *mesh.Model) *identityIndex {
	if m == nil {
		m = &mesh.Model{Options: mesh.DefaultOptions()}
	}
	x := &identityIndex{
		opts:        m.Options,
		byPrincipal: make(map[string]principalEntry, len(m.Identities)),
		byName:      make(map[string]*identity, len(m.Identities)),
		headers:     matchedHeaders(m),
	}
	clash := map[string]bool{}
	for _, id := range m.Identities {
		name := id.String()
		if _, dup := x.byName[name]; dup {
			continue
		}
		// The mesh's principal form only; the term is also the identity's
		// principal in inputs, and the map key shares its string.
		p := principal(id, m.Options)
		own := ast.StringTerm(p)
		e := &identity{name: ast.StringTerm(name), principal: own}
		x.byName[name] = e
		if prev, ok := x.byPrincipal[p]; ok && prev.id != e {
			clash[p] = true
		}
		x.byPrincipal[p] = principalEntry{term: own, id: e}
	}
	for p := range clash {
		delete(x.byPrincipal, p)
	}
	return x
}

// resolve reads a principal or a "ns/name" identity. It returns the
// principal to put in the input and the identity, nil when the mesh does
// not know it.
func (x *identityIndex) resolve(s string) (*ast.Term, *identity) {
	if s == "" {
		return nil, nil
	}
	if e, ok := x.byPrincipal[s]; ok {
		return e.term, e.id
	}
	if e, ok := x.byName[s]; ok {
		return e.principal, e
	}
	if id, ok := ParseIdentity(s); ok {
		return ast.StringTerm(id.Principal(x.opts.PrincipalFormat, x.opts.TrustDomain)), nil
	}
	return ast.StringTerm(s), nil
}

// ParseIdentity reads "namespace/name". Principals (which contain ":")
// and strings without exactly one "/" are not identities.
func ParseIdentity(s string) (mesh.Identity, bool) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, "/") || strings.ContainsAny(s, ": ") {
		return mesh.Identity{}, false
	}
	return mesh.Identity{Namespace: ns, Name: name}, true
}
