package policy

import (
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
)

// Ingress describes an ingress request, checked against IngressBackends
// instead of TrafficTargets.
type Ingress struct {
	// Backend is the backend Service, "namespace/name".
	Backend string
	// Port is the backend's target port, as IngressBackends name it.
	Port uint32
	// Address is the client's address, as the trusted ingress reports it.
	Address string
	// Principal is the client certificate's principal, when the ingress
	// verified one.
	Principal string
}

// ingressDoc builds data.meshward.ingress:
//
//	{<backend "ns/svc">: {<target port>: [{rule: "IngressBackend ns/name",
//	  checkAddress, addresses: [...], cidrs: [...],
//	  checkPrincipal, principals: [...]}]}}
//
// checkAddress is true when the IngressBackend lists address sources
// (Service or IPRange); checkPrincipal when the backend validates client
// certificates and the IngressBackend lists principals.
func ingressDoc(m *mesh.Model) map[string]any {
	doc := map[string]any{}
	for i := range m.Ingress {
		ib := &m.Ingress[i]
		addresses, cidrs, principals := []any{}, []any{}, []any{}
		checkAddress, hasPrincipal := false, false
		for _, s := range ib.Sources {
			switch {
			case s.IsAddress():
				checkAddress = true
				for _, a := range s.Addresses {
					addresses = append(addresses, a)
				}
				if s.CIDR != "" {
					cidrs = append(cidrs, s.CIDR)
				}
			case s.Kind == mesh.IngressSourceAuthenticatedPrincipal:
				hasPrincipal = true
				principals = append(principals, s.Principal)
			}
		}
		for _, b := range ib.Backends {
			checkPrincipal := hasPrincipal && b.ChecksPrincipal()
			if !checkAddress && !checkPrincipal {
				continue // admits nothing
			}
			key := b.Service.String()
			ports, _ := doc[key].(map[string]any)
			if ports == nil {
				ports = map[string]any{}
				doc[key] = ports
			}
			port := strconv.Itoa(int(b.Port))
			entries, _ := ports[port].([]any)
			ports[port] = append(entries, map[string]any{
				"rule":           ib.Origin.String(),
				"checkAddress":   checkAddress,
				"addresses":      addresses,
				"cidrs":          cidrs,
				"checkPrincipal": checkPrincipal,
				"principals":     principals,
			})
		}
	}
	return doc
}

func ingressValue(m *mesh.Model) *ast.Term {
	v, err := ast.InterfaceToValue(ingressDoc(m))
	if err != nil {
		// Only strings, booleans, lists and maps: cannot happen.
		panic(err)
	}
	return ast.NewTerm(v)
}

var (
	keyIngress   = ast.StringTerm("ingress")
	keyBackend   = ast.StringTerm("backend")
	keyClientAdr = ast.StringTerm("address")
)

// ingressTerm is input.meshward.ingress.
func ingressTerm(in *Ingress) *ast.Term {
	return ast.ObjectTerm(
		[2]*ast.Term{keyBackend, ast.StringTerm(in.Backend)},
		[2]*ast.Term{keyPort, ast.StringTerm(strconv.FormatUint(uint64(in.Port), 10))},
		[2]*ast.Term{keyClientAdr, ast.StringTerm(in.Address)},
		[2]*ast.Term{keyPrincipal, ast.StringTerm(in.Principal)},
	)
}
