package translate

import (
	"math"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// carries reports whether the flavor gets resources for a service port:
// TCP-stream ports only, and for the gRPC flavor HTTP ports only (a gRPC
// client speaks HTTP/2, never raw TCP).
func (b *builder) carries(p mesh.ServicePort) bool {
	return isStream(p) && (b.o.Flavor == FlavorEnvoy || !isTCP(p))
}

// outbound adds the client side of every service port in the mesh: a
// cluster each, and the listeners and routes that lead to them.
func (b *builder) outbound(res *Resources) {
	vhosts := map[int32][]*routev3.VirtualHost{} // Envoy flavor, by port number
	tcp := map[int32][]string{}                  // Envoy flavor, TCP clusters by port number
	for i := range b.m.Services {
		svc := &b.m.Services[i]
		for _, p := range svc.Ports {
			if !b.carries(p) {
				continue
			}
			res.Clusters = append(res.Clusters, b.edsCluster(svc, p))
			if isTCP(p) {
				tcp[p.Port] = append(tcp[p.Port], ClusterName(svc.ServiceKey, p.Port, b.o.ClusterDomain))
				continue
			}
			vh := b.virtualHost(svc.ServiceKey, p.Port)
			if b.o.Flavor == FlavorGRPC {
				name := ServiceAuthority(svc.ServiceKey, p.Port, b.o.ClusterDomain)
				res.Listeners = append(res.Listeners, b.apiListener(name))
				res.Routes = append(res.Routes, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}})
				continue
			}
			vhosts[p.Port] = append(vhosts[p.Port], vh)
		}
	}
	if b.o.Flavor == FlavorEnvoy {
		b.envoyOutbound(res, vhosts, tcp)
	}
}

// edsCluster is a service port's cluster: endpoints over EDS (ADS), round
// robin, mTLS to the service's identities.
func (b *builder) edsCluster(svc *mesh.Service, p mesh.ServicePort) *clusterv3.Cluster {
	name := ClusterName(svc.ServiceKey, p.Port, b.o.ClusterDomain)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		TransportSocket:      b.upstreamTLS(svc),
	}
	if b.o.Flavor == FlavorEnvoy && !isTCP(p) {
		// Keep the caller's protocol (HTTP/1.1 or HTTP/2, so gRPC works)
		// on the way to the server's sidecar.
		c.TypedExtensionProtocolOptions = b.protocolOptions(false)
	}
	return c
}

// apiListener is a gRPC client's listener for one service port: its
// routes come over ADS in the RouteConfiguration of the same name.
func (b *builder) apiListener(name string) *listenerv3.Listener {
	h := rdsHCM("outbound", name, []*hcmv3.HttpFilter{b.router()})
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: b.any(h)},
	}
}

// envoyOutbound adds the Envoy flavor's outbound listener: the redirected
// connections of the pod arrive on EnvoyOutboundPort, and the original
// destination port picks a filter chain. A port some mesh service serves
// HTTP on gets an HTTP connection manager whose RouteConfiguration
// (outbound|<port>) picks the service by Host; a port only TCP services
// use is proxied to that service when exactly one service has it, and has
// no chain (connections are closed) when several have.
func (b *builder) envoyOutbound(res *Resources, vhosts map[int32][]*routev3.VirtualHost, tcp map[int32][]string) {
	ports := make([]int32, 0, len(vhosts)+len(tcp))
	for p := range vhosts {
		ports = append(ports, p)
	}
	for p := range tcp {
		if _, ok := vhosts[p]; !ok {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	var chains []*listenerv3.FilterChain
	for _, p := range ports {
		stat := "outbound_" + strconv.Itoa(int(p))
		var f *listenerv3.Filter
		switch {
		case len(vhosts[p]) > 0:
			name := EnvoyOutboundRouteName(p)
			res.Routes = append(res.Routes, &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts[p]})
			f = b.networkFilter(nameHCM, rdsHCM(stat, name, []*hcmv3.HttpFilter{b.router()}))
		case len(tcp[p]) == 1:
			f = b.networkFilter(nameTCPProxy, &tcpproxyv3.TcpProxy{
				StatPrefix:       stat,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: tcp[p][0]},
			})
		default:
			continue
		}
		chains = append(chains, &listenerv3.FilterChain{
			Name:             "outbound|" + strconv.Itoa(int(p)),
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(p))},
			Filters:          []*listenerv3.Filter{f},
		})
	}
	if len(chains) == 0 {
		return
	}
	res.Listeners = append(res.Listeners, b.redirectListener(EnvoyOutboundListener, EnvoyOutboundPort, corev3.TrafficDirection_OUTBOUND, chains))
}

// virtualHost is the virtual host of a service port, named by its
// authority.
func (b *builder) virtualHost(svc mesh.ServiceKey, port int32) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    ServiceAuthority(svc, port, b.o.ClusterDomain),
		Domains: serviceDomains(svc, port, b.o.ClusterDomain),
		Routes:  b.routes(svc, port),
	}
}

// routes are the routes of a service port. Without a split, everything
// goes to the service's own cluster. A split without matches sends
// everything to its backends. A split with matches has one route per
// match to the backends, in the order of the matches, then a catch-all to
// the root service; a split whose matches did not resolve splits nothing.
//
// The root Service of an OCI-style VirtualService with route rules is
// routed by those rules instead (see vsRoutes), unless a TrafficSplit
// routes it.
func (b *builder) routes(svc mesh.ServiceKey, port int32) []*routev3.Route {
	if b.vservices == nil {
		b.vservices = virtualServices(b.m, b.splits)
	}
	if vs := b.vservices[svc]; vs != nil {
		return b.vsRoutes(vs, port)
	}
	root := ClusterName(svc, port, b.o.ClusterDomain)
	def := &routev3.Route{Name: "default", Match: catchAll(), Action: toCluster(root)}
	sp := b.splits[svc]
	if sp == nil || b.splitAction(sp, port) == nil {
		return []*routev3.Route{def}
	}
	if !sp.Matched {
		return []*routev3.Route{{Name: sp.Origin.String(), Match: catchAll(), Action: b.splitAction(sp, port)}}
	}
	routes := make([]*routev3.Route, 0, len(sp.Matches)+1)
	for _, hm := range sp.Matches {
		m, ok := b.clientMatch(hm)
		if !ok {
			continue // no call of this flavor's clients can match it
		}
		routes = append(routes, &routev3.Route{
			Name:   describeMatch(hm),
			Match:  routeMatch(m, b.m.Options.PathMatch),
			Action: b.splitAction(sp, port),
		})
	}
	return append(routes, def)
}

// splitAction routes to the split's backends (their clusters for the same
// port number) in proportion to their weights. Backends with weight 0 are
// left out; a single remaining backend is routed to directly. Weights are
// scaled down when their sum would not fit in 32 bits. It returns nil when
// no backend has a positive weight.
func (b *builder) splitAction(sp *mesh.Split, port int32) *routev3.Route_Route {
	div := sp.TotalWeight()/math.MaxUint32 + 1
	var wcs []*routev3.WeightedCluster_ClusterWeight
	for _, be := range sp.Backends {
		if be.Weight <= 0 {
			continue
		}
		w := max(int64(be.Weight)/div, 1)
		wcs = append(wcs, &routev3.WeightedCluster_ClusterWeight{
			Name:   ClusterName(be.Service, port, b.o.ClusterDomain),
			Weight: wrapperspb.UInt32(uint32(w)),
		})
	}
	return weighted(wcs)
}

// weighted routes to weighted clusters: nil without any, the cluster
// itself when there is one.
func weighted(wcs []*routev3.WeightedCluster_ClusterWeight) *routev3.Route_Route {
	switch len(wcs) {
	case 0:
		return nil
	case 1:
		return toCluster(wcs[0].Name)
	}
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: wcs}},
	}}
}
