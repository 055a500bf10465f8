package server

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// setsOf gives translated resources their references, by type.
func setsOf(t *testing.T, res *translate.Resources) map[string][]*resource {
	t.Helper()
	sets := map[string][]*resource{}
	add := func(typeURL string, msg proto.Message) {
		refs, err := references(msg)
		if err != nil {
			t.Fatal(err)
		}
		sets[typeURL] = append(sets[typeURL], &resource{name: resourceName(msg), refs: refs})
	}
	for _, l := range res.Listeners {
		add(resourcev3.ListenerType, l)
	}
	for _, r := range res.Routes {
		add(resourcev3.RouteType, r)
	}
	for _, c := range res.Clusters {
		add(resourcev3.ClusterType, c)
	}
	return sets
}

func TestCheckReferences(t *testing.T) {
	rdsListener := &listenerv3.Listener{Name: "api", ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "missing-route"}},
	})}}
	tcpListener := &listenerv3.Listener{Name: "tcp", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name:       "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "missing-tcp"}})},
	}}}}}
	route := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{{
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "present", Weight: wrapperspb.UInt32(1)}, {Name: "missing-weighted", Weight: wrapperspb.UInt32(1)}},
		}}}},
	}}}}}
	eds := &clusterv3.Cluster{Name: "present", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	err := checkReferences(setsOf(t, &translate.Resources{
		Listeners: []*listenerv3.Listener{rdsListener, tcpListener},
		Routes:    []*routev3.RouteConfiguration{route},
		Clusters:  []*clusterv3.Cluster{eds},
	}), map[string]bool{})
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("checkReferences = %v, want ErrInconsistent", err)
	}
	for _, want := range []string{`RouteConfiguration "missing-route"`, `Cluster "missing-tcp"`, `Cluster "missing-weighted"`, `ClusterLoadAssignment "present"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// What the translator produces is consistent, in both flavors.
func TestTranslationIsConsistent(t *testing.T) {
	id := mesh.Identity{Namespace: "shop", Name: "api"}
	m := &mesh.Model{Options: mesh.DefaultOptions(), Identities: []mesh.Identity{id}, Services: []mesh.Service{{
		ServiceKey: mesh.ServiceKey{Namespace: "shop", Name: "api"},
		Ports:      []mesh.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}, {Name: "tcp-db", Port: 5432, TargetPort: 5432, Protocol: "TCP"}},
		Endpoints:  []mesh.Endpoint{{Address: "10.0.0.2", Ports: []mesh.EndpointPort{{Name: "http", Port: 8080}, {Name: "tcp-db", Port: 5432}}, Identity: &id, Ready: true}},
		Identities: []mesh.Identity{id},
	}}}
	for _, flavor := range []translate.Flavor{translate.FlavorGRPC, translate.FlavorEnvoy} {
		opts := translate.Options{Flavor: flavor}
		res, err := translate.ForIdentity(m, id, opts)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, cla := range translate.Endpoints(m, opts) {
			names[cla.GetClusterName()] = true
		}
		if err := checkReferences(setsOf(t, res), names); err != nil {
			t.Errorf("%s: %v", flavor, err)
		}
	}
}
