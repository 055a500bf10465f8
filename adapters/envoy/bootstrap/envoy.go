package bootstrap

import (
	"fmt"
	"net/netip"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/adapters/envoy/translate"
)

// xdsConnectTimeout is the xDS cluster's connect timeout.
const xdsConnectTimeout = 5 * time.Second

// Envoy returns the Envoy bootstrap of a sidecar:
//
//   - node: the id, cluster <sa>.<ns>, and the identity in the metadata;
//   - admin: on AdminAddress (loopback by default);
//   - dynamic_resources: listeners and clusters over ADS (state of the
//     world, or delta with Delta) from the static cluster XDSClusterName;
//   - static_resources: that cluster, HTTP/2 to XDSAddress (STATIC for an
//     IP address, STRICT_DNS for a name), with mTLS from the workload's
//     certificate files unless Plaintext.
//
// The sidecar still needs the traffic redirection described in
// docs/xds.md, and its mesh certificates over SDS.
func Envoy(opts Options) (*bootstrapv3.Bootstrap, error) {
	o, err := opts.withDefaults(translate.FlavorEnvoy)
	if err != nil {
		return nil, err
	}
	meta, err := structpb.NewStruct(NodeMetadata(o.Identity))
	if err != nil {
		return nil, err
	}
	xdsCluster, err := o.xdsCluster()
	if err != nil {
		return nil, err
	}
	adminHost, adminPort, _ := translate.SplitHostPort(o.AdminAddress) // checked by withDefaults
	apiType := corev3.ApiConfigSource_GRPC
	if o.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	ads := &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{
			Id:       o.NodeID,
			Cluster:  o.Identity.Name + "." + o.Identity.Namespace,
			Metadata: meta,
		},
		Admin: &bootstrapv3.Admin{Address: socketAddress(adminHost, adminPort)},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             apiType,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName}},
				}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads,
			CdsConfig: proto.CloneOf(ads),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xdsCluster}},
	}
	return b, nil
}

// EnvoyYAML returns Envoy(opts) as YAML.
func EnvoyYAML(opts Options) ([]byte, error) {
	b, err := Envoy(opts)
	if err != nil {
		return nil, err
	}
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// xdsCluster is the static cluster of the xDS server.
func (o Options) xdsCluster() (*clusterv3.Cluster, error) {
	host, port, _ := translate.SplitHostPort(o.XDSAddress) // checked by withDefaults
	typ := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		typ = clusterv3.Cluster_STATIC
	}
	h2, err := anypb.New(&httpupstreamv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpupstreamv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:                 XDSClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(xdsConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: XDSClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
				}},
			}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
		},
	}
	if o.Plaintext {
		return c, nil
	}
	tlsCtx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{
				CertificateChain: fileSource(o.file(CertFile)),
				PrivateKey:       fileSource(o.file(KeyFile)),
			}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: fileSource(o.XDSCAFile)},
			},
		},
	}
	if typ == clusterv3.Cluster_STRICT_DNS {
		tlsCtx.Sni = host
	}
	ts, err := anypb.New(tlsCtx)
	if err != nil {
		return nil, fmt.Errorf("packing the xDS cluster's TLS context: %w", err)
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ts},
	}
	return c, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}
