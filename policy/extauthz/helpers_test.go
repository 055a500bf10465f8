package extauthz_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr/testr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/extauthz"
)

const (
	buyer     = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
	thief     = "spiffe://cluster.local/ns/bookthief/sa/bookthief"
	store     = "spiffe://cluster.local/ns/bookstore/sa/bookstore"
	warehouse = "spiffe://cluster.local/ns/bookwarehouse/sa/bookwarehouse"

	booksBought = "TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"
)

func ref(kind, ns, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func id(ns, name string) mesh.Identity { return mesh.Identity{Namespace: ns, Name: name} }

// bookstore is a part of examples/bookstore: bookbuyer may GET
// /books-bought, and /buy-a-book/new with a bookbuyer User-Agent, from
// the bookstore; the bookstore may open TCP connections to the
// warehouse's port 14001.
func bookstore() *mesh.Model {
	routes := ref("HTTPRouteGroup", "bookstore", "bookstore-service-routes")
	return &mesh.Model{
		Options:    mesh.DefaultOptions(),
		Namespaces: []string{"bookbuyer", "bookstore", "bookthief", "bookwarehouse"},
		Identities: []mesh.Identity{
			id("bookbuyer", "bookbuyer"), id("bookstore", "bookstore"),
			id("bookthief", "bookthief"), id("bookwarehouse", "bookwarehouse"),
		},
		Access: []mesh.AccessRule{
			{
				Origin:      ref("TrafficTarget", "bookstore", "bookbuyer-access-bookstore"),
				Destination: id("bookstore", "bookstore"),
				Sources:     []mesh.Identity{id("bookbuyer", "bookbuyer")},
				HTTP: []mesh.HTTPMatch{
					{Group: routes, Name: "books-bought", Methods: []string{"GET"}, PathRegex: "/books-bought"},
					{
						Group: routes, Name: "buy-a-book", Methods: []string{"GET"}, PathRegex: "/buy-a-book/new",
						Headers: []mesh.HeaderMatch{{Name: "user-agent", Regex: ".*bookbuyer.*"}},
					},
				},
			},
			{
				Origin:      ref("TrafficTarget", "bookwarehouse", "bookstore-access-bookwarehouse"),
				Destination: id("bookwarehouse", "bookwarehouse"),
				Sources:     []mesh.Identity{id("bookstore", "bookstore")},
				TCP: []mesh.PortMatch{{
					Route: ref("TCPRoute", "bookwarehouse", "bookwarehouse-tcp"),
					Name:  "bookwarehouse-port", Ports: []int32{14001},
				}},
			},
		},
	}
}

// newEngine returns an engine over the bookstore model with the user
// modules given.
func newEngine(t testing.TB, opts policy.Options, modules map[string]string) *policy.Engine {
	t.Helper()
	ctx := context.Background()
	if opts.Log.GetSink() == nil {
		opts.Log = testr.NewWithInterface(t, testr.Options{Verbosity: 0})
	}
	e, err := policy.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Update(ctx, bookstore()); err != nil {
		t.Fatal(err)
	}
	if err := e.SetUserModules(ctx, modules); err != nil {
		t.Fatal(err)
	}
	return e
}

// serve runs srv as a gRPC server on a loopback port until the test ends
// and returns a client of it.
func serve(t testing.TB, srv authv3.AuthorizationServer) authv3.AuthorizationClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, srv)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("gRPC server: %v", err)
		}
	})
	return authv3.NewAuthorizationClient(conn)
}

// start serves engine's decisions over gRPC on loopback.
func start(t testing.TB, engine *policy.Engine, opts extauthz.Options) authv3.AuthorizationClient {
	t.Helper()
	if opts.Log.GetSink() == nil {
		opts.Log = testr.NewWithInterface(t, testr.Options{Verbosity: 0})
	}
	srv, err := extauthz.New(engine, opts)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

// httpCheck is a CheckRequest as Envoy sends it for an HTTP request on
// port 14001: verified principals, peer addresses, lower-case headers
// with the pseudo-headers.
func httpCheck(src, dst, method, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path, ":authority": "bookstore.bookstore:14001", ":scheme": "http", "x-request-id": "r-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: src, Address: address("10.1.1.10", 43210)},
		Destination: &authv3.AttributeContext_Peer{Principal: dst, Address: address("10.1.3.10", 14001)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "r-1", Method: method, Path: path, Host: "bookstore.bookstore:14001", Scheme: "http",
			Protocol: "HTTP/1.1", Headers: h,
		}},
	}}
}

func address(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// check sends req and fails the test on a gRPC error: the server answers
// every request with a decision.
func check(t testing.TB, c authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// metadata returns the response's dynamic metadata as Go values.
func metadata(resp *authv3.CheckResponse) map[string]any {
	return resp.GetDynamicMetadata().AsMap()
}

// headers returns header options as "key: value (action)" strings.
func headers(opts []*corev3.HeaderValueOption) []string {
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		out = append(out, o.GetHeader().GetKey()+": "+o.GetHeader().GetValue()+" ("+o.GetAppendAction().String()+")")
	}
	return out
}
