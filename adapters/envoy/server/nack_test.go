package server_test

import (
	"context"
	"crypto/sha256"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// changedModel returns testModel with a change that touches every
// resource type of web: a split of api (routes), a new port of web
// (listeners, routes, clusters) and endpoints that move.
func changedModel(i int) *mesh.Model {
	m := testModel()
	m.Services[1].Ports = append(m.Services[1].Ports, mesh.ServicePort{Name: "http-" + strconv.Itoa(i), Port: int32(9000 + i), TargetPort: 9000, Protocol: "TCP"})
	m.Services[0].Endpoints[0].Address = "10.0.1." + strconv.Itoa(i+2)
	m.Splits = []mesh.Split{{
		Origin:  mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "api"},
		Service: mesh.ServiceKey{Namespace: "shop", Name: "api"},
		Backends: []mesh.SplitBackend{
			{Service: mesh.ServiceKey{Namespace: "shop", Name: "api"}, Weight: int32(10 + i)},
			{Service: mesh.ServiceKey{Namespace: "shop", Name: "web"}, Weight: 1},
		},
	}}
	return m
}

// nackWindow is how long a rejecting client is watched.
func nackWindow() time.Duration {
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// rejectEverything runs a state-of-the-world client that rejects every
// response for the window, subscribing to every resource web has in the
// first model (wildcard listeners and clusters, the routes and endpoints
// by name), while change(i) makes the i-th configuration change at
// regular intervals. It returns the number of responses received, and the
// number of responses that repeated the previous response of their type.
func rejectEverything(t *testing.T, conn *grpc.ClientConn, nodeID string, useDelta bool, changes int, change func(int)) (received, repeats int64) {
	t.Helper()
	res, err := translate.ForIdentity(changedModel(0), web, translate.Options{Flavor: translate.FlavorGRPC})
	if err != nil {
		t.Fatal(err)
	}
	var routes, clusters []string
	for _, r := range res.Routes {
		routes = append(routes, r.GetName())
	}
	for _, c := range res.Clusters {
		clusters = append(clusters, c.GetName())
	}
	subs := map[string][]string{ldsType: nil, cdsType: nil, rdsType: routes, edsType: clusters}
	node := nodeOf(t, web)
	node.Id = nodeID
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var count, repeated atomic.Int64
	last := map[string]string{}
	seen := func(typ, fingerprint string) {
		count.Add(1)
		if last[typ] == fingerprint {
			repeated.Add(1)
		}
		last[typ] = fingerprint
	}
	nack := &statuspb.Status{Code: 3, Message: "rejected by the test"}
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	var recvDone chan struct{}
	if useDelta {
		stream, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for typ, names := range subs {
			if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typ, ResourceNamesSubscribe: names}); err != nil {
				t.Fatal(err)
			}
		}
		recvDone = make(chan struct{})
		go func() {
			defer close(recvDone)
			for {
				r, err := stream.Recv()
				if err != nil {
					return
				}
				seen(r.GetTypeUrl(), fingerprint(r.GetResources(), r.GetRemovedResources()))
				_ = stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce(), ErrorDetail: nack})
			}
		}()
	} else {
		stream, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for typ, names := range subs {
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names}); err != nil {
				t.Fatal(err)
			}
		}
		recvDone = make(chan struct{})
		go func() {
			defer close(recvDone)
			for {
				r, err := stream.Recv()
				if err != nil {
					return
				}
				seen(r.GetTypeUrl(), fingerprint(r.GetResources(), nil))
				// Rejected: the accepted version stays "" (none).
				_ = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce(), ResourceNames: subs[r.GetTypeUrl()], ErrorDetail: nack})
			}
		}()
	}
	step := nackWindow() / time.Duration(changes+1)
	for i := 1; i <= changes; i++ {
		time.Sleep(step)
		change(i)
	}
	time.Sleep(step)
	cancel()
	<-recvDone
	return count.Load(), repeated.Load()
}

// fingerprint identifies the content of a response.
func fingerprint[R proto.Message](resources []R, removed []string) string {
	h := sha256.New()
	for _, r := range resources {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		h.Write(b)
	}
	for _, name := range removed {
		h.Write([]byte("\x00removed:" + name))
	}
	return string(h.Sum(nil))
}

// A client that rejects everything is never sent a rejected version
// again, in either protocol: it gets one response per type for the first
// configuration and at most two per type for each change (additions and
// changes, then removals, make before break), each with new content.
// go-control-plane's plain snapshot cache, fed the same configurations,
// is measured beside it.
func TestNACKedVersionsAreNotResent(t *testing.T) {
	const changes = 3
	const types = 4
	for _, useDelta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[useDelta], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.update(t, changedModel(0))
			got, repeats := rejectEverything(t, h.conn, "pod-0", useDelta, changes, func(i int) { h.update(t, changedModel(i)) })
			limit := int64(types * (1 + 2*changes))
			t.Logf("meshward: %d responses to a client rejecting everything over %s with %d changes (at most %d allowed), %d repeated", got, nackWindow(), changes, limit, repeats)
			if got > limit {
				t.Errorf("%d responses, want at most %d", got, limit)
			}
			if repeats > 0 {
				t.Errorf("%d responses repeated the previous (rejected) response of their type", repeats)
			}
			if n := h.metric(t, "meshward_xds_nacks_total", nil); n != float64(got) {
				t.Errorf("%v NACKs counted, want %d", n, got)
			}
		})
	}
	t.Run("baseline: snapshot cache", func(t *testing.T) {
		t.Parallel()
		snaps := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
		set := func(i int) {
			s, err := snapshotOf(changedModel(i), web, strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			if err := snaps.SetSnapshot(context.Background(), "baseline", s); err != nil {
				t.Fatal(err)
			}
		}
		set(0)
		conn := serveCache(t, snaps)
		got, repeats := rejectEverything(t, conn, "baseline", false, changes, set)
		t.Logf("baseline snapshot cache: %d responses to a client rejecting everything over %s with %d changes, %d repeated", got, nackWindow(), changes, repeats)
	})
}

// snapshotOf is the plain snapshot of one identity.
func snapshotOf(m *mesh.Model, id mesh.Identity, version string) (*cache.Snapshot, error) {
	opts := translate.Options{Flavor: translate.FlavorGRPC}
	res, err := translate.ForIdentity(m, id, opts)
	if err != nil {
		return nil, err
	}
	byType := map[resourcev3.Type][]types.Resource{}
	for _, l := range res.Listeners {
		byType[resourcev3.ListenerType] = append(byType[resourcev3.ListenerType], l)
	}
	for _, r := range res.Routes {
		byType[resourcev3.RouteType] = append(byType[resourcev3.RouteType], r)
	}
	for _, c := range res.Clusters {
		byType[resourcev3.ClusterType] = append(byType[resourcev3.ClusterType], c)
	}
	for _, e := range translate.Endpoints(m, opts) {
		byType[resourcev3.EndpointType] = append(byType[resourcev3.EndpointType], e)
	}
	return cache.NewSnapshot(version, byType)
}

// serveCache serves a go-control-plane cache on an in-memory connection.
func serveCache(t testing.TB, c cache.Cache) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(context.Background(), c, nil))
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
	})
	return conn
}
