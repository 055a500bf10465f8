package oci

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// translateGatewayRouteTables converts the IngressGatewayRouteTables into
// the route rules of their IngressGateways.
func (t *translator) translateGatewayRouteTables() {
	type entry struct {
		tb  table
		obj *servicemeshv1beta1.IngressGatewayRouteTable
		gw  *gwState
	}
	var entries []entry
	for _, o := range members(t, KindIngressGatewayRouteTable, t.s.IngressGatewayRouteTables, func(o *servicemeshv1beta1.IngressGatewayRouteTable) *metav1.ObjectMeta {
		return &o.ObjectMeta
	}) {
		tb := tableOf(KindIngressGatewayRouteTable, o.Namespace, o.Name, o.Spec.Priority)
		t.checkPriority(&tb)
		gw, ok := lookup(t, t.gws, tb.ref, "spec.ingressGateway", KindIngressGateway, o.Spec.IngressGateway, "the route table is ignored")
		if !ok {
			continue
		}
		entries = append(entries, entry{tb, o, gw})
	}
	slices.SortFunc(entries, func(a, b entry) int { return compareTables(a.tb, b.tb) })
	for _, e := range entries {
		for i := range e.obj.Spec.RouteRules {
			if rr, ok := t.gatewayRouteRule(e.tb, e.gw, i, &e.obj.Spec.RouteRules[i]); ok {
				e.gw.out.Routes = append(e.gw.out.Routes, rr)
			}
		}
	}
}

// gatewayRouteRule converts one rule of an IngressGatewayRouteTable.
func (t *translator) gatewayRouteRule(tb table, gw *gwState, i int, rule *servicemeshv1beta1.IngressGatewayRouteRule) (mesh.RouteRule, bool) {
	name := fmt.Sprintf("routeRules[%d]", i)
	field := "spec." + name
	rr := mesh.RouteRule{Origin: tb.ref, Name: name}
	if tb.explicit {
		rr.Priority = tb.priority
	}
	if n := count(rule.HTTPRoute != nil, rule.TCPRoute != nil, rule.TLSPassthroughRoute != nil); n != 1 {
		t.fs.Errorf(tb.ref, field, ReasonInvalidRule,
			"sets %d of httpRoute, tcpRoute and tlsPassthroughRoute, and exactly one must be set; the rule is ignored", n)
		return rr, false
	}
	var (
		host  *servicemeshv1beta1.IngressGatewayHostRef
		dests []servicemeshv1beta1.VirtualServiceTarget
	)
	switch {
	case rule.HTTPRoute != nil:
		h := rule.HTTPRoute
		field += ".httpRoute"
		host, dests = h.IngressGatewayHost, h.Destinations
		match, ok := t.httpMatch(tb.ref, field, name, h.Path, h.PathType, h.IsGrpc)
		if !ok {
			return rr, false
		}
		rr.Match = match
		rr.Protocol = mesh.RouteHTTP
		if h.IsGrpc != nil && *h.IsGrpc {
			rr.Protocol = mesh.RouteGRPC
		} else {
			rr.RequestTimeoutMs = DefaultRequestTimeoutMs
		}
		if h.RequestTimeoutInMs != nil {
			rr.RequestTimeoutMs = max(*h.RequestTimeoutInMs, 0)
		}
		rr.RewritePath = h.IsPathRewriteEnabled != nil && *h.IsPathRewriteEnabled
		rr.RewriteHost = h.IsHostRewriteEnabled != nil && *h.IsHostRewriteEnabled
	case rule.TCPRoute != nil:
		field += ".tcpRoute"
		rr.Protocol = mesh.RouteTCP
		host, dests = rule.TCPRoute.IngressGatewayHost, rule.TCPRoute.Destinations
	default:
		field += ".tlsPassthroughRoute"
		rr.Protocol = mesh.RouteTLSPassthrough
		host, dests = rule.TLSPassthroughRoute.IngressGatewayHost, rule.TLSPassthroughRoute.Destinations
	}
	if host != nil && !t.gatewayHost(tb.ref, field+".ingressGatewayHost", gw, host, &rr) {
		return rr, false
	}
	for j, d := range dests {
		dfield := fmt.Sprintf("%s.destinations[%d]", field, j)
		vs, ok := lookup(t, t.vss, tb.ref, dfield+".virtualService", KindVirtualService, d.VirtualService, "the destination is ignored")
		if !ok {
			continue
		}
		if vs.mesh != gw.mesh {
			t.fs.Errorf(tb.ref, dfield+".virtualService", ReasonWrongMesh,
				"%s belongs to %s, not to the gateway's %s; the destination is ignored", vs.ref, vs.mesh.ref, gw.mesh.ref)
			continue
		}
		weight := int32(100)
		if d.Weight != nil {
			weight = *d.Weight
		}
		b, ok := t.backend(tb.ref, dfield, vs.ref, weight, d.Port)
		if !ok {
			continue
		}
		if vs.out.Service != nil {
			b.Services = []mesh.ServiceKey{*vs.out.Service}
		}
		rr.Backends = append(rr.Backends, b)
	}
	t.checkWeights(tb.ref, field, &rr)
	return rr, true
}

// gatewayHost checks that a rule's host (and port) is one of the gateway's.
func (t *translator) gatewayHost(tbl mesh.ObjectRef, field string, gw *gwState, h *servicemeshv1beta1.IngressGatewayHostRef, rr *mesh.RouteRule) bool {
	i := slices.IndexFunc(gw.out.Hosts, func(gh mesh.GatewayHost) bool { return gh.Name == h.Name })
	if i < 0 {
		t.fs.Errorf(tbl, field+".name", ReasonUnknownHost, "%s has no host named %q; the rule is ignored", gw.ref, h.Name)
		return false
	}
	rr.GatewayHost = h.Name
	if h.Port == nil {
		return true
	}
	if !slices.ContainsFunc(gw.out.Hosts[i].Listeners, func(l mesh.GatewayListener) bool { return l.Port == *h.Port }) {
		t.fs.Errorf(tbl, field+".port", ReasonUnknownHost, "host %q of %s has no listener on port %d; the rule is ignored", h.Name, gw.ref, *h.Port)
		return false
	}
	rr.GatewayPort = *h.Port
	return true
}
