package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/nginxauth"
)

// ingressBackends admit ingress to bookstore-v1's target port from
// loopback (where nginx runs in this test), to bookwarehouse's only from
// 10.0.0.0/8, which loopback is not in, and to bookstore-v2's (https)
// from loopback with the ingress's client certificate.
const ingressBackends = `apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata:
  name: bookstore-from-loopback
  namespace: bookstore
spec:
  backends:
    - name: bookstore-v1
      port:
        number: 14001
        protocol: http
  sources:
    - kind: IPRange
      name: 127.0.0.0/8
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata:
  name: bookwarehouse-from-the-cluster
  namespace: bookwarehouse
spec:
  backends:
    - name: bookwarehouse
      port:
        number: 14001
        protocol: http
  sources:
    - kind: IPRange
      name: 10.0.0.0/8
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata:
  name: bookstore-v2-with-certificate
  namespace: bookstore
spec:
  backends:
    - name: bookstore-v2
      port:
        number: 14001
        protocol: https
      tls:
        skipClientCertValidation: false
  sources:
    - kind: IPRange
      name: 127.0.0.0/8
    - kind: AuthenticatedPrincipal
      name: ingress-nginx.ingress-nginx.cluster.local
`

// startAuthEndpoint builds the model of examples/bookstore with the
// IngressBackends above and serves the nginx auth endpoint for it on a
// loopback port (a plain http.Server, as meshward serve runs it).
func startAuthEndpoint(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	res, err := files.Load(copyExample(t, map[string]string{"ingress.yaml": ingressBackends}), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := translate.Build(res.Snapshot, mesh.DefaultOptions())
	if len(m.Ingress) != 3 {
		t.Fatalf("model has %d IngressBackends, want 3; findings: %v", len(m.Ingress), m.Findings)
	}
	log := testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	engine, err := policy.New(ctx, policy.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	h, err := nginxauth.New(engine, nginxauth.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return serveHTTP(t, h)
}

// serveHTTP serves h on a loopback port until the test ends.
func serveHTTP(t *testing.T, h http.Handler) string {
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
			t.Errorf("server on %s: %v", ln.Addr(), err)
		}
	})
	return ln.Addr().String()
}

// backend is the application behind nginx; it counts the requests that
// reach it.
type backend struct {
	mu   sync.Mutex
	hits []string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits = append(b.hits, r.Method+" "+r.RequestURI)
	b.mu.Unlock()
	fmt.Fprintf(w, "backend: %s %s", r.Method, r.RequestURI)
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.hits)
}

// authLocation is an internal location asking meshward about ingress to a
// backend target port, as the project's docs configure nginx; extra
// directives are added to it.
func authLocation(name, meshwardAddr, backend string, extra ...string) string {
	return fmt.Sprintf(`
		location = %s {
			internal;
			proxy_pass http://%s/v1/ingress/%s/14001;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
			proxy_set_header X-Original-Method $request_method;
			proxy_set_header X-Real-IP $remote_addr;
			%s
		}`, name, meshwardAddr, backend, strings.Join(extra, "\n\t\t\t"))
}

// protected is a location proxying to the backend after auth_request
// allows it; meshward's reason is passed on to the client for the test.
func protected(location, auth, backendAddr string) string {
	return fmt.Sprintf(`
		location %s {
			auth_request %s;
			auth_request_set $meshward_reason $upstream_http_x_meshward_reason;
			add_header X-Meshward-Reason $meshward_reason always;
			proxy_pass http://%s;
		}`, location, auth, backendAddr)
}

// TestNginxIngress runs Debian's nginx with auth_request in front of a
// backend, asking meshward's auth endpoint about each request.
func TestNginxIngress(t *testing.T) {
	meshwardAddr := startAuthEndpoint(t)
	app := &backend{}
	appAddr := serveHTTP(t, app)
	nginx := testenv.StartNginx(t, strings.Join([]string{
		authLocation("/_meshward", meshwardAddr, "bookstore/bookstore-v1"),
		authLocation("/_meshward_warehouse", meshwardAddr, "bookwarehouse/bookwarehouse"),
		authLocation("/_meshward_root", meshwardAddr, "bookstore/bookstore"),
		// bookstore-v2 admits one certificate principal. nginx sets
		// X-Client-Principal itself: empty where it presents no
		// certificate, its own where it does; never the client's.
		authLocation("/_meshward_v2", meshwardAddr, "bookstore/bookstore-v2", `proxy_set_header X-Client-Principal "";`),
		authLocation("/_meshward_v2_verified", meshwardAddr, "bookstore/bookstore-v2", `proxy_set_header X-Client-Principal ingress-nginx.ingress-nginx.cluster.local;`),
		protected("/", "/_meshward", appAddr),
		protected("/warehouse/", "/_meshward_warehouse", appAddr),
		protected("/root/", "/_meshward_root", appAddr),
		protected("/v2/", "/_meshward_v2", appAddr),
		protected("/v2-verified/", "/_meshward_v2_verified", appAddr),
	}, "\n"))
	base := "http://" + nginx.Addr

	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		allowed bool
		// reason is a part of meshward's reason.
		reason string
	}{
		{name: "admitted from loopback", method: "GET", path: "/books-bought", allowed: true, reason: "IngressBackend bookstore/bookstore-from-loopback"},
		{name: "admitted, with a query", method: "GET", path: "/books-bought?limit=10", allowed: true},
		{name: "admitted, POST", method: "POST", path: "/update-books-bought", allowed: true},
		{name: "backend admitting only 10.0.0.0/8", method: "GET", path: "/warehouse/restock-books", reason: "no IngressBackend for bookwarehouse/bookwarehouse port 14001 admits client 127.0.0.1"},
		{name: "backend without an IngressBackend", method: "GET", path: "/root/books-bought", reason: "no IngressBackend admits ingress to bookstore/bookstore port 14001"},
		{name: "https backend, no certificate", method: "GET", path: "/v2/books-bought", reason: "no IngressBackend for bookstore/bookstore-v2 port 14001 admits client 127.0.0.1 (no client certificate)"},
		{name: "https backend, nginx's certificate", method: "GET", path: "/v2-verified/books-bought", allowed: true, reason: "IngressBackend bookstore/bookstore-v2-with-certificate"},
		{
			name: "https backend, spoofed principal", method: "GET", path: "/v2/books-bought",
			headers: map[string]string{"X-Client-Principal": "ingress-nginx.ingress-nginx.cluster.local"},
			reason:  "(no client certificate)",
		},

		{name: "encoded slash", method: "GET", path: "/books%2Fbought", reason: "encoded slash"},
		{name: "encoded slash, lower case", method: "GET", path: "/a%2fb", reason: "encoded slash"},
		{name: "encoded dot-dot segment", method: "GET", path: "/x/%2E%2E/books-bought", reason: "invalid request"},
		{name: "long path", method: "GET", path: "/books-bought/" + strings.Repeat("a", 6000), allowed: true, reason: "IngressBackend bookstore/bookstore-from-loopback"},
		{name: "long path with an encoded slash", method: "GET", path: "/" + strings.Repeat("a", 6000) + "%2F", reason: "encoded slash"},
		{name: "long path to a backend admitting only 10.0.0.0/8", method: "GET", path: "/warehouse/" + strings.Repeat("a", 6000), reason: "admits client 127.0.0.1"},
		{
			name: "spoofed X-Real-IP and X-Forwarded-For do not admit", method: "GET", path: "/warehouse/restock-books",
			headers: map[string]string{"X-Real-IP": "10.1.2.3", "X-Forwarded-For": "10.1.2.3"},
			reason:  "admits client 127.0.0.1",
		},
		{
			name: "spoofed X-Forwarded-For chain does not admit", method: "GET", path: "/warehouse/restock-books",
			headers: map[string]string{"X-Forwarded-For": "127.0.0.1, 10.1.2.3"},
			reason:  "admits client 127.0.0.1",
		},
		{
			name: "spoofed addresses do not deny", method: "GET", path: "/books-bought",
			headers: map[string]string{"X-Real-IP": "192.0.2.1", "X-Forwarded-For": "192.0.2.1"},
			allowed: true, reason: "IngressBackend bookstore/bookstore-from-loopback",
		},
		{
			name: "a client principal header from the client is no identity", method: "GET", path: "/warehouse/restock-books",
			headers: map[string]string{"X-Client-Principal": "spiffe://cluster.local/ns/bookstore/sa/bookstore"},
			reason:  "admits client 127.0.0.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := app.count()
			req := newRequest(t, tc.method, base+tc.path, tc.headers)
			a := do(t, req)
			hits := app.count() - before
			if tc.allowed {
				if a.code != http.StatusOK || hits != 1 {
					t.Fatalf("status %d, %d backend hits; want 200 from the backend; reason %q, body %q", a.code, hits, a.reason, a.body)
				}
				if want := "backend: " + tc.method + " " + tc.path; a.body != want {
					t.Errorf("body %q, want %q", a.body, want)
				}
			} else {
				if a.code != http.StatusForbidden {
					t.Errorf("status %d, want 403; reason %q, body %q", a.code, a.reason, a.body)
				}
				if hits != 0 || strings.Contains(a.body, "backend:") {
					t.Errorf("a denied request reached the backend (%d hits): %q", hits, a.body)
				}
			}
			if !strings.Contains(a.reason, tc.reason) {
				t.Errorf("reason %q lacks %q", a.reason, tc.reason)
			}
		})
	}
}

// TestIngressNginxAuthURL calls the auth endpoint the way ingress-nginx's
// auth-url annotation does: X-Original-URL is the full URL, the client
// address is the last X-Forwarded-For entry (the one the controller adds),
// and X-Sent-From names the controller.
func TestIngressNginxAuthURL(t *testing.T) {
	addr := startAuthEndpoint(t)
	for _, tc := range []struct {
		name, endpoint, forwardedFor string
		allowed                      bool
		reason                       string
	}{
		{"loopback client", "bookstore/bookstore-v1/14001", "127.0.0.1", true, "IngressBackend bookstore/bookstore-from-loopback"},
		{"cluster client", "bookwarehouse/bookwarehouse/14001", "10.9.8.7", true, "IngressBackend bookwarehouse/bookwarehouse-from-the-cluster"},
		{"cluster client to a loopback-only backend", "bookstore/bookstore-v1/14001", "10.9.8.7", false, "admits client 10.9.8.7"},
		{"full chain: the last entry counts", "bookstore/bookstore-v1/14001", "10.9.8.7, 127.0.0.1", true, "IngressBackend bookstore/bookstore-from-loopback"},
		{"full chain: a spoofed first entry does not", "bookwarehouse/bookwarehouse/14001", "10.9.8.7, 127.0.0.1", false, "admits client 127.0.0.1"},
		{"other target port", "bookstore/bookstore-v1/8080", "127.0.0.1", false, "no IngressBackend admits ingress to bookstore/bookstore-v1 port 8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(t, "GET", fmt.Sprintf("http://%s/v1/ingress/%s", addr, tc.endpoint), map[string]string{
				"X-Original-URL":          "https://shop.example.com/books-bought?limit=10",
				"X-Original-Method":       "GET",
				"X-Forwarded-For":         tc.forwardedFor,
				"X-Sent-From":             "nginx-ingress-controller",
				"X-Auth-Request-Redirect": "/books-bought?limit=10",
				"User-Agent":              "Mozilla/5.0",
			})
			req.Host = "meshward.meshward-system.svc"
			a := do(t, req)
			want := http.StatusForbidden
			if tc.allowed {
				want = http.StatusOK
			}
			if a.code != want {
				t.Errorf("status %d, want %d; reason %q", a.code, want, a.reason)
			}
			if !strings.Contains(a.reason, tc.reason) {
				t.Errorf("reason %q lacks %q", a.reason, tc.reason)
			}
			if a.header.Get("X-Meshward-Decision-Id") == "" {
				t.Error("no decision id")
			}
		})
	}
}
