package translate

import (
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// virtualServices indexes the OCI-style VirtualServices whose route rules
// decide the routing of their root Service: those with a root Service and
// at least one rule, unless a TrafficSplit of the same Service (which takes
// precedence, as SEMANTICS.md says) already routes it. The first
// VirtualService naming a root Service owns it; the OCI translator reports
// the others.
func virtualServices(m *mesh.Model, splits map[mesh.ServiceKey]*mesh.Split) map[mesh.ServiceKey]*mesh.VirtualService {
	out := map[mesh.ServiceKey]*mesh.VirtualService{}
	for i := range m.VirtualServices {
		vs := &m.VirtualServices[i]
		if vs.Service == nil || len(vs.Routes) == 0 {
			continue
		}
		if sp := splits[*vs.Service]; sp != nil && sp.Origin.Kind == "TrafficSplit" {
			continue
		}
		if _, taken := out[*vs.Service]; !taken {
			out[*vs.Service] = vs
		}
	}
	return out
}

// vsRoutes are the routes of an HTTP port of a VirtualService's root
// Service: one route per HTTP or gRPC rule, in the order the rules apply
// (the first match wins, as in OCI Service Mesh), each to its weighted
// destinations with its timeout; then, unless the VirtualService's default
// routing is DENY, a catch-all to the root Service. With DENY a request no
// rule matches has no route: Envoy answers 404 and a gRPC client fails
// the call with UNAVAILABLE.
func (b *builder) vsRoutes(vs *mesh.VirtualService, port int32) []*routev3.Route {
	var routes []*routev3.Route
	for i := range vs.Routes {
		rr := &vs.Routes[i]
		if rr.Match == nil || !isHTTPRule(rr.Protocol) {
			continue
		}
		action := b.weightedAction(rr.Backends, port)
		if action == nil {
			continue // no destination with a positive weight and a cluster
		}
		b.setTimeout(action.Route, rr.RequestTimeoutMs)
		match, ok := b.clientMatch(*rr.Match)
		if !ok {
			continue
		}
		routes = append(routes, &routev3.Route{
			Name:   rr.Origin.String() + " " + rr.Name,
			Match:  routeMatch(match, mesh.PathMatchFull), // PathRegex already ends with ".*"
			Action: action,
		})
	}
	if vs.DefaultRouting != "DENY" {
		routes = append(routes, &routev3.Route{
			Name:   "default",
			Match:  catchAll(),
			Action: toCluster(ClusterName(*vs.Service, port, b.o.ClusterDomain)),
		})
	}
	return routes
}

// isHTTPRule reports whether a route rule routes HTTP requests.
func isHTTPRule(protocol string) bool {
	switch protocol {
	case mesh.RouteHTTP, mesh.RouteHTTP2, mesh.RouteGRPC:
		return true
	}
	return false
}

// weightedAction routes to the Services of weighted destinations on port
// (or on a destination's own port when it names one): a destination bound
// to k Services gives each its weight / k, all weights scaled by the least
// common multiple of the k's so that they stay integers. Services the
// flavor has no cluster for are left out. It returns nil when no
// destination with a positive weight remains.
func (b *builder) weightedAction(backends []mesh.RouteBackend, port int32) *routev3.Route_Route {
	scale := int64(1)
	for _, be := range backends {
		if be.Weight > 0 && len(be.Services) > 0 {
			scale = lcm64(scale, int64(len(be.Services)))
		}
	}
	if scale > maxWeightScale {
		scale = 1 // pathological binding counts: weights become approximate
	}
	var wcs []*routev3.WeightedCluster_ClusterWeight
	for _, be := range backends {
		if be.Weight <= 0 || len(be.Services) == 0 {
			continue
		}
		p := port
		if be.Port != 0 {
			p = be.Port
		}
		w := max(int64(be.Weight)*scale/int64(len(be.Services)), 1)
		for _, svc := range be.Services {
			if !b.hasCluster(svc, p) {
				continue
			}
			wcs = append(wcs, &routev3.WeightedCluster_ClusterWeight{
				Name:   ClusterName(svc, p, b.o.ClusterDomain),
				Weight: wrapperspb.UInt32(uint32(w)),
			})
		}
	}
	return weighted(wcs)
}

// setTimeout bounds a route's requests: Envoy's route timeout (0 disables
// Envoy's default of 15 s), and for gRPC clients, which ignore that field,
// the maximum stream duration (none when 0).
func (b *builder) setTimeout(a *routev3.RouteAction, ms int64) {
	d := durationpb.New(time.Duration(ms) * time.Millisecond)
	if b.o.Flavor == FlavorGRPC {
		if ms > 0 {
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: d}
		}
		return
	}
	a.Timeout = d
}

// maxWeightScale bounds the factor weights are scaled by, so that the
// weights of a rule (each at most 100 per destination) fit Envoy's 32 bits.
const maxWeightScale = 1 << 16

// hasCluster reports whether the outbound side has a cluster for a
// service port: the service is in the mesh, serves the port, and the
// flavor carries it.
func (b *builder) hasCluster(svc mesh.ServiceKey, port int32) bool {
	if b.carried == nil {
		b.carried = map[serviceClusterKey]bool{}
		for i := range b.m.Services {
			s := &b.m.Services[i]
			for _, p := range s.Ports {
				if b.carries(p) {
					b.carried[serviceClusterKey{s.ServiceKey, p.Port}] = true
				}
			}
		}
	}
	return b.carried[serviceClusterKey{svc, port}]
}

// serviceClusterKey names a service port's cluster.
type serviceClusterKey struct {
	svc  mesh.ServiceKey
	port int32
}

func lcm64(a, b int64) int64 {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
