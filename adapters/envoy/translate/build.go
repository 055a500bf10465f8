package translate

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/mesh"
)

// Extension names (the well-known names Envoy and gRPC expect).
const (
	nameHCM              = "envoy.filters.network.http_connection_manager"
	nameTCPProxy         = "envoy.filters.network.tcp_proxy"
	nameNetworkRBAC      = "envoy.filters.network.rbac"
	nameHTTPRBAC         = "envoy.filters.http.rbac"
	nameExtAuthz         = "envoy.filters.http.ext_authz"
	nameRouter           = "envoy.filters.http.router"
	nameOriginalDst      = "envoy.filters.listener.original_dst"
	nameTLS              = "envoy.transport_sockets.tls"
	nameHTTPProtocolOpts = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// connectTimeout is every cluster's connect timeout.
const connectTimeout = 5 * time.Second

// builder holds what every part of a translation needs, and the first
// error met while packing typed configs.
type builder struct {
	m      *mesh.Model
	o      Options
	splits map[mesh.ServiceKey]*mesh.Split
	err    error
	// vservices are the VirtualServices routing their root Service, built
	// on first use by routes (only the outbound side needs them).
	vservices map[mesh.ServiceKey]*mesh.VirtualService
	// carried is the set of service ports with a cluster, built on first
	// use by hasCluster (a builder serves one goroutine).
	carried map[serviceClusterKey]bool
}

func newBuilder(m *mesh.Model, o Options) *builder {
	b := &builder{m: m, o: o, splits: make(map[mesh.ServiceKey]*mesh.Split, len(m.Splits))}
	for i := range m.Splits {
		b.splits[m.Splits[i].Service] = &m.Splits[i]
	}
	return b
}

// any packs msg into an Any with deterministic encoding (map entries such
// as RBAC policies sorted), so equal resources have equal bytes.
func (b *builder) any(msg proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, msg, proto.MarshalOptions{Deterministic: true}); err != nil && b.err == nil {
		b.err = fmt.Errorf("packing %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return a
}

// ads is the config source of every dynamic resource: the ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func socketAddress(address string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// hcm returns an HttpConnectionManager with the settings every meshward
// connection manager shares: paths normalised (dot segments removed,
// slashes merged) and paths with an encoded / or \ rejected, as the policy
// engine normalises them; codec AUTO; the remote address not trusted.
func hcm(statPrefix string, filters []*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:                    hcmv3.HttpConnectionManager_AUTO,
		StatPrefix:                   statPrefix,
		HttpFilters:                  filters,
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		UseRemoteAddress:             wrapperspb.Bool(false),
	}
}

// rdsHCM returns a connection manager whose routes come over ADS as the
// RouteConfiguration named route.
func rdsHCM(statPrefix, route string, filters []*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	h := hcm(statPrefix, filters)
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: route}}
	return h
}

// inlineHCM returns a connection manager with an inline route configuration.
func inlineHCM(statPrefix string, rc *routev3.RouteConfiguration, filters []*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	h := hcm(statPrefix, filters)
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	return h
}

// httpFilter wraps a typed HTTP filter config.
func (b *builder) httpFilter(name string, cfg proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: b.any(cfg)}}
}

// router returns the terminal router filter.
func (b *builder) router() *hcmv3.HttpFilter {
	return b.httpFilter(nameRouter, &routerv3.Router{})
}

// networkFilter wraps a typed network filter config.
func (b *builder) networkFilter(name string, cfg proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: b.any(cfg)}}
}

// catchAll matches every request.
func catchAll() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
}

// toCluster routes to one cluster.
func toCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
	}}
}

// staticCluster returns a cluster with one fixed endpoint: STATIC for an
// IP address, STRICT_DNS for a name.
func staticCluster(name, host string, port uint32) *clusterv3.Cluster {
	typ := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		typ = clusterv3.Cluster_STATIC
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
				}},
			}},
		},
	}
}

// protocolOptions sets a cluster's upstream HTTP protocol: HTTP/2 only
// (explicit) or the downstream request's protocol.
func (b *builder) protocolOptions(http2Only bool) map[string]*anypb.Any {
	opts := &httpupstreamv3.HttpProtocolOptions{}
	if http2Only {
		opts.UpstreamProtocolOptions = &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}
	} else {
		opts.UpstreamProtocolOptions = &httpupstreamv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpupstreamv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}
	}
	return map[string]*anypb.Any{nameHTTPProtocolOpts: b.any(opts)}
}

// extAuthzCluster is the cluster of meshward's ext_authz server: plaintext
// HTTP/2 (gRPC) to ExtAuthzAddress.
func (b *builder) extAuthzCluster() *clusterv3.Cluster {
	host, port, _ := SplitHostPort(b.o.ExtAuthzAddress) // checked by withDefaults
	c := staticCluster(b.o.ExtAuthzCluster, host, port)
	c.TypedExtensionProtocolOptions = b.protocolOptions(true)
	return c
}

// isTCP reports whether a service port carries raw TCP rather than HTTP:
// appProtocol "tcp", or a port name that starts with "tcp".
func isTCP(p mesh.ServicePort) bool {
	return strings.EqualFold(p.AppProtocol, "tcp") || strings.HasPrefix(strings.ToLower(p.Name), "tcp")
}

// isStream reports whether a service port is a TCP stream port at all (UDP
// and SCTP ports get no resources).
func isStream(p mesh.ServicePort) bool {
	return p.Protocol == "" || strings.EqualFold(p.Protocol, "TCP")
}
