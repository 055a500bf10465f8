package parity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/extauthz"
	"github.com/meshward/meshward/snapshot"
)

// The bookstore's identities, and one the mesh does not know.
var (
	buyer     = mesh.Identity{Namespace: "bookbuyer", Name: "bookbuyer"}
	thief     = mesh.Identity{Namespace: "bookthief", Name: "bookthief"}
	storeV1   = mesh.Identity{Namespace: "bookstore", Name: "bookstore"}
	storeV2   = mesh.Identity{Namespace: "bookstore", Name: "bookstore-v2"}
	warehouse = mesh.Identity{Namespace: "bookwarehouse", Name: "bookwarehouse"}
	nobody    = mesh.Identity{Namespace: "nowhere", Name: "nobody"}
)

// servicePort is the port of every Service of the bookstore.
const servicePort = 14001

// form is one way of writing the bookstore.
type form struct {
	name string
	// example is the directory under examples/ the form starts from.
	example string
	// replace, when set, is a file of the example left out, and with is
	// the directory (relative to the repository) whose files take its
	// place.
	replace, with string
}

var (
	// smiForm is examples/bookstore as it is.
	smiForm = form{name: "SMI", example: "bookstore"}
	// ociForm is examples/bookstore-oci as it is.
	ociForm = form{name: "OCI", example: "bookstore-oci"}
	// pairsForm is the OCI form's policy written in SMI: examples/bookstore
	// whose TrafficTargets allow every HTTP request and every TCP port
	// between the pairs the AccessPolicies allow.
	pairsForm = form{
		name: "SMI (OCI access)", example: "bookstore",
		replace: "smi-access.yaml", with: filepath.Join("adapters", "oci", "testdata", "parity-smi"),
	}
	forms = []form{smiForm, ociForm, pairsForm}
)

// write copies the form's manifests into a new directory, passing each
// file's content through rewrite (when not nil), and returns the
// directory.
func (f form) write(t *testing.T, rewrite func(file, content string) string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	copyFiles := func(src, skip string) {
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || e.Name() == skip || filepath.Ext(e.Name()) != ".yaml" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			content := string(b)
			if rewrite != nil {
				content = rewrite(e.Name(), content)
			}
			name := e.Name()
			if _, err := os.Stat(filepath.Join(dst, name)); err == nil {
				t.Fatalf("%s: two files named %s", f.name, name)
			}
			if err := os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFiles(filepath.Join(root, "examples", f.example), f.replace)
	if f.with != "" {
		copyFiles(filepath.Join(root, f.with), "")
	}
	return dst
}

// load builds the mesh model of a directory as `meshward serve --dir`
// does, and checks that the form is written without a mistake.
func (f form) load(t *testing.T, dir string) *mesh.Model {
	t.Helper()
	res, err := files.Load(dir, snapshot.NewDecoder())
	if err != nil {
		t.Fatalf("%s: loading %s: %v", f.name, dir, err)
	}
	m := translate.Build(res.Snapshot, mesh.DefaultOptions())
	if len(m.Findings) != 0 {
		t.Fatalf("%s: the model has findings: %v", f.name, m.Findings)
	}
	return m
}

// startExtAuthz serves meshward's ext_authz server on the model on
// loopback, as `meshward serve` does, and returns a client of it.
func startExtAuthz(t *testing.T, m *mesh.Model) authv3.AuthorizationClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	srv, err := extauthz.New(engine, extauthz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("ext_authz server: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// principal is the SPIFFE principal of an identity, as Envoy reads it
// from the peer's certificate.
func principal(id mesh.Identity) string {
	return id.Principal(mesh.PrincipalSPIFFE, "cluster.local")
}

// serviceHost is the name clients use for a Service.
func serviceHost(svc mesh.ServiceKey) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, servicePort)
}

// httpRequest is what an ext_authz check says of an HTTP request.
type httpRequest struct {
	method, path, host string
	// protocol is HTTP/1.1 or HTTP/2.
	protocol string
	// headers are the request's headers, names in lower case as Envoy
	// sends them; the pseudo-headers are added.
	headers map[string]string
}

// checkRequest builds the CheckRequest Envoy sends for a request from the
// source principal to the destination principal (each empty when the
// peer presented no certificate): the principals of the verified
// certificates, the addresses, and for HTTP the request attributes. With
// http nil it is the check of a TCP connection (the network ext_authz
// filter).
func checkRequest(src, dst string, port uint32, http *httpRequest) *authv3.CheckRequest {
	attrs := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: src, Address: socketAddress("10.1.1.10", 43210)},
		Destination: &authv3.AttributeContext_Peer{Principal: dst, Address: socketAddress("10.1.3.10", port)},
	}
	if http != nil {
		headers := map[string]string{":method": http.method, ":path": http.path, ":authority": http.host, ":scheme": "https"}
		for k, v := range http.headers {
			headers[k] = v
		}
		attrs.Request = &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: http.method, Path: http.path, Host: http.host, Scheme: "https",
			Protocol: http.protocol, Headers: headers,
		}}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// verdict is the ext_authz server's answer to a check.
type verdict struct {
	allowed bool
	// status is the HTTP status Envoy answers a denied request with, 200
	// for an allowed one.
	status int
	reason string
	id     string
}

func (v verdict) String() string {
	return fmt.Sprintf("allowed=%v status=%d (%s)", v.allowed, v.status, v.reason)
}

// check asks the ext_authz server, and checks the answer has the shape
// Envoy needs: OK with an OkHttpResponse, or PERMISSION_DENIED with a
// DeniedHttpResponse; a decision id and a reason either way.
func check(t *testing.T, c authv3.AuthorizationClient, req *authv3.CheckRequest) verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("ext_authz: %v", err)
	}
	v := verdict{
		reason: resp.GetDynamicMetadata().GetFields()[extauthz.MetadataReason].GetStringValue(),
		id:     resp.GetDynamicMetadata().GetFields()[extauthz.MetadataDecisionID].GetStringValue(),
	}
	switch resp.GetStatus().GetCode() {
	case int32(code.Code_OK):
		v.allowed, v.status = true, 200
		if resp.GetOkResponse() == nil {
			t.Errorf("ext_authz: allowed without an OkHttpResponse: %v", resp)
		}
	case int32(code.Code_PERMISSION_DENIED):
		v.status = int(resp.GetDeniedResponse().GetStatus().GetCode())
		if resp.GetDeniedResponse() == nil {
			t.Errorf("ext_authz: denied without a DeniedHttpResponse: %v", resp)
		}
	default:
		t.Fatalf("ext_authz: status %v, want OK or PERMISSION_DENIED", resp.GetStatus())
	}
	if v.reason == "" || v.id == "" {
		t.Errorf("ext_authz: reason %q, decision id %q: want both", v.reason, v.id)
	}
	return v
}
