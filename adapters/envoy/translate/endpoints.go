package translate

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// UnknownZone is the locality zone of endpoints whose EndpointSlice gives
// no zone. gRPC rejects a LocalityLbEndpoints without a locality, so every
// group of endpoints has one.
const UnknownZone = "unknown"

// Endpoints returns the ClusterLoadAssignment of every cluster that
// ForIdentity emits for a service port (the same for every identity),
// sorted by cluster name. They are separate from ForIdentity so that
// endpoint churn changes only EDS.
//
// An assignment lists the ready endpoints of the service, each at the port
// it serves the service port on (see the package documentation); endpoints
// that are not ready are left out. Endpoints are grouped by zone into
// localities, all of priority 0, each weighted by its number of endpoints
// so that every endpoint gets an equal share (gRPC first picks a locality
// by weight, then an endpoint in it). Options are read for Flavor (which
// ports have clusters) and ClusterDomain; invalid options are not
// reported here (ForIdentity reports them).
func Endpoints(m *mesh.Model, opts Options) []*endpointv3.ClusterLoadAssignment {
	o, _ := opts.withDefaults()
	b := newBuilder(m, o)
	var out []*endpointv3.ClusterLoadAssignment
	for i := range m.Services {
		svc := &m.Services[i]
		for _, sp := range svc.Ports {
			if b.carries(sp) {
				out = append(out, b.loadAssignment(svc, sp))
			}
		}
	}
	slices.SortFunc(out, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return strings.Compare(a.GetClusterName(), b.GetClusterName())
	})
	return out
}

// loadAssignment is the assignment of one service port.
func (b *builder) loadAssignment(svc *mesh.Service, sp mesh.ServicePort) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: ClusterName(svc.ServiceKey, sp.Port, b.o.ClusterDomain)}
	byZone := map[string]*endpointv3.LocalityLbEndpoints{}
	seen := map[string]bool{} // gRPC rejects an address listed twice
	for i := range svc.Endpoints {
		e := &svc.Endpoints[i]
		port := endpointPort(e, sp)
		if !e.Ready || port <= 0 || seen[e.Address] {
			continue
		}
		seen[e.Address] = true
		zone := e.Zone
		if zone == "" {
			zone = UnknownZone
		}
		loc := byZone[zone]
		if loc == nil {
			loc = &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: zone}}
			byZone[zone] = loc
			cla.Endpoints = append(cla.Endpoints, loc)
		}
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(e.Address, uint32(port)),
			}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		})
	}
	for _, loc := range cla.Endpoints {
		loc.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(loc.LbEndpoints)))
	}
	slices.SortFunc(cla.Endpoints, func(a, b *endpointv3.LocalityLbEndpoints) int {
		return strings.Compare(a.GetLocality().GetZone(), b.GetLocality().GetZone())
	})
	return cla
}
