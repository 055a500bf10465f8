package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/internal/promtest"
	"github.com/meshward/meshward/mesh"
)

// Type URLs.
const (
	ldsType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	rdsType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	cdsType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	edsType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

var (
	web = mesh.Identity{Namespace: "shop", Name: "web"}
	api = mesh.Identity{Namespace: "shop", Name: "api"}
)

// testModel is a small mesh: web (10.0.0.1) calls api (10.0.0.2), both
// serving HTTP on 8080 behind services of their names.
func testModel() *mesh.Model {
	m := &mesh.Model{Options: mesh.DefaultOptions(), Identities: []mesh.Identity{api, web}}
	for _, s := range []struct {
		id   mesh.Identity
		addr string
	}{{api, "10.0.0.2"}, {web, "10.0.0.1"}} {
		id := s.id
		m.Services = append(m.Services, mesh.Service{
			ServiceKey: mesh.ServiceKey(id),
			Ports:      []mesh.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}},
			Endpoints: []mesh.Endpoint{{
				Address: s.addr, Ports: []mesh.EndpointPort{{Name: "http", Port: 8080}},
				Identity: &id, Ready: true,
			}},
			Identities: []mesh.Identity{id},
		})
	}
	m.Access = []mesh.AccessRule{{
		Origin:      mesh.ObjectRef{Kind: "TrafficTarget", Namespace: "shop", Name: "web-to-api"},
		Destination: api, Sources: []mesh.Identity{web},
		HTTP: []mesh.HTTPMatch{{Name: "all"}},
	}}
	return m
}

// Resource names in testModel.
var (
	apiAuthority = translate.ServiceAuthority(mesh.ServiceKey{Namespace: "shop", Name: "api"}, 80, "cluster.local")
	apiCluster   = translate.ClusterName(mesh.ServiceKey{Namespace: "shop", Name: "api"}, 80, "cluster.local")
	webCluster   = translate.ClusterName(mesh.ServiceKey{Namespace: "shop", Name: "web"}, 80, "cluster.local")
	apiInbound   = translate.ServerListenerName("10.0.0.2", 8080)
)

// harness is a server on an in-memory connection.
type harness struct {
	srv  *server.Server
	reg  *prometheus.Registry
	conn *grpc.ClientConn
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	srv, err := server.New(server.Options{
		Translate: translate.Options{Flavor: translate.FlavorGRPC},
		Log:       testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Registry:  h.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, nil) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return h
}

func (h *harness) update(t *testing.T, m *mesh.Model) {
	t.Helper()
	if err := h.srv.Update(m); err != nil {
		t.Fatal(err)
	}
}

// metric sums the samples of a metric family whose labels include want.
func (h *harness) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	return promtest.Sum(t, h.reg, name, want)
}

// nodeOf names the identity in the node's metadata.
func nodeOf(t *testing.T, id mesh.Identity) *corev3.Node {
	t.Helper()
	md, err := structpb.NewStruct(bootstrap.NodeMetadata(id))
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: "pod-0", Metadata: md}
}

// pump delivers a stream's responses on a channel, closed when the stream
// ends.
func pump[T any](recv func() (T, error)) chan T {
	in := make(chan T, 100)
	go func() {
		defer close(in)
		for {
			resp, err := recv()
			if err != nil {
				return
			}
			in <- resp
		}
	}()
	return in
}

// next waits for a stream's next response.
func next[T any](t *testing.T, in <-chan T) T {
	t.Helper()
	select {
	case r, ok := <-in:
		if !ok {
			t.Fatal("stream ended")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
	}
	var zero T
	return zero
}

// sotw is a hand-driven state-of-the-world ADS stream.
type sotw struct {
	t      *testing.T
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	in     chan *discoveryv3.DiscoveryResponse
}

func (h *harness) sotw(t *testing.T, node *corev3.Node) *sotw {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(h.conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &sotw{t: t, node: node, stream: stream, in: pump(stream.Recv)}
}

// request sends a request; nack, when not empty, rejects the response
// with that nonce.
func (c *sotw) request(typeURL, version, nonce string, names []string, nack string) {
	c.t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
	if nack != "" {
		req.ErrorDetail = &statuspb.Status{Code: 3, Message: nack}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits for a response.
func (c *sotw) recv() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	return next(c.t, c.in)
}

// none checks that no response arrives for a while. It can only miss a
// response that comes late, never report one that does not.
func (c *sotw) none() {
	c.t.Helper()
	select {
	case r := <-c.in:
		c.t.Fatalf("unexpected response: %s version %s with %d resources", r.GetTypeUrl(), r.GetVersionInfo(), len(r.GetResources()))
	case <-time.After(200 * time.Millisecond):
	}
}

// ack acknowledges a response, keeping the subscription.
func (c *sotw) ack(r *discoveryv3.DiscoveryResponse, names []string) {
	c.t.Helper()
	c.request(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), names, "")
}

// delta is a hand-driven delta ADS stream.
type delta struct {
	t      *testing.T
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	in     chan *discoveryv3.DeltaDiscoveryResponse
}

func (h *harness) delta(t *testing.T, node *corev3.Node) *delta {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(h.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &delta{t: t, node: node, stream: stream, in: pump(stream.Recv)}
}

func (c *delta) request(typeURL, nonce string, subscribe, unsubscribe []string, nack string) {
	c.t.Helper()
	req := &discoveryv3.DeltaDiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResponseNonce: nonce, ResourceNamesSubscribe: subscribe, ResourceNamesUnsubscribe: unsubscribe}
	if nack != "" {
		req.ErrorDetail = &statuspb.Status{Code: 3, Message: nack}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *delta) recv() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	return next(c.t, c.in)
}

func (c *delta) none() {
	c.t.Helper()
	select {
	case r := <-c.in:
		c.t.Fatalf("unexpected response: %s with %d resources, %d removed", r.GetTypeUrl(), len(r.GetResources()), len(r.GetRemovedResources()))
	case <-time.After(200 * time.Millisecond):
	}
}
