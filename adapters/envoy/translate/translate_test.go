package translate

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshward/meshward/mesh"
)

func smallModel() *mesh.Model {
	id := mesh.Identity{Namespace: "shop", Name: "web"}
	return &mesh.Model{
		Options:    mesh.DefaultOptions(),
		Identities: []mesh.Identity{id},
		Services: []mesh.Service{{
			ServiceKey: mesh.ServiceKey{Namespace: "shop", Name: "web"},
			Ports:      []mesh.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}},
			Endpoints: []mesh.Endpoint{{
				Address: "10.0.0.1", Identity: &id, Ready: true,
				Ports: []mesh.EndpointPort{{Name: "http", Port: 8080}},
			}},
			Identities: []mesh.Identity{id},
		}},
	}
}

func TestForIdentityErrors(t *testing.T) {
	web := mesh.Identity{Namespace: "shop", Name: "web"}
	tests := map[string]struct {
		id   mesh.Identity
		opts Options
		want error
	}{
		"no flavor":              {web, Options{}, ErrInvalidOptions},
		"unknown flavor":         {web, Options{Flavor: "linkerd"}, ErrInvalidOptions},
		"unknown authz mode":     {web, Options{Flavor: FlavorEnvoy, Authz: "opa"}, ErrInvalidOptions},
		"ext_authz no cluster":   {web, Options{Flavor: FlavorEnvoy, Authz: AuthzExtAuthz, ExtAuthzAddress: "a:1"}, ErrInvalidOptions},
		"ext_authz bad address":  {web, Options{Flavor: FlavorEnvoy, Authz: AuthzBoth, ExtAuthzCluster: "x", ExtAuthzAddress: "a"}, ErrInvalidOptions},
		"ext_authz port 0":       {web, Options{Flavor: FlavorEnvoy, Authz: AuthzBoth, ExtAuthzCluster: "x", ExtAuthzAddress: "a:0"}, ErrInvalidOptions},
		"grpc ext_authz":         {web, Options{Flavor: FlavorGRPC, Authz: AuthzExtAuthz, ExtAuthzCluster: "x", ExtAuthzAddress: "a:1"}, ErrUnsupported},
		"grpc both":              {web, Options{Flavor: FlavorGRPC, Authz: AuthzBoth, ExtAuthzCluster: "x", ExtAuthzAddress: "a:1"}, ErrUnsupported},
		"bad cluster domain":     {web, Options{Flavor: FlavorGRPC, ClusterDomain: "a/b"}, ErrInvalidOptions},
		"unknown identity":       {mesh.Identity{Namespace: "shop", Name: "nobody"}, Options{Flavor: FlavorGRPC}, ErrUnknownIdentity},
		"valid grpc":             {web, Options{Flavor: FlavorGRPC}, nil},
		"valid envoy both (dns)": {web, Options{Flavor: FlavorEnvoy, Authz: AuthzBoth, ExtAuthzCluster: "x", ExtAuthzAddress: "authz.example:9191"}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ForIdentity(smallModel(), tc.id, tc.opts)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	svc := mesh.ServiceKey{Namespace: "shop", Name: "web"}
	tests := map[string]struct{ got, want string }{
		"authority":       {ServiceAuthority(svc, 80, "cluster.local"), "web.shop.svc.cluster.local:80"},
		"cluster":         {ClusterName(svc, 80, "corp"), "outbound|80||web.shop.svc.corp"},
		"server ipv4":     {ServerListenerName("10.0.0.1", 8080), "grpc/server?xds.resource.listening_address=10.0.0.1:8080"},
		"server ipv6":     {ServerListenerName("fd00::1", 8080), "grpc/server?xds.resource.listening_address=[fd00::1]:8080"},
		"envoy route":     {EnvoyOutboundRouteName(80), "outbound|80"},
		"inbound":         {InboundName(8080), "inbound|8080"},
		"prefix regex":    {pathRegex("/a|/b", mesh.PathMatchPrefix), "(?:/a|/b).*"},
		"full regex":      {pathRegex("/a|/b", mesh.PathMatchFull), "/a|/b"},
		"unnamed match":   {describeMatch(mesh.HTTPMatch{Group: mesh.ObjectRef{Kind: "HTTPRouteGroup", Namespace: "ns", Name: "g"}}), "HTTPRouteGroup ns/g (unnamed match)"},
		"methods":         {methodMatcher([]string{"GET", "X.Y"}).GetStringMatch().GetSafeRegex().GetRegex(), `GET|X\.Y`},
		"template filled": {strings.Replace(ServerListenerNameTemplate, "%s", "1.2.3.4:5", 1), ServerListenerName("1.2.3.4", 5)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestSplitWeightsFit checks that weights whose sum exceeds 32 bits are
// scaled down (gRPC rejects a total above MaxUint32) and keep their ratio.
func TestSplitWeightsFit(t *testing.T) {
	m := smallModel()
	web := m.Services[0].ServiceKey
	sp := &mesh.Split{Service: web, Backends: []mesh.SplitBackend{
		{Service: mesh.ServiceKey{Namespace: "shop", Name: "a"}, Weight: 2147483647},
		{Service: mesh.ServiceKey{Namespace: "shop", Name: "b"}, Weight: 2147483647},
		{Service: mesh.ServiceKey{Namespace: "shop", Name: "c"}, Weight: 2147483647},
		{Service: mesh.ServiceKey{Namespace: "shop", Name: "d"}, Weight: 1},
	}}
	b := newBuilder(m, Options{Flavor: FlavorGRPC, ClusterDomain: DefaultClusterDomain})
	wcs := b.splitAction(sp, 80).Route.GetWeightedClusters().GetClusters()
	var total uint64
	for _, wc := range wcs {
		total += uint64(wc.GetWeight().GetValue())
	}
	if len(wcs) != 4 || total > 1<<32-1 || wcs[0].GetWeight().GetValue() != wcs[2].GetWeight().GetValue() || wcs[3].GetWeight().GetValue() != 1 {
		t.Errorf("weights %v (total %d) do not fit or lost their ratio", wcs, total)
	}
}

func TestValidateReportsEveryInvalidResource(t *testing.T) {
	err := Validate(&clusterv3.Cluster{}, &routev3.RouteConfiguration{Name: "ok"}, &clusterv3.Cluster{Name: "x", ConnectTimeout: nil, LbPolicy: 99})
	if err == nil {
		t.Fatal("Validate accepted invalid clusters")
	}
	if n := strings.Count(err.Error(), "Cluster "); n != 2 {
		t.Errorf("want both invalid clusters reported, got %d in:\n%v", n, err)
	}
}

// TestOutboundAndInboundNamesDoNotClash checks, for every identity of
// every golden case, that the inbound side names no resource the shared
// outbound side names: the server serves one set beside the other.
func TestOutboundAndInboundNamesDoNotClash(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out, err := Outbound(c.model, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			shared := map[string]bool{}
			for _, m := range out.Messages() {
				shared[string(m.ProtoReflect().Descriptor().Name())+" "+resourceName(m)] = true
			}
			for _, id := range c.model.Identities {
				in, err := Inbound(c.model, id, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range in.Messages() {
					if key := string(m.ProtoReflect().Descriptor().Name()) + " " + resourceName(m); shared[key] {
						t.Errorf("%s: inbound %s is also an outbound resource", id, key)
					}
				}
			}
		})
	}
}
