package translate

import (
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshward/meshward/mesh"
)

const nameTLSInspector = "envoy.filters.listener.tls_inspector"

// GatewayListenerName names the listener (and, for HTTP, the
// RouteConfiguration) of an OCI-style IngressGateway's port:
// "gateway|<namespace>/<name>|<port>".
func GatewayListenerName(gw mesh.ObjectRef, port int32) string {
	return "gateway|" + gw.Namespace + "/" + gw.Name + "|" + strconv.Itoa(int(port))
}

// gateways adds the listeners of the OCI-style IngressGateways whose pods
// run as id. Gateways run Envoy, so only the Envoy flavor has them.
func (b *builder) gateways(res *Resources, id mesh.Identity) {
	if b.o.Flavor != FlavorEnvoy {
		return
	}
	for i := range b.m.Gateways {
		gw := &b.m.Gateways[i]
		if slices.Contains(gw.Identities, id) {
			b.gateway(res, gw)
		}
	}
}

// gatewayPort is one port of a gateway with the hosts listening on it.
type gatewayPort struct {
	port     int32
	protocol string
	hosts    []*mesh.GatewayHost
}

// gatewayPorts groups a gateway's listeners by port, in port order. A
// host listens on a port with the port's first protocol only; listeners
// whose TLS mode needs a gateway certificate (TLS, MUTUAL_TLS) are not
// served: meshward has no certificates for gateway host names yet. Nor are
// listeners on the ports of the sidecar's own listeners, which every pod
// has. The OCI translator reports both.
func gatewayPorts(gw *mesh.Gateway) []gatewayPort {
	byPort := map[int32]*gatewayPort{}
	var out []*gatewayPort
	for i := range gw.Hosts {
		h := &gw.Hosts[i]
		for _, l := range h.Listeners {
			if l.TLSMode == "TLS" || l.TLSMode == "MUTUAL_TLS" || l.Port == EnvoyOutboundPort || l.Port == EnvoyInboundPort {
				continue
			}
			gp := byPort[l.Port]
			if gp == nil {
				gp = &gatewayPort{port: l.Port, protocol: l.Protocol}
				byPort[l.Port] = gp
				out = append(out, gp)
			}
			if gp.protocol == l.Protocol && !slices.Contains(gp.hosts, h) {
				gp.hosts = append(gp.hosts, h)
			}
		}
	}
	slices.SortFunc(out, func(a, b *gatewayPort) int { return int(a.port - b.port) })
	ports := make([]gatewayPort, len(out))
	for i, gp := range out {
		ports[i] = *gp
	}
	return ports
}

// gateway adds one listener per served port of the gateway, on 0.0.0.0:
// HTTP ports route by host name and path prefix (RouteConfiguration of
// the listener's name), TCP ports proxy to their rule's destinations, TLS
// passthrough ports pick the destinations by TLS server name.
func (b *builder) gateway(res *Resources, gw *mesh.Gateway) {
	for _, gp := range gatewayPorts(gw) {
		name := GatewayListenerName(gw.Origin, gp.port)
		l := &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress("0.0.0.0", uint32(gp.port)),
			TrafficDirection: corev3.TrafficDirection_INBOUND,
		}
		switch gp.protocol {
		case mesh.RouteHTTP:
			res.Routes = append(res.Routes, b.gatewayRoutes(gw, gp, name))
			l.FilterChains = []*listenerv3.FilterChain{{
				Name:    name,
				Filters: []*listenerv3.Filter{b.networkFilter(nameHCM, rdsHCM(gatewayStat(gw, gp.port), name, b.gatewayHTTPFilters()))},
			}}
		case mesh.RouteTCP:
			if fc := b.gatewayTCPChain(gw, gp, gp.hosts, name); fc != nil {
				l.FilterChains = []*listenerv3.FilterChain{fc}
			}
		case mesh.RouteTLSPassthrough:
			l.ListenerFilters = []*listenerv3.ListenerFilter{{
				Name:       nameTLSInspector,
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: b.any(&tlsinspectorv3.TlsInspector{})},
			}}
			// Envoy refuses two chains with the same match: a server name
			// (or the catch-all of a host without names) goes to the
			// first host that claims it.
			taken, catchAll := map[string]bool{}, false
			for _, h := range gp.hosts {
				var names []string
				for _, n := range serverNames(h.Hostnames) {
					if !taken[n] {
						taken[n] = true
						names = append(names, n)
					}
				}
				switch {
				case len(h.Hostnames) == 0 && catchAll, len(h.Hostnames) > 0 && len(names) == 0:
					continue
				case len(h.Hostnames) == 0:
					catchAll = true
				}
				fc := b.gatewayTCPChain(gw, gp, []*mesh.GatewayHost{h}, name+"|"+h.Name)
				if fc == nil {
					continue
				}
				if len(names) > 0 {
					fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: names}
				}
				l.FilterChains = append(l.FilterChains, fc)
			}
		}
		if len(l.FilterChains) > 0 {
			res.Listeners = append(res.Listeners, l)
		}
	}
}

// gatewayHTTPFilters are the HTTP filters of a gateway listener: only the
// router. Access is enforced where the requests arrive: the sidecars of
// the VirtualServices' pods check the gateway's identity (AccessPolicies
// with an ingressGateway source).
func (b *builder) gatewayHTTPFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{b.router()}
}

func gatewayStat(gw *mesh.Gateway, port int32) string {
	return "gateway_" + gw.Origin.Namespace + "_" + gw.Origin.Name + "_" + strconv.Itoa(int(port))
}

// gatewayRoutes is the RouteConfiguration of an HTTP port: a virtual host
// per gateway host (its host names, with and without the port; "*" for a
// host without names), whose routes are the gateway's HTTP rules for that
// host and port in the order they apply. A request no rule matches has no
// route (404). A host name already taken by an earlier host is left out:
// Envoy needs the domains of a configuration to be distinct.
func (b *builder) gatewayRoutes(gw *mesh.Gateway, gp gatewayPort, name string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	taken := map[string]bool{}
	for _, h := range gp.hosts {
		var domains []string
		add := func(d string) {
			if !taken[d] {
				taken[d] = true
				domains = append(domains, d)
			}
		}
		if len(h.Hostnames) == 0 {
			add("*")
		}
		for _, hn := range h.Hostnames {
			hn = strings.ToLower(hn)
			add(hn)
			add(hn + ":" + strconv.Itoa(int(gp.port)))
		}
		if len(domains) == 0 {
			continue
		}
		var routes []*routev3.Route
		for i := range gw.Routes {
			rr := &gw.Routes[i]
			if rr.Match == nil || !isHTTPRule(rr.Protocol) || !ruleServes(rr, h.Name, gp.port) {
				continue
			}
			action := b.gatewayAction(rr, true)
			if action == nil {
				continue
			}
			route := action.Route
			b.setTimeout(route, rr.RequestTimeoutMs)
			if rr.RewritePath && rr.Match.PathRegex != "" {
				route.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: "^" + strings.TrimSuffix(rr.Match.PathRegex, ".*") + "/?"},
					Substitution: "/",
				}
			}
			routes = append(routes, &routev3.Route{
				Name:   rr.Origin.String() + " " + rr.Name,
				Match:  routeMatch(*rr.Match, mesh.PathMatchFull),
				Action: action,
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: h.Name, Domains: domains, Routes: routes})
	}
	return rc
}

// ruleServes reports whether a gateway rule applies to a host and port.
func ruleServes(rr *mesh.RouteRule, host string, port int32) bool {
	return (rr.GatewayHost == "" || rr.GatewayHost == host) && (rr.GatewayPort == 0 || rr.GatewayPort == port)
}

// gatewayTCPChain is the filter chain of a TCP or TLS passthrough port for
// hosts: a TCP proxy to the destinations of the first rule of the port's
// protocol that applies to one of them; nil when no rule does.
func (b *builder) gatewayTCPChain(gw *mesh.Gateway, gp gatewayPort, hosts []*mesh.GatewayHost, name string) *listenerv3.FilterChain {
	for i := range gw.Routes {
		rr := &gw.Routes[i]
		if rr.Protocol != gp.protocol || !slices.ContainsFunc(hosts, func(h *mesh.GatewayHost) bool { return ruleServes(rr, h.Name, gp.port) }) {
			continue
		}
		action := b.gatewayAction(rr, false)
		if action == nil {
			continue
		}
		tp := &tcpproxyv3.TcpProxy{StatPrefix: gatewayStat(gw, gp.port)}
		switch cs := action.Route.ClusterSpecifier.(type) {
		case *routev3.RouteAction_Cluster:
			tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: cs.Cluster}
		case *routev3.RouteAction_WeightedClusters:
			wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
			for _, c := range cs.WeightedClusters.GetClusters() {
				wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c.GetName(), Weight: c.GetWeight().GetValue()})
			}
			tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
		}
		return &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{b.networkFilter(nameTCPProxy, tp)}}
	}
	return nil
}

// gatewayAction routes a gateway rule to its destinations, the root
// Services of VirtualServices, on the destination's port, or on the
// Service's only port of the rule's kind (HTTP or TCP) when the rule names
// none. With RewriteHost, each destination's requests carry its
// VirtualService's first host.
func (b *builder) gatewayAction(rr *mesh.RouteRule, http bool) *routev3.Route_Route {
	backends := make([]mesh.RouteBackend, 0, len(rr.Backends))
	hosts := map[string]string{} // cluster -> host to rewrite to
	for _, be := range rr.Backends {
		if len(be.Services) == 0 {
			continue
		}
		if be.Port == 0 {
			be.Port = b.solePort(be.Services[0], http)
		}
		if be.Port == 0 {
			continue
		}
		if rr.RewriteHost {
			if vs := b.virtualService(be.Target); vs != nil && len(vs.Hosts) > 0 {
				for _, svc := range be.Services {
					hosts[ClusterName(svc, be.Port, b.o.ClusterDomain)] = vs.Hosts[0]
				}
			}
		}
		backends = append(backends, be)
	}
	action := b.weightedAction(backends, 0)
	if action == nil || len(hosts) == 0 {
		return action
	}
	switch cs := action.Route.ClusterSpecifier.(type) {
	case *routev3.RouteAction_Cluster:
		if h := hosts[cs.Cluster]; h != "" {
			action.Route.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: h}
		}
	case *routev3.RouteAction_WeightedClusters:
		for _, c := range cs.WeightedClusters.GetClusters() {
			if h := hosts[c.GetName()]; h != "" {
				c.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: h}
			}
		}
	}
	return action
}

// solePort returns a service's only carried port of a kind (HTTP or TCP),
// 0 when it has none or several.
func (b *builder) solePort(svc mesh.ServiceKey, http bool) int32 {
	var found int32
	for i := range b.m.Services {
		s := &b.m.Services[i]
		if s.ServiceKey != svc {
			continue
		}
		for _, p := range s.Ports {
			if !b.carries(p) || isTCP(p) == http {
				continue
			}
			if found != 0 {
				return 0
			}
			found = p.Port
		}
	}
	return found
}

// virtualService returns the model's VirtualService named ref.
func (b *builder) virtualService(ref mesh.ObjectRef) *mesh.VirtualService {
	for i := range b.m.VirtualServices {
		if b.m.VirtualServices[i].Origin == ref {
			return &b.m.VirtualServices[i]
		}
	}
	return nil
}

// serverNames are the TLS server names of host names: lower case, and a
// leading "*." kept as Envoy's wildcard.
func serverNames(hostnames []string) []string {
	out := make([]string, 0, len(hostnames))
	for _, h := range hostnames {
		out = append(out, strings.ToLower(h))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
