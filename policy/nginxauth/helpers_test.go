package nginxauth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/nginxauth"
)

const (
	buyer = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
	thief = "spiffe://cluster.local/ns/bookthief/sa/bookthief"
)

func ref(kind, ns, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func id(ns, name string) mesh.Identity { return mesh.Identity{Namespace: ns, Name: name} }

// model is a part of examples/bookstore (bookbuyer may GET /books-bought
// from the bookstore) with IngressBackends: bookstore-v1's target port
// 14001 admits loopback clients, bookwarehouse's 14001 only 10.0.0.0/8,
// and bookstore-v1's https port 14443 clients from 127.0.0.0/8 with the
// ingress's certificate.
func model() *mesh.Model {
	routes := ref("HTTPRouteGroup", "bookstore", "bookstore-service-routes")
	v1 := mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore-v1"}
	warehouse := mesh.ServiceKey{Namespace: "bookwarehouse", Name: "bookwarehouse"}
	return &mesh.Model{
		Options:    mesh.DefaultOptions(),
		Namespaces: []string{"bookbuyer", "bookstore", "bookthief", "bookwarehouse"},
		Identities: []mesh.Identity{id("bookbuyer", "bookbuyer"), id("bookstore", "bookstore"), id("bookthief", "bookthief")},
		Access: []mesh.AccessRule{{
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
		}},
		Ingress: []mesh.IngressBackend{
			{
				Origin:   ref("IngressBackend", "bookstore", "from-loopback"),
				Backends: []mesh.IngressTarget{{Service: v1, Port: 14001, Protocol: mesh.IngressHTTP}},
				Sources:  []mesh.IngressSource{{Kind: mesh.IngressSourceIPRange, CIDR: "127.0.0.0/8"}},
			},
			{
				Origin:   ref("IngressBackend", "bookstore", "with-certificate"),
				Backends: []mesh.IngressTarget{{Service: v1, Port: 14443, Protocol: mesh.IngressHTTPS}},
				Sources: []mesh.IngressSource{
					{Kind: mesh.IngressSourceIPRange, CIDR: "127.0.0.0/8"},
					{Kind: mesh.IngressSourceAuthenticatedPrincipal, Principal: "ingress-nginx.ingress-nginx.cluster.local"},
				},
			},
			{
				Origin:   ref("IngressBackend", "bookwarehouse", "from-the-cluster"),
				Backends: []mesh.IngressTarget{{Service: warehouse, Port: 14001, Protocol: mesh.IngressHTTP}},
				Sources:  []mesh.IngressSource{{Kind: mesh.IngressSourceIPRange, CIDR: "10.0.0.0/8"}},
			},
		},
	}
}

func newEngine(t testing.TB, opts policy.Options, modules map[string]string) *policy.Engine {
	t.Helper()
	ctx := context.Background()
	if opts.Log.GetSink() == nil {
		opts.Log = testr.NewWithInterface(t, testr.Options{})
	}
	e, err := policy.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Update(ctx, model()); err != nil {
		t.Fatal(err)
	}
	if err := e.SetUserModules(ctx, modules); err != nil {
		t.Fatal(err)
	}
	return e
}

func newHandler(t testing.TB, e *policy.Engine, opts nginxauth.Options) *nginxauth.Handler {
	t.Helper()
	if opts.Log.GetSink() == nil {
		opts.Log = testr.NewWithInterface(t, testr.Options{})
	}
	h, err := nginxauth.New(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveHTTP serves h on a loopback port until the test ends.
func serveHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

var client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

// answer is what the endpoint said.
type answer struct {
	code       int
	reason, id string
	body       string
}

// ask sends a subrequest to the endpoint with the given headers; a
// header named with value "" is sent empty.
func ask(t testing.TB, base, method, path string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{
		code: resp.StatusCode, body: string(b),
		reason: resp.Header.Get(nginxauth.HeaderReason), id: resp.Header.Get(nginxauth.HeaderDecisionID),
	}
}
