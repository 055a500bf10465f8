package server_test

import (
	"errors"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// namesOf returns the sorted names of the resources of a response.
func namesOf(t *testing.T, res []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range res {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch r := m.(type) {
		case *listenerv3.Listener:
			out = append(out, r.GetName())
		case *routev3.RouteConfiguration:
			out = append(out, r.GetName())
		case *clusterv3.Cluster:
			out = append(out, r.GetName())
		case *endpointv3.ClusterLoadAssignment:
			out = append(out, r.GetClusterName())
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
	slices.Sort(out)
	return out
}

func wantNames(t *testing.T, r *discoveryv3.DiscoveryResponse, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := namesOf(t, r.GetResources()); !slices.Equal(got, want) {
		t.Fatalf("%s response holds %v, want %v", r.GetTypeUrl(), got, want)
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	for name, opts := range map[string]translate.Options{
		"no flavor":         {},
		"ext_authz on grpc": {Flavor: translate.FlavorGRPC, Authz: translate.AuthzExtAuthz, ExtAuthzCluster: "authz", ExtAuthzAddress: "127.0.0.1:9000"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := server.New(server.Options{Translate: opts}); err == nil {
				t.Fatal("New accepted invalid translation options")
			}
		})
	}
}

// A gRPC server asks only for its own listener, and a client only for
// what it dials: each gets that subset, in its identity's version.
func TestAnswersTheRequestedSubset(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())

	srv := h.sotw(t, nodeOf(t, api))
	srv.request(ldsType, "", "", []string{apiInbound}, "")
	wantNames(t, srv.recv(), apiInbound)

	cli := h.sotw(t, nodeOf(t, web))
	cli.request(ldsType, "", "", []string{apiAuthority}, "")
	wantNames(t, cli.recv(), apiAuthority)
	cli.request(cdsType, "", "", []string{apiCluster}, "")
	wantNames(t, cli.recv(), apiCluster)
	cli.request(edsType, "", "", []string{apiCluster}, "")
	wantNames(t, cli.recv(), apiCluster)
	// web has no inbound listener of api's: a first request for it is
	// answered, empty.
	other := h.sotw(t, nodeOf(t, web))
	other.request(ldsType, "", "", []string{apiInbound}, "")
	if r := other.recv(); len(r.GetResources()) != 0 {
		t.Fatalf("web got api's inbound listener: %v", namesOf(t, r.GetResources()))
	}
}

func TestNodeIdentity(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())

	// The node id form works as well as the metadata.
	byID := h.sotw(t, &corev3.Node{Id: "pod-1~shop~api"})
	byID.request(ldsType, "", "", []string{apiInbound}, "")
	wantNames(t, byID.recv(), apiInbound)

	for name, node := range map[string]*corev3.Node{
		"no identity": {Id: "pod-2"},
		"malformed":   {Id: "pod-3", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"meshward.io/identity": structpb.NewStringValue("shop")}}},
		"conflicting": {Id: "pod-4~shop~web", Metadata: nodeOf(t, api).GetMetadata()},
	} {
		t.Run(name, func(t *testing.T) {
			c := h.sotw(t, node)
			c.request(ldsType, "", "", []string{apiInbound}, "")
			c.none()
		})
	}
	if n := h.metric(t, "meshward_xds_streams_refused_total", map[string]string{"reason": "no_identity"}); n != 1 {
		t.Errorf("%v streams refused for lack of identity, want 1", n)
	}
	if n := h.metric(t, "meshward_xds_streams_refused_total", map[string]string{"reason": "invalid_identity"}); n != 2 {
		t.Errorf("%v streams refused for an invalid identity, want 2", n)
	}
}

// A node of an identity that is not in the model gets nothing until the
// identity appears, and nothing again once it leaves, after losing its
// listeners and clusters.
func TestUnknownIdentityWaits(t *testing.T) {
	h := newHarness(t)
	m := testModel()
	m.Identities = []mesh.Identity{web}
	h.update(t, m)

	c := h.sotw(t, nodeOf(t, api))
	c.request(ldsType, "", "", []string{apiInbound}, "")
	c.none()
	if n := h.metric(t, "meshward_xds_streams_refused_total", map[string]string{"reason": "unknown_identity"}); n != 1 {
		t.Errorf("%v streams of unknown identities counted, want 1", n)
	}

	h.update(t, testModel())
	r := c.recv()
	wantNames(t, r, apiInbound)
	c.ack(r, []string{apiInbound})
	c.none()

	h.update(t, m)
	if r := c.recv(); len(r.GetResources()) != 0 {
		t.Fatalf("api kept %v after leaving the mesh", namesOf(t, r.GetResources()))
	}
}

// Endpoint churn reaches the endpoint watches only, and a change that
// concerns one identity does not push anything to the others.
func TestOnlyChangesArePushed(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())

	type sub struct {
		c     *sotw
		typ   string
		names []string
	}
	open := func(id mesh.Identity, typ string, names ...string) sub {
		s := sub{h.sotw(t, nodeOf(t, id)), typ, names}
		s.c.request(typ, "", "", names, "")
		s.c.ack(s.c.recv(), names)
		return s
	}
	webLDS := open(web, ldsType, apiAuthority)
	webCDS := open(web, cdsType, apiCluster, webCluster)
	webEDS := open(web, edsType, apiCluster)
	apiLDS := open(api, ldsType, apiInbound)

	// api's endpoint becomes not ready and ready again: endpoints only.
	m := testModel()
	m.Services[0].Endpoints[0].Ready = false
	h.update(t, m)
	if r := webEDS.c.recv(); len(r.GetResources()) != 1 {
		t.Fatalf("endpoint change: %d assignments", len(r.GetResources()))
	}
	webLDS.c.none()
	webCDS.c.none()
	apiLDS.c.none()

	// A new access rule for api changes api's inbound listener only.
	m = testModel()
	m.Access[0].HTTP = []mesh.HTTPMatch{{Name: "get", Methods: []string{"GET"}}}
	h.update(t, m)
	wantNames(t, apiLDS.c.recv(), apiInbound)
	webLDS.c.none()
	webCDS.c.none()

	// The same model again: no push at all.
	h.update(t, m)
	apiLDS.c.none()
	webEDS.c.none()
}

// An update whose resources fail validation publishes nothing broken:
// nodes keep the last good resources and get no push, the failure is
// counted, and the next good update goes through.
func TestBrokenResourcesAreNotPublished(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())
	c := h.sotw(t, nodeOf(t, web))
	c.request(rdsType, "", "", []string{apiAuthority}, "")
	good := c.recv()
	c.ack(good, []string{apiAuthority})

	// A header name with a newline passes the translator but not the
	// route's ValidateAll.
	bad := testModel()
	bad.Splits = []mesh.Split{{
		Origin:  mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "api"},
		Service: mesh.ServiceKey{Namespace: "shop", Name: "api"},
		Backends: []mesh.SplitBackend{
			{Service: mesh.ServiceKey{Namespace: "shop", Name: "api"}, Weight: 1},
			{Service: mesh.ServiceKey{Namespace: "shop", Name: "web"}, Weight: 1},
		},
		Matched: true,
		Matches: []mesh.HTTPMatch{{Name: "bad", Headers: []mesh.HeaderMatch{{Name: "x\nbad", Regex: "1"}}}},
	}}
	err := h.srv.Update(bad)
	if !errors.Is(err, server.ErrRejected) {
		t.Fatalf("Update(broken) = %v, want ErrRejected", err)
	}
	c.none()
	if n := h.metric(t, "meshward_xds_update_failures_total", map[string]string{"stage": "validate"}); n != 2 {
		t.Errorf("%v validation failures counted, want 2 (both identities)", n)
	}
	// A new node of the identity still gets the last good routes.
	fresh := h.sotw(t, nodeOf(t, web))
	fresh.request(rdsType, "", "", []string{apiAuthority}, "")
	if r := fresh.recv(); !proto.Equal(r.GetResources()[0], good.GetResources()[0]) {
		t.Fatal("a new node got other routes than the last good ones")
	}

	// Broken endpoints (an empty address) are kept out as a whole.
	badEDS := testModel()
	badEDS.Services[0].Endpoints[0].Address = ""
	if err := h.srv.Update(badEDS); !errors.Is(err, server.ErrRejected) {
		t.Fatalf("Update(broken endpoints) = %v, want ErrRejected", err)
	}

	good2 := testModel()
	good2.Splits = bad.Splits
	good2.Splits[0].Matches[0].Headers[0].Name = "x-good"
	h.update(t, good2)
	if r := c.recv(); r.GetVersionInfo() == good.GetVersionInfo() {
		t.Fatal("the fixed model was not pushed")
	}
}

func TestDelta(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())
	c := h.delta(t, nodeOf(t, web))
	c.request(cdsType, "", []string{apiCluster, webCluster}, nil, "")
	r := c.recv()
	if len(r.GetResources()) != 2 {
		t.Fatalf("first delta response: %d resources, want 2", len(r.GetResources()))
	}
	c.request(cdsType, r.GetNonce(), nil, nil, "")
	c.none()

	// web's service goes away: its cluster is removed, api's is untouched.
	m := testModel()
	m.Services = m.Services[:1]
	h.update(t, m)
	r = c.recv()
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{webCluster}) {
		t.Fatalf("after removing web: %d resources, removed %v; want only %s removed", len(r.GetResources()), r.GetRemovedResources(), webCluster)
	}
	c.request(cdsType, r.GetNonce(), nil, nil, "")
	c.none()

	// A wildcard subscription gets everything of the type.
	w := h.delta(t, nodeOf(t, web))
	w.request(ldsType, "", nil, nil, "")
	if r := w.recv(); len(r.GetResources()) != 1 || r.GetResources()[0].GetName() != apiAuthority {
		t.Fatalf("wildcard listeners: %v", r.GetResources())
	}
}

// A state-of-the-world wildcard subscription (Envoy's for listeners and
// clusters) gets every listener on each change, and only the routes that
// changed.
func TestWildcard(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())
	lds := h.sotw(t, nodeOf(t, api))
	lds.request(ldsType, "", "", nil, "")
	r := lds.recv()
	wantNames(t, r, apiAuthority, apiInbound, translate.ServiceAuthority(mesh.ServiceKey{Namespace: "shop", Name: "web"}, 80, "cluster.local"))
	lds.ack(r, nil)
	rds := h.sotw(t, nodeOf(t, api))
	rds.request(rdsType, "", "", nil, "")
	r = rds.recv()
	if len(r.GetResources()) != 2 {
		t.Fatalf("wildcard routes: %v", namesOf(t, r.GetResources()))
	}
	rds.ack(r, nil)

	// Splitting api changes api's routes only.
	m := testModel()
	m.Splits = []mesh.Split{{
		Origin:   mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "api"},
		Service:  mesh.ServiceKey{Namespace: "shop", Name: "api"},
		Backends: []mesh.SplitBackend{{Service: mesh.ServiceKey{Namespace: "shop", Name: "api"}, Weight: 1}, {Service: mesh.ServiceKey{Namespace: "shop", Name: "web"}, Weight: 1}},
	}}
	h.update(t, m)
	r = rds.recv()
	wantNames(t, r, apiAuthority)
	rds.ack(r, nil)
	rds.none()
	lds.none()

	// A second pod of api, also subscribed to every listener.
	lds2 := h.sotw(t, &corev3.Node{Id: "pod-1", Metadata: nodeOf(t, api).GetMetadata()})
	lds2.request(ldsType, "", "", nil, "")
	r = lds2.recv()
	lds2.ack(r, nil)

	// A new listener: the whole set again, the same for both pods (one
	// encoding shared by their answers).
	m.Services[1].Ports = append(m.Services[1].Ports, mesh.ServicePort{Name: "admin", Port: 81, TargetPort: 8081, Protocol: "TCP"})
	h.update(t, m)
	r1, r2 := lds.recv(), lds2.recv()
	if len(r1.GetResources()) != 4 {
		t.Fatalf("wildcard listeners after adding a port: %v", namesOf(t, r1.GetResources()))
	}
	if r1.GetVersionInfo() != r2.GetVersionInfo() || !slices.EqualFunc(r1.GetResources(), r2.GetResources(), func(a, b *anypb.Any) bool { return proto.Equal(a, b) }) {
		t.Fatalf("two pods of one identity got different listeners: %v and %v", namesOf(t, r1.GetResources()), namesOf(t, r2.GetResources()))
	}
}

// After rejecting its first response, a node that asks again without a
// change (still holding no accepted version) is not sent the rejected
// version again; the next change reaches it.
func TestRejectedFirstResponseIsNotResent(t *testing.T) {
	h := newHarness(t)
	h.update(t, testModel())
	c := h.sotw(t, nodeOf(t, web))
	names := []string{apiCluster, webCluster}
	c.request(cdsType, "", "", names, "")
	r := c.recv()
	c.request(cdsType, "", r.GetNonce(), names, "rejected")
	c.none()
	c.request(cdsType, "", r.GetNonce(), names, "")
	c.none()
	m := testModel()
	m.Services[0].Identities = append(m.Services[0].Identities, web)
	h.update(t, m)
	if r2 := c.recv(); r2.GetVersionInfo() == r.GetVersionInfo() {
		t.Fatal("the change was sent with the rejected version")
	}
}
