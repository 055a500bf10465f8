package translate

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// servePort is an address and port where a pod of the identity serves,
// and whether it serves HTTP there (else raw TCP).
type servePort struct {
	address string
	port    int32
	http    bool
}

// endpointPort returns the port an endpoint serves a service port on:
// the endpoint port with the service port's name, else (for an unnamed
// service port) its numeric target port; 0 when neither exists.
func endpointPort(e *mesh.Endpoint, sp mesh.ServicePort) int32 {
	for _, ep := range e.Ports {
		if ep.Name == sp.Name {
			return ep.Port
		}
	}
	if sp.Name == "" {
		return sp.TargetPort
	}
	return 0
}

// servePorts lists where the identity's pods serve: for every endpoint of
// the identity (ready or not: a server needs its listener before it is
// ready) and every service port it backs, the endpoint's address and port,
// sorted by address then port. A port is HTTP unless every service port
// leading to it is a TCP port.
func (b *builder) servePorts(id mesh.Identity) []servePort {
	seen := map[servePort]int{} // http == false key -> index in out
	var out []servePort
	for i := range b.m.Services {
		svc := &b.m.Services[i]
		for j := range svc.Endpoints {
			e := &svc.Endpoints[j]
			if e.Identity == nil || *e.Identity != id {
				continue
			}
			for _, sp := range svc.Ports {
				port := endpointPort(e, sp)
				if port <= 0 || !b.carries(sp) {
					continue
				}
				key := servePort{address: e.Address, port: port}
				if k, ok := seen[key]; ok {
					out[k].http = out[k].http || !isTCP(sp)
					continue
				}
				seen[key] = len(out)
				out = append(out, servePort{address: e.Address, port: port, http: !isTCP(sp)})
			}
		}
	}
	slices.SortFunc(out, func(a, b servePort) int {
		return cmp.Or(strings.Compare(a.address, b.address), cmp.Compare(a.port, b.port))
	})
	return out
}

// inbound adds the server side of the identity: where its pods serve,
// and the listeners of the OCI-style IngressGateways its pods run.
func (b *builder) inbound(res *Resources, id mesh.Identity) {
	b.gateways(res, id)
	rules := b.rulesFor(id)
	sps := b.servePorts(id)
	if b.o.Flavor == FlavorGRPC {
		// One listener per address and port, named as the gRPC server asks
		// for it. gRPC-Go ignores filter chains that match on a
		// destination port, so each listener has exactly one, unmatched.
		for _, sp := range sps {
			res.Listeners = append(res.Listeners, &listenerv3.Listener{
				Name:             ServerListenerName(sp.address, sp.port),
				Address:          socketAddress(sp.address, uint32(sp.port)),
				TrafficDirection: corev3.TrafficDirection_INBOUND,
				FilterChains:     []*listenerv3.FilterChain{b.httpChain(rules, sp.port)},
			})
		}
		return
	}
	b.envoyInbound(res, rules, sps)
}

// envoyInbound adds the Envoy flavor's inbound listener: connections to
// the pod are redirected to EnvoyInboundPort and the original destination
// port picks the filter chain, which delivers them to the application on
// 127.0.0.1:<port> through the cluster inbound|<port>.
func (b *builder) envoyInbound(res *Resources, rules []mesh.AccessRule, sps []servePort) {
	http := map[int32]bool{}
	for _, sp := range sps {
		http[sp.port] = http[sp.port] || sp.http
	}
	ports := make([]int32, 0, len(http))
	for p := range http {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	var chains []*listenerv3.FilterChain
	for _, p := range ports {
		var fc *listenerv3.FilterChain
		c := staticCluster(InboundName(p), "127.0.0.1", uint32(p))
		if http[p] {
			fc = b.httpChain(rules, p)
			c.TypedExtensionProtocolOptions = b.protocolOptions(false)
		} else {
			fc = b.tcpChain(rules, p)
		}
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(p))}
		chains = append(chains, fc)
		res.Clusters = append(res.Clusters, c)
	}
	if len(chains) == 0 {
		return
	}
	res.Listeners = append(res.Listeners, b.redirectListener(EnvoyInboundListener, EnvoyInboundPort, corev3.TrafficDirection_INBOUND, chains))
}

// redirectListener is a listener receiving the pod's redirected
// connections on port, its filter chain picked by the original
// destination.
func (b *builder) redirectListener(name string, port uint32, dir corev3.TrafficDirection, chains []*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress("0.0.0.0", port),
		TrafficDirection: dir,
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       nameOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: b.any(&origdstv3.OriginalDst{})},
		}},
		FilterChains: chains,
	}
}

// httpChain is an inbound HTTP filter chain: mTLS, then a connection
// manager with the authorisation filters (RBAC, ext_authz, as the mode
// says, in that order) and the router. Its inline route configuration has
// one virtual host "*" and one route for every path: for gRPC servers a
// non-forwarding action (the server handles the request itself), for
// Envoy the cluster inbound|<port>.
func (b *builder) httpChain(rules []mesh.AccessRule, port int32) *listenerv3.FilterChain {
	name := InboundName(port)
	var filters []*hcmv3.HttpFilter
	if b.o.rbac() {
		filters = append(filters, b.httpRBAC(rules))
	}
	if b.o.extAuthz() {
		filters = append(filters, b.extAuthz())
	}
	filters = append(filters, b.router())
	route := &routev3.Route{Name: "default", Match: catchAll()}
	if b.o.Flavor == FlavorGRPC {
		route.Action = &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}}
	} else {
		route.Action = toCluster(name)
	}
	rc := &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"}, Routes: []*routev3.Route{route}}},
	}
	stat := "inbound_" + strconv.Itoa(int(port))
	return &listenerv3.FilterChain{
		Name:            name,
		TransportSocket: b.downstreamTLS(),
		Filters:         []*listenerv3.Filter{b.networkFilter(nameHCM, inlineHCM(stat, rc, filters))},
	}
}

// tcpChain is an inbound TCP filter chain (Envoy only): mTLS, the network
// RBAC filter from the TCP rules (whatever the authorisation mode: the
// ext_authz contract covers HTTP requests), and a TCP proxy to the
// application.
func (b *builder) tcpChain(rules []mesh.AccessRule, port int32) *listenerv3.FilterChain {
	name := InboundName(port)
	stat := "inbound_" + strconv.Itoa(int(port))
	return &listenerv3.FilterChain{
		Name:            name,
		TransportSocket: b.downstreamTLS(),
		Filters: []*listenerv3.Filter{
			b.networkFilter(nameNetworkRBAC, b.tcpRBAC(rules, port, stat)),
			b.networkFilter(nameTCPProxy, &tcpproxyv3.TcpProxy{
				StatPrefix:       stat,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: name},
			}),
		},
	}
}
