package policy

import (
	"cmp"
	"regexp"
	"strings"

	"github.com/meshward/meshward/mesh"
)

// Data returns the data document meshward writes at data.meshward for a
// model:
//
//	options:    {permissive, failOpen, pathMatch, principalFormat, trustDomain,
//	            accessKinds}
//	identities: {<principal>: "ns/name"}, with both the SPIFFE and the DNS
//	            form of every identity's principal
//	access:     {<destination "ns/name">: {<source "ns/name">: [entry]}}
//	ingress:    IngressBackends by backend and port (see ingressDoc)
//	egress:     egress rules by source (see egressDoc)
//
// where an entry is one access rule (one TrafficTarget):
//
//	{origin: "TrafficTarget ns/name",
//	 http: [{group: "HTTPRouteGroup ns/name", name, rule,
//	         methods: [...] (empty = any), method: anchored RE2 ("" = any),
//	         path: anchored RE2 ("" = any), headers: [{name, regex}]}],
//	 tcp:  [{route: "TCPRoute ns/name", name, rule, ports: [...] (empty = any)}],
//	 udp:  [{route: "UDPRoute ns/name", name, rule, ports: [...]}]}
//
// rule names the match for explanations: "TrafficTarget ns/t:
// HTTPRouteGroup ns/g match m". method is methods as one expression
// ("^(?:GET|POST)$"), so that the policy matches a method without a branch
// for "any". Path expressions are anchored as the mesh option PathMatch
// says: "^(?:re)" for prefix, "^(?:re)$" for full; header expressions are
// always "^(?:re)$". An empty expression matches anything. Indexing by destination, then source, keeps the cost of a
// decision independent of the number of access rules. Data is pure; a nil
// model gives the document of an empty mesh.
func Data(m *mesh.Model) map[string]any {
	if m == nil {
		m = &mesh.Model{Options: mesh.DefaultOptions()}
	}
	o := m.Options
	return map[string]any{
		"options": map[string]any{
			"permissive":      o.Permissive,
			"failOpen":        o.FailOpen,
			"pathMatch":       string(o.PathMatch),
			"principalFormat": string(o.PrincipalFormat),
			"trustDomain":     o.TrustDomain,
			"accessKinds":     accessKinds(m),
		},
		"identities": identityDoc(m),
		"access":     accessDoc(m),
		"ingress":    ingressDoc(m),
		"egress":     egressDoc(m),
	}
}

// accessKinds names the kinds of objects that grant access in a model, for
// explanations: "TrafficTarget", "AccessPolicy" or "TrafficTarget or
// AccessPolicy". A mesh without access rules is explained in SMI's terms.
func accessKinds(m *mesh.Model) string {
	var smi, oci bool
	for i := range m.Access {
		switch m.Access[i].Origin.Kind {
		case "AccessPolicy":
			oci = true
		default:
			smi = true
		}
	}
	switch {
	case oci && smi:
		return "TrafficTarget or AccessPolicy"
	case oci:
		return "AccessPolicy"
	default:
		return "TrafficTarget"
	}
}

// principal returns an identity's principal in the mesh's format: the
// only form its certificates carry and Envoy's RBAC matches, so the only
// form that names it in decisions (SEMANTICS.md: one format per mesh).
func principal(id mesh.Identity, o mesh.Options) string {
	return id.Principal(o.PrincipalFormat, o.TrustDomain)
}

// identityDoc maps the principal of every identity, in the mesh's format,
// to "ns/name". A principal that two identities would share (only possible
// in the DNS form with names the API server rejects) is left out: it
// identifies nobody.
func identityDoc(m *mesh.Model) map[string]any {
	out := make(map[string]any, len(m.Identities))
	clash := map[string]bool{}
	for _, id := range m.Identities {
		name := id.String()
		p := principal(id, m.Options)
		if prev, ok := out[p]; ok && prev != name {
			clash[p] = true
		}
		out[p] = name
	}
	for p := range clash {
		delete(out, p)
	}
	return out
}

func accessDoc(m *mesh.Model) map[string]any {
	out := map[string]any{}
	for i := range m.Access {
		r := &m.Access[i]
		if len(r.Sources) == 0 {
			continue
		}
		entry := accessEntry(r, m.Options.PathMatch)
		dst := r.Destination.String()
		bySource, _ := out[dst].(map[string]any)
		if bySource == nil {
			bySource = map[string]any{}
			out[dst] = bySource
		}
		for _, s := range r.Sources {
			src := s.String()
			list, _ := bySource[src].([]any)
			bySource[src] = append(list, entry)
		}
	}
	return out
}

func accessEntry(r *mesh.AccessRule, pm mesh.PathMatch) map[string]any {
	httpDoc := make([]any, 0, len(r.HTTP))
	for _, h := range r.HTTP {
		httpDoc = append(httpDoc, httpMatchDoc(r.Origin, h, pm))
	}
	return map[string]any{
		"origin": r.Origin.String(),
		"http":   httpDoc,
		"tcp":    portDoc(r.Origin, r.TCP),
		"udp":    portDoc(r.Origin, r.UDP),
	}
}

func httpMatchDoc(origin mesh.ObjectRef, h mesh.HTTPMatch, pm mesh.PathMatch) map[string]any {
	methods := make([]any, 0, len(h.Methods))
	for _, m := range h.Methods {
		methods = append(methods, m)
	}
	headers := make([]any, 0, len(h.Headers))
	for _, hm := range h.Headers {
		headers = append(headers, map[string]any{"name": hm.Name, "regex": FullMatch(hm.Regex)})
	}
	return map[string]any{
		"group":   h.Group.String(),
		"name":    h.Name,
		"rule":    ruleLabel(origin, h.Group, h.Name),
		"methods": methods,
		"method":  MethodRegex(h.Methods),
		"path":    AnchorPath(h.PathRegex, pm),
		"headers": headers,
	}
}

func portDoc(origin mesh.ObjectRef, ms []mesh.PortMatch) []any {
	out := make([]any, 0, len(ms))
	for _, pm := range ms {
		ports := make([]any, 0, len(pm.Ports))
		for _, p := range pm.Ports {
			ports = append(ports, int64(p))
		}
		out = append(out, map[string]any{
			"route": pm.Route.String(),
			"name":  pm.Name,
			"rule":  ruleLabel(origin, pm.Route, pm.Name),
			"ports": ports,
		})
	}
	return out
}

// AnchorPath anchors an HTTPRouteGroup pathRegex for matching against a
// normalised path: at the start for PathMatchPrefix, at both ends for
// PathMatchFull. An empty expression stays empty (any path).
func AnchorPath(re string, pm mesh.PathMatch) string {
	switch {
	case re == "":
		return ""
	case pm == mesh.PathMatchFull:
		return FullMatch(re)
	default:
		return "^(?:" + re + ")"
	}
}

// FullMatch anchors an expression at both ends.
func FullMatch(re string) string { return "^(?:" + re + ")$" }

// MethodRegex is the anchored expression matching any of the methods; ""
// (which matches anything) when there are none.
func MethodRegex(methods []string) string {
	if len(methods) == 0 {
		return ""
	}
	quoted := make([]string, len(methods))
	for i, m := range methods {
		quoted[i] = regexp.QuoteMeta(m)
	}
	return FullMatch(strings.Join(quoted, "|"))
}

// ruleLabel names a match of a rule: "TrafficTarget ns/t: HTTPRouteGroup
// ns/g match m" ("... (unnamed match)" for a match without a name).
func ruleLabel(origin, object mesh.ObjectRef, name string) string {
	if object == origin {
		// An OCI AccessPolicy is both the grant and its rules.
		return origin.String() + ": " + cmp.Or(name, "(unnamed rule)")
	}
	if name == "" {
		return origin.String() + ": " + object.String() + " (unnamed match)"
	}
	return origin.String() + ": " + object.String() + " match " + name
}
