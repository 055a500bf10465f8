package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
)

// Egress describes a request from the mesh to a service outside it,
// checked against the mesh's egress rules (OCI-style AccessPolicies with
// an externalService destination) instead of access rules. Only the
// caller is a mesh identity (Request.Source); Request.Destination is not
// used.
type Egress struct {
	// Host is the HTTP Host (authority) of an HTTP request; a port in it
	// is ignored.
	Host string
	// SNI is the TLS server name of a TLS connection.
	SNI string
	// Address is the destination IP address of a connection.
	Address string
}

// egressDoc builds data.meshward.egress:
//
//	{<source "ns/name">: [{rule: "AccessPolicy ns/name: rules[i]",
//	  protocol: "http"|"https"|"tcp", hosts: [...], wildcards: [...],
//	  cidrs: [...], ports: [...]}]}
//
// hosts are exact host names (lower case); a "*.example.com" host becomes
// the wildcard ".example.com", which matches any name ending with it.
// Empty ports means every port.
func egressDoc(m *mesh.Model) map[string]any {
	doc := map[string]any{}
	for i := range m.Egress {
		e := &m.Egress[i]
		hosts, wildcards, cidrs, ports := []any{}, []any{}, []any{}, []any{}
		for _, h := range e.Hosts {
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				wildcards = append(wildcards, "."+rest)
				continue
			}
			hosts = append(hosts, h)
		}
		for _, c := range e.CIDRs {
			cidrs = append(cidrs, c)
		}
		for _, p := range e.Ports {
			ports = append(ports, int64(p))
		}
		entry := map[string]any{
			"rule":      ruleLabel(e.Origin, e.Origin, e.Name),
			"protocol":  e.Protocol,
			"hosts":     hosts,
			"wildcards": wildcards,
			"cidrs":     cidrs,
			"ports":     ports,
		}
		for _, s := range e.Sources {
			src := s.String()
			list, _ := doc[src].([]any)
			doc[src] = append(list, entry)
		}
	}
	return doc
}

func egressValue(m *mesh.Model) *ast.Term {
	v, err := ast.InterfaceToValue(egressDoc(m))
	if err != nil {
		// Only strings, numbers, lists and maps: cannot happen.
		panic(err)
	}
	return ast.NewTerm(v)
}

var (
	keyEgress = ast.StringTerm("egress")
	keySNI    = ast.StringTerm("sni")
)

// egressTerm is input.meshward.egress: host (lower case, without port
// or trailing dot), sni and address, each present only when known.
func egressTerm(eg *Egress) (*ast.Term, error) {
	kv := make([][2]*ast.Term, 0, 3)
	if h := egressHost(eg.Host); h != "" {
		kv = append(kv, [2]*ast.Term{keyHost, ast.StringTerm(h)})
	}
	if s := strings.ToLower(strings.TrimSuffix(eg.SNI, ".")); s != "" {
		kv = append(kv, [2]*ast.Term{keySNI, ast.StringTerm(s)})
	}
	if eg.Address != "" {
		a, err := netip.ParseAddr(eg.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: egress address %q is not an IP address", ErrInvalidRequest, eg.Address)
		}
		kv = append(kv, [2]*ast.Term{keyAddress, ast.StringTerm(a.Unmap().String())})
	}
	return ast.ObjectTerm(kv...), nil
}

// egressHost reads a Host header as a host name: lower case, without a
// port or a trailing dot.
func egressHost(h string) string {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return h
}
