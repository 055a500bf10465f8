package oci

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// grpcContentType matches the content-type of gRPC requests:
// application/grpc, optionally followed by "+format" and parameters.
const grpcContentType = `application/grpc(\+[^;]*)?(;.*)?`

// table is a route table with its place in the order of tables.
type table struct {
	ref      mesh.ObjectRef
	priority int32
	explicit bool
}

// compareTables orders tables by priority, lower first (an omitted priority
// after every given one), then by namespace and name.
func compareTables(a, b table) int {
	if a.explicit != b.explicit {
		if a.explicit {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.priority, b.priority), a.ref.Compare(b.ref))
}

func tableOf(kind, namespace, name string, priority *int32) table {
	tb := table{ref: ref(kind, namespace, name), priority: math.MaxInt32}
	if priority != nil {
		tb.priority, tb.explicit = *priority, true
	}
	return tb
}

// translateRouteTables converts the VirtualServiceRouteTables into the
// route rules of their VirtualServices, and into splits where a split
// expresses them.
func (t *translator) translateRouteTables() {
	type entry struct {
		tb  table
		obj *servicemeshv1beta1.VirtualServiceRouteTable
		vs  *vsState
	}
	var entries []entry
	for _, o := range members(t, KindVirtualServiceRouteTable, t.s.VirtualServiceRouteTables, func(o *servicemeshv1beta1.VirtualServiceRouteTable) *metav1.ObjectMeta {
		return &o.ObjectMeta
	}) {
		tb := tableOf(KindVirtualServiceRouteTable, o.Namespace, o.Name, o.Spec.Priority)
		t.checkPriority(&tb)
		vs, ok := lookup(t, t.vss, tb.ref, "spec.virtualService", KindVirtualService, o.Spec.VirtualService, "the route table is ignored")
		if !ok {
			continue
		}
		entries = append(entries, entry{tb, o, vs})
	}
	slices.SortFunc(entries, func(a, b entry) int { return compareTables(a.tb, b.tb) })
	for _, e := range entries {
		if len(e.obj.Spec.RouteRules) == 0 {
			t.fs.Warnf(e.tb.ref, "spec.routeRules", ReasonInvalidRule, "the route table has no rules; it routes nothing")
		}
		for i := range e.obj.Spec.RouteRules {
			if rr, ok := t.vsRouteRule(e.tb, e.vs, i, &e.obj.Spec.RouteRules[i]); ok {
				e.vs.out.Routes = append(e.vs.out.Routes, rr)
			}
		}
	}
	var splits []mesh.Split
	roots := map[mesh.ServiceKey]mesh.ObjectRef{}
	for _, sp := range t.m.Splits {
		roots[sp.Service] = sp.Origin
	}
	for _, k := range sortedKeys(t.vss) {
		if sp, ok := t.split(t.vss[k], roots); ok {
			splits = append(splits, sp)
			roots[sp.Service] = sp.Origin
		}
	}
	if len(splits) > 0 {
		t.m.Splits = append(t.m.Splits, splits...)
		slices.SortStableFunc(t.m.Splits, func(a, b mesh.Split) int { return a.Service.Compare(b.Service) })
	}
}

// checkPriority clamps a priority outside 0..1000 into it, reporting it.
func (t *translator) checkPriority(tb *table) {
	if !tb.explicit || tb.priority >= 0 && tb.priority <= 1000 {
		return
	}
	clamped := min(max(tb.priority, 0), 1000)
	t.fs.Warnf(tb.ref, "spec.priority", ReasonInvalidValue, "priority %d is not between 0 and 1000; %d is used", tb.priority, clamped)
	tb.priority = clamped
}

// vsRouteRule converts one rule of a VirtualServiceRouteTable.
func (t *translator) vsRouteRule(tb table, vs *vsState, i int, rule *servicemeshv1beta1.VirtualServiceRouteRule) (mesh.RouteRule, bool) {
	name := fmt.Sprintf("routeRules[%d]", i)
	field := "spec." + name
	rr := mesh.RouteRule{Origin: tb.ref, Name: name, Priority: tb.priority}
	if !tb.explicit {
		rr.Priority = 0
	}
	if n := count(rule.HTTPRoute != nil, rule.TCPRoute != nil, rule.TLSPassthroughRoute != nil); n != 1 {
		t.fs.Errorf(tb.ref, field, ReasonInvalidRule,
			"sets %d of httpRoute, tcpRoute and tlsPassthroughRoute, and exactly one must be set; the rule is ignored", n)
		return rr, false
	}
	var dests []servicemeshv1beta1.VirtualDeploymentTarget
	switch {
	case rule.HTTPRoute != nil:
		h := rule.HTTPRoute
		field += ".httpRoute"
		dests = h.Destinations
		match, ok := t.httpMatch(tb.ref, field, name, h.Path, h.PathType, h.IsGrpc)
		if !ok {
			return rr, false
		}
		rr.Match = match
		rr.Protocol = mesh.RouteHTTP
		grpc := h.IsGrpc != nil && *h.IsGrpc
		if grpc || t.allGRPC(vs, dests) {
			rr.Protocol = mesh.RouteGRPC
		} else {
			rr.RequestTimeoutMs = DefaultRequestTimeoutMs
		}
		if h.RequestTimeoutInMs != nil {
			rr.RequestTimeoutMs = max(*h.RequestTimeoutInMs, 0)
		}
	case rule.TCPRoute != nil:
		field += ".tcpRoute"
		rr.Protocol = mesh.RouteTCP
		dests = rule.TCPRoute.Destinations
	default:
		field += ".tlsPassthroughRoute"
		rr.Protocol = mesh.RouteTLSPassthrough
		dests = rule.TLSPassthroughRoute.Destinations
	}
	for j, d := range dests {
		dfield := fmt.Sprintf("%s.destinations[%d]", field, j)
		vd, ok := lookup(t, t.vds, tb.ref, dfield+".virtualDeployment", KindVirtualDeployment, d.VirtualDeployment, "the destination is ignored")
		if !ok {
			continue
		}
		if vd.vs != vs {
			t.fs.Errorf(tb.ref, dfield+".virtualDeployment", ReasonWrongVirtualService,
				"%s serves %s, not %s; the destination is ignored", vd.ref, vd.vs.ref, vs.ref)
			continue
		}
		b, ok := t.backend(tb.ref, dfield, vd.ref, d.Weight, d.Port)
		if !ok {
			continue
		}
		b.Services = vd.services
		rr.Backends = append(rr.Backends, b)
	}
	t.checkWeights(tb.ref, field, &rr)
	return rr, true
}

// backend checks a destination's weight and port.
func (t *translator) backend(tbl mesh.ObjectRef, field string, target mesh.ObjectRef, weight int32, port *int32) (mesh.RouteBackend, bool) {
	b := mesh.RouteBackend{Target: target, Weight: weight}
	if weight < 0 || weight > 100 {
		t.fs.Errorf(tbl, field+".weight", ReasonInvalidWeight, "weight %d is not between 0 and 100; the destination is ignored", weight)
		return b, false
	}
	if port != nil {
		if *port < 1 || *port > 65535 {
			t.fs.Errorf(tbl, field+".port", ReasonInvalidPort, "port %d is not between 1 and 65535; the destination is ignored", *port)
			return b, false
		}
		b.Port = *port
	}
	return b, true
}

// checkWeights reports a rule whose usable destinations weigh nothing.
func (t *translator) checkWeights(tbl mesh.ObjectRef, field string, rr *mesh.RouteRule) {
	var total int32
	for _, b := range rr.Backends {
		total += b.Weight
	}
	if total == 0 {
		t.fs.Errorf(tbl, field+".destinations", ReasonZeroTotalWeight,
			"the usable destinations' weights sum to 0; the rule routes nothing")
	}
}

// httpMatch is the match of an HTTP rule: a path prefix, and a gRPC
// content-type when isGrpc is set.
func (t *translator) httpMatch(tbl mesh.ObjectRef, field, name string, path *string, pathType servicemeshv1beta1.PathType, isGrpc *bool) (*mesh.HTTPMatch, bool) {
	m := &mesh.HTTPMatch{Group: tbl, Name: name}
	if pathType != "" && pathType != servicemeshv1beta1.PathPrefix {
		t.fs.Errorf(tbl, field+".pathType", ReasonInvalidValue, "path type %q is not PREFIX; the rule is ignored", pathType)
		return nil, false
	}
	if path != nil && *path != "" {
		if !strings.HasPrefix(*path, "/") {
			t.fs.Errorf(tbl, field+".path", ReasonInvalidPath, "path %q does not start with \"/\"; the rule is ignored", *path)
			return nil, false
		}
		if *path != "/" {
			m.PathRegex = regexp.QuoteMeta(*path) + ".*"
		}
	}
	if isGrpc != nil && *isGrpc {
		m.Headers = []mesh.HeaderMatch{{Name: "content-type", Regex: grpcContentType}}
	}
	return m, true
}

// allGRPC reports whether every destination's listeners all speak GRPC.
func (t *translator) allGRPC(vs *vsState, dests []servicemeshv1beta1.VirtualDeploymentTarget) bool {
	if len(dests) == 0 {
		return false
	}
	for _, d := range dests {
		if d.VirtualDeployment.Ref == nil {
			return false
		}
		k := nsName{d.VirtualDeployment.Ref.Namespace, d.VirtualDeployment.Ref.Name}
		if k.Namespace == "" {
			k.Namespace = vs.ref.Namespace
		}
		if vd := t.vds[k]; vd == nil || !vd.grpc {
			return false
		}
	}
	return true
}

// isCatchAll reports whether a rule routes every request or connection.
func isCatchAll(rr *mesh.RouteRule) bool {
	return rr.Match == nil || rr.Match.PathRegex == "" && len(rr.Match.Headers) == 0
}

// split takes the root Service for a VirtualService's routing and, when
// one can, expresses that routing as a split of the root Service as well:
// every rule must send its traffic to the same weighted Services. The xDS
// translator applies the complete routing (Model.VirtualServices) either
// way; the split is what the routing means to readers of splits. A root
// Service that a TrafficSplit, or an earlier VirtualService, already routes
// is reported, and the routing of this one is not applied.
func (t *translator) split(vs *vsState, roots map[mesh.ServiceKey]mesh.ObjectRef) (mesh.Split, bool) {
	routes := vs.out.Routes
	if len(routes) == 0 {
		return mesh.Split{}, false
	}
	first := routes[0].Origin
	if vs.out.Service == nil {
		t.fs.Warnf(vs.ref, "spec.hosts", ReasonNoRootService,
			"no host names a Service of the mesh (<name>.<namespace>.svc...), so the routing of its route tables is recorded but not applied")
		return mesh.Split{}, false
	}
	root := *vs.out.Service
	if other, taken := roots[root]; taken {
		t.fs.Errorf(first, "spec.virtualService", ReasonConflictingSplit,
			"%s already routes Service %s; the routing of %s is not applied", other, root, vs.ref)
		return mesh.Split{}, false
	}
	roots[root] = first
	for i := range routes {
		rr := &routes[i]
		for _, b := range rr.Backends {
			if vd := t.vds[nsName{b.Target.Namespace, b.Target.Name}]; b.Weight > 0 && vd != nil && vd.labelled {
				t.fs.Warnf(rr.Origin, "spec."+rr.Name, ReasonLabelsNotRouted,
					"a binding of %s narrows its Service's pods by matchLabels, and proxies route to whole Services: the rule's traffic for it reaches every pod of %s",
					b.Target, strings.Join(serviceNames(b.Services), ", "))
			}
		}
	}
	sp := mesh.Split{Origin: first, Service: root}
	catchAll := false
	for i := range routes {
		rr := &routes[i]
		backends, problem := splitBackends(rr)
		if problem != "" || (i > 0 && !slices.Equal(backends, sp.Backends)) {
			return mesh.Split{}, false // routed by the proxies from the route rules only
		}
		if i == 0 {
			sp.Backends = backends
		}
		if isCatchAll(rr) {
			catchAll = true
		} else {
			sp.Matches = append(sp.Matches, *rr.Match)
		}
	}
	if catchAll {
		sp.Matches = nil
	} else {
		sp.Matched = true
	}
	return sp, true
}

func serviceNames(ks []mesh.ServiceKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.String()
	}
	return out
}

// splitBackends turns a rule's backends into weighted Services: a
// VirtualDeployment bound to k Services gives each its weight / k (all
// weights are scaled by the least common multiple of the k's, so they stay
// integers). problem says why the rule cannot be a split.
func splitBackends(rr *mesh.RouteRule) (out []mesh.SplitBackend, problem string) {
	l := int32(1)
	var total int32
	for _, b := range rr.Backends {
		if b.Weight == 0 {
			continue
		}
		if len(b.Services) == 0 {
			return nil, fmt.Sprintf("%s has no bound Service to route to", b.Target)
		}
		if b.Port != 0 {
			return nil, fmt.Sprintf("the destination %s names port %d, and a split routes each port to the same port", b.Target, b.Port)
		}
		l = lcm(l, int32(len(b.Services)))
		total += b.Weight
	}
	if total == 0 {
		return nil, "the rule's destinations weigh nothing"
	}
	for _, b := range rr.Backends {
		if b.Weight == 0 {
			continue
		}
		share := b.Weight * (l / int32(len(b.Services)))
		for _, s := range b.Services {
			if i := slices.IndexFunc(out, func(o mesh.SplitBackend) bool { return o.Service == s }); i >= 0 {
				out[i].Weight += share
				continue
			}
			out = append(out, mesh.SplitBackend{Service: s, Weight: share})
		}
	}
	return out, ""
}

func lcm(a, b int32) int32 {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
