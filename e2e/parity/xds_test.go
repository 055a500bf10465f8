package parity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// wait bounds every wait for the data plane to converge. It is a failure
// bound, not a timing assertion.
const wait = 30 * time.Second

// pod is one pod of examples/*/workloads-standalone.yaml.
type pod struct {
	name string
	id   mesh.Identity
	// example is its address in the example; each world moves it to a
	// loopback address.
	example string
}

var pods = []pod{
	{"bookbuyer-0", buyer, "10.1.1.10"},
	{"bookthief-0", thief, "10.1.2.10"},
	{"bookstore-v1-0", storeV1, "10.1.3.10"},
	{"bookstore-v2-0", storeV2, "10.1.3.20"},
	{"bookwarehouse-0", warehouse, "10.1.4.10"},
}

// The bookstore's Services, every one a target of every client.
var (
	svcBuyer     = mesh.ServiceKey{Namespace: "bookbuyer", Name: "bookbuyer"}
	svcThief     = mesh.ServiceKey{Namespace: "bookthief", Name: "bookthief"}
	svcStore     = mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore"}
	svcStoreV1   = mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore-v1"}
	svcStoreV2   = mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore-v2"}
	svcCanary    = mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore-canary"}
	svcWarehouse = mesh.ServiceKey{Namespace: "bookwarehouse", Name: "bookwarehouse"}
	services     = []mesh.ServiceKey{svcBuyer, svcThief, svcStore, svcStoreV1, svcStoreV2, svcCanary, svcWarehouse}
)

// grpcCall is one gRPC call a client makes: an HTTP/2 POST of the method's
// path, with the call's metadata as headers.
type grpcCall struct {
	name   string
	method string
	md     []string
}

// grpcCalls are designed around the bookstore's route matches: the path
// of a match granted only for GET (books-bought), of a POST match granted
// to nobody (update-books-bought), of the POST match granted to the
// bookstores (restock-books), and a call carrying the canary header that
// the SMI form's bookstore-canary split routes by.
var grpcCalls = []grpcCall{
	{name: "books-bought", method: "/books-bought/List"},
	{name: "update-books-bought", method: "/update-books-bought/Update"},
	{name: "restock-books", method: "/restock-books/Restock"},
	{name: "canary user", method: "/bookstore.Books/Buy", md: []string{"x-canary", "true"}},
}

// wantOK says whether a form lets src make the call to a Service. The
// OCI form (and the SMI form of its policy) allows every call from
// bookbuyer to the bookstore and from both bookstores to the
// bookwarehouse. The SMI example's rules to the bookstore are for GET
// requests, which a gRPC call never is, and to the bookwarehouse for POST
// requests to /restock-books.
func wantOK(f form, src mesh.Identity, dst mesh.ServiceKey, c grpcCall) bool {
	pair := src == buyer && dst.Namespace == "bookstore" ||
		(src == storeV1 || src == storeV2) && dst == svcWarehouse
	if f.name == smiForm.name {
		return pair && dst == svcWarehouse && strings.HasPrefix(c.method, "/restock-books")
	}
	return pair
}

// grpcRow is one row of the xDS table: a call from a client of an
// identity to a Service (through the xDS resolver), or, for a caller the
// mesh does not know, straight to a pod.
type grpcRow struct {
	src mesh.Identity
	// dst is the Service the client dials; for a direct call, the pod.
	dst  mesh.ServiceKey
	pod  *pod
	call grpcCall
}

func (r grpcRow) String() string {
	if r.pod != nil {
		return fmt.Sprintf("%s straight to %s: %s", r.src, r.pod.name, r.call.name)
	}
	return fmt.Sprintf("%s to %s: %s", r.src, r.dst, r.call.name)
}

// outcome is what the calls of a row gave.
type outcome struct {
	code codes.Code
	// pods counts the pods that served the calls.
	pods map[string]int
	err  error
}

// world is one form of the bookstore served over xDS: meshward's xDS
// server (gRPC flavor, RBAC, mTLS with certificates from the built-in CA
// through file_watcher providers) on the form's model, an xDS-enabled gRPC
// server for each pod at its own loopback address, a gRPC xDS client per
// identity and Service, and the ext_authz server on the same model.
type world struct {
	form  form
	model *mesh.Model
	authz authv3.AuthorizationClient
	// addr is each pod's address in this world; port is where every pod
	// serves.
	addr map[string]string
	port int
	// clients are by identity, then Service.
	clients map[mesh.Identity]map[mesh.ServiceKey]*grpc.ClientConn
	// direct are connections of the unknown identity straight to each pod.
	direct map[string]*grpc.ClientConn
}

// endpointPort matches the port lines of the example's EndpointSlices and
// Pods.
var endpointPort = regexp.MustCompile(`(?m)^(\s*)(port|containerPort): 14001$`)

// newWorld starts a form of the bookstore; its pods listen on 127.0.<net>.x.
func newWorld(t *testing.T, f form, subnet int) *world {
	t.Helper()
	w := &world{
		form: f, addr: map[string]string{},
		clients: map[mesh.Identity]map[mesh.ServiceKey]*grpc.ClientConn{},
		direct:  map[string]*grpc.ClientConn{},
	}
	var addrs []string
	for i, p := range pods {
		w.addr[p.name] = fmt.Sprintf("127.0.%d.%d", subnet, i+1)
		addrs = append(addrs, w.addr[p.name])
	}
	port, listeners := listenPods(t, addrs...)
	w.port = port

	// The example as it is, with its pods moved where this world's pods
	// listen.
	dir := f.write(t, func(file, content string) string {
		if file != "workloads-standalone.yaml" {
			return content
		}
		for _, p := range pods {
			content = strings.ReplaceAll(content, p.example, w.addr[p.name])
		}
		return endpointPort.ReplaceAllString(content, "${1}${2}: "+strconv.Itoa(port))
	})
	w.model = f.load(t, dir)
	checkEndpoints(t, w)
	w.authz = startExtAuthz(t, w.model)

	certDir := t.TempDir()
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []mesh.Identity{buyer, thief, storeV1, storeV2, warehouse, nobody} {
		if _, err := certs.WriteIdentityFiles(context.Background(), ca, certDir, id, certs.FileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	xdsAddr, xdsCA := startXDS(t, ca, w.model)
	boot := func(id mesh.Identity) []byte {
		t.Helper()
		b, err := bootstrap.GRPC(bootstrap.Options{
			Identity: id, XDSAddress: xdsAddr, CertDir: certDir, XDSCAFile: xdsCA,
			NodeID: bootstrap.NodeID(f.name, id),
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() { startPod(t, p.name, boot(p.id), listeners[i]) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, p := range pods {
		rb, err := xds.NewXDSResolverWithConfigForTesting(boot(p.id))
		if err != nil {
			t.Fatalf("%s: the bootstrap of %s is not accepted: %v", f.name, p.id, err)
		}
		creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
		if err != nil {
			t.Fatal(err)
		}
		w.clients[p.id] = map[mesh.ServiceKey]*grpc.ClientConn{}
		for _, svc := range services {
			conn, err := grpc.NewClient("xds:///"+serviceHost(svc),
				grpc.WithResolvers(rb), grpc.WithTransportCredentials(creds), grpc.WithUserAgent(userAgent(p.id)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			w.clients[p.id][svc] = conn
		}
	}
	for _, p := range pods {
		w.direct[p.name] = dialDirect(t, certs.IdentityDir(certDir, nobody), net.JoinHostPort(w.addr[p.name], strconv.Itoa(port)))
	}
	return w
}

// userAgent is the user agent a client of an identity names itself with.
func userAgent(id mesh.Identity) string { return id.Name + "/1.0" }

// checkEndpoints checks that the model puts every endpoint where this
// world's pods listen.
func checkEndpoints(t *testing.T, w *world) {
	t.Helper()
	n := 0
	for _, s := range w.model.Services {
		for _, e := range s.Endpoints {
			n++
			if !slices.Contains(slices.Collect(maps.Values(w.addr)), e.Address) || len(e.Ports) != 1 || int(e.Ports[0].Port) != w.port || e.Identity == nil {
				t.Fatalf("%s: endpoint %+v of %s is not one of the pods at port %d", w.form.name, e, s.ServiceKey, w.port)
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s: no endpoints", w.form.name)
	}
}

// startXDS serves the model over xDS as `meshward serve --xds-flavor grpc`
// does: the gRPC flavor with RBAC, behind TLS that requires a workload
// certificate proving the node's identity. It returns the server's address
// and the file of the roots that verify its certificate.
func startXDS(t *testing.T, ca *certs.CA, m *mesh.Model) (string, string) {
	t.Helper()
	bundle, err := ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(bundle)
	serving, caFile := servingCert(t, "127.0.0.1")
	srv, err := server.New(server.Options{
		Translate:  translate.Options{Flavor: translate.FlavorGRPC},
		Log:        testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
		Registry:   prometheus.NewRegistry(),
		VerifyPeer: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Update(m); err != nil {
		t.Fatalf("publishing the model: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS13,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, creds) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xDS server: %v", err)
		}
	})
	return lis.Addr().String(), caFile
}

// listenPods listens on the same free port at every address, as pods do
// on their own pod IPs.
func listenPods(t *testing.T, addrs ...string) (int, []net.Listener) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lis := []net.Listener{first}
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lis = append(lis, l)
		}
		if len(lis) == len(addrs) {
			return port, lis
		}
		for _, l := range lis {
			l.Close()
		}
	}
	t.Fatalf("no free port common to %v", addrs)
	return 0, nil
}

// startPod runs an xDS-enabled gRPC server on lis with the identity's
// bootstrap until the test ends. It answers every method with its pod's
// name, once the xDS server gave it the listener for its address, and
// with mTLS and RBAC as that listener says.
func startPod(t *testing.T, name string, boot []byte, lis net.Listener) {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Error(err)
		return
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(boot),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			return stream.SendMsg(wrapperspb.String(name))
		}),
		xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			if args.Mode == connectivity.ServingModeServing {
				once.Do(func() { close(serving) })
			} else {
				t.Logf("pod %s at %s: serving mode %s (%v)", name, addr, args.Mode, args.Err)
			}
		}))
	if err != nil {
		t.Error(err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			t.Logf("pod %s stopped: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	select {
	case <-serving:
	case <-time.After(wait):
		t.Errorf("pod %s at %s never got its listener from the xDS server", name, lis.Addr())
	}
}

// dialDirect connects to a pod without xDS, over mTLS with the
// certificate in dir (issued by the mesh CA), verifying that the pod's
// certificate chains to the mesh roots.
func dialDirect(t *testing.T, dir, addr string) *grpc.ClientConn {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// A pod's certificate names a SPIFFE identity, not a host, so the
		// host name check is skipped and the chain is checked below.
		InsecureSkipVerify: true, //nolint:gosec // VerifyPeerCertificate checks the chain
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				inter.AddCert(c)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithUserAgent(userAgent(nobody)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// invoke makes one call and returns the pod that served it.
func invoke(conn *grpc.ClientConn, c grpcCall) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(c.md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.md...)
	}
	var resp wrapperspb.StringValue
	if err := conn.Invoke(ctx, c.method, &emptypb.Empty{}, &resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

// warmUp waits until every client has its configuration: its first call
// is answered (allowed or denied) rather than failing for want of a
// route, a cluster or endpoints.
func (w *world) warmUp(t *testing.T) {
	t.Helper()
	var wg sync.WaitGroup
	for id, byService := range w.clients {
		for svc, conn := range byService {
			wg.Go(func() {
				deadline := time.Now().Add(wait)
				for {
					_, err := invoke(conn, grpcCalls[0])
					if c := status.Code(err); c == codes.OK || c == codes.PermissionDenied {
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("%s: %s never reached %s: %v", w.form.name, id, svc, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// run makes the row's calls: several when the Service has several
// endpoints, so that each is likely reached.
func (w *world) run(r grpcRow) outcome {
	conn, n := w.direct[podName(r.pod)], 1
	if r.pod == nil {
		conn = w.clients[r.src][r.dst]
		n = 2 * len(w.service(r.dst).Endpoints)
	}
	o := outcome{code: codes.Unknown, pods: map[string]int{}}
	for i := range n {
		served, err := invoke(conn, r.call)
		c := status.Code(err)
		if i > 0 && c != o.code {
			o.err = fmt.Errorf("the calls disagree: %s, then %s", o.code, c)
			if err != nil {
				o.err = fmt.Errorf("%w: %w", o.err, err)
			}
			// Unknown is never a row's expected outcome.
			o.code = codes.Unknown
			return o
		}
		o.code = c
		if err == nil {
			o.pods[served]++
		} else {
			o.err = err
		}
	}
	return o
}

func podName(p *pod) string {
	if p == nil {
		return ""
	}
	return p.name
}

func (w *world) service(k mesh.ServiceKey) *mesh.Service {
	for i := range w.model.Services {
		if w.model.Services[i].ServiceKey == k {
			return &w.model.Services[i]
		}
	}
	return nil
}

// decide asks the form's ext_authz server about the row's call as Envoy
// would ask about it: an HTTP/2 POST with gRPC's headers, from the
// caller's principal to the principal of each pod the call may reach.
// Those pods must agree.
func (w *world) decide(t *testing.T, r grpcRow) verdict {
	t.Helper()
	var dsts []mesh.Identity
	if r.pod != nil {
		dsts = []mesh.Identity{r.pod.id}
	} else {
		dsts = w.service(r.dst).Identities
	}
	headers := map[string]string{
		"content-type": "application/grpc",
		"te":           "trailers",
		"user-agent":   userAgent(r.src) + " grpc-go/" + grpc.Version,
	}
	for i := 0; i+1 < len(r.call.md); i += 2 {
		headers[r.call.md[i]] = r.call.md[i+1]
	}
	var first verdict
	for i, dst := range dsts {
		v := check(t, w.authz, checkRequest(principal(r.src), principal(dst), uint32(w.port), &httpRequest{
			method: "POST", path: r.call.method, host: serviceHost(r.dst), protocol: "HTTP/2", headers: headers,
		}))
		if i == 0 {
			first = v
		} else if v.allowed != first.allowed {
			t.Fatalf("%s: the pods behind %s decide differently (%s to %s: %s; to %s: %s): the row is ambiguous", w.form.name, r.dst, r.src, dsts[0], first, dst, v)
		}
	}
	return first
}

// TestXDSParity serves each form of the bookstore over xDS to real gRPC
// clients and servers and makes every client call every Service with each
// call of grpcCalls, plus calls straight to each pod from a workload
// whose identity the mesh does not know. For every form, each row's
// outcome (OK or PERMISSION_DENIED) is what the form allows and what its
// ext_authz server decides for the same request; the OCI form and the
// SMI form of its policy give the same outcome on every row, and the SMI
// example differs only on calls its match rules deny.
func TestXDSParity(t *testing.T) {
	start := time.Now()
	worlds := make([]*world, len(forms))
	for i, f := range forms {
		worlds[i] = newWorld(t, f, 61+i)
	}
	for _, w := range worlds {
		w.warmUp(t)
	}
	t.Logf("%d forms served over xDS and converged in %s", len(worlds), time.Since(start).Round(time.Millisecond))

	var rows []grpcRow
	for _, p := range pods {
		for _, svc := range services {
			for _, c := range grpcCalls {
				rows = append(rows, grpcRow{src: p.id, dst: svc, call: c})
			}
		}
	}
	for i := range pods {
		for _, c := range grpcCalls {
			rows = append(rows, grpcRow{src: nobody, pod: &pods[i], call: c})
		}
	}
	if len(rows) < 50 {
		t.Fatalf("%d rows, want at least 50", len(rows))
	}

	counts := map[string]map[codes.Code]int{}
	same, differ := 0, 0
	for _, r := range rows {
		got, decided := map[string]outcome{}, map[string]verdict{}
		for _, w := range worlds {
			o := w.run(r)
			got[w.form.name] = o
			if counts[w.form.name] == nil {
				counts[w.form.name] = map[codes.Code]int{}
			}
			counts[w.form.name][o.code]++

			want := codes.PermissionDenied
			if r.pod == nil && wantOK(w.form, r.src, r.dst, r.call) {
				want = codes.OK
			}
			if o.code != want {
				t.Errorf("%s, %s: %s (%v), want %s", w.form.name, r, o.code, o.err, want)
			}
			v := w.decide(t, r)
			decided[w.form.name] = v
			if v.allowed != (o.code == codes.OK) {
				t.Errorf("%s, %s: the gRPC server answered %s, the ext_authz server: %s", w.form.name, r, o.code, v)
			}
			checkRouting(t, w, r, o)
		}
		oci, pairs, smi := got[ociForm.name], got[pairsForm.name], got[smiForm.name]
		if oci.code != pairs.code {
			t.Errorf("%s: the OCI form and the SMI form of its policy disagree: %s (%v), %s (%v)", r, oci.code, oci.err, pairs.code, pairs.err)
		}
		if smi.code == oci.code {
			same++
		} else {
			differ++
			reason := decided[smiForm.name].reason
			if smi.code != codes.PermissionDenied || r.pod != nil || !slices.ContainsFunc(coarserReasons, func(s string) bool { return strings.Contains(reason, s) }) {
				t.Errorf("%s: the SMI example gives %s (%s), the OCI form %s: only the SMI example's match rules may deny more", r, smi.code, reason, oci.code)
			}
		}
	}
	for _, f := range forms {
		if counts[f.name][codes.OK] == 0 || counts[f.name][codes.PermissionDenied] == 0 {
			t.Errorf("%s: outcomes %v: the table does not test both answers", f.name, counts[f.name])
		}
	}
	t.Logf("%d rows (%d through the xDS resolver, %d straight to the pods from an unknown identity): outcomes %v; %d alike in all three forms, %d denied by the SMI example's match rules only",
		len(rows), len(pods)*len(services)*len(grpcCalls), len(pods)*len(grpcCalls), counts, same, differ)
}

// checkRouting checks where allowed calls went: to the one pod of a
// version's Service, and, in the SMI forms, calls with the canary header
// to bookstore-canary all to bookstore v2. (The OCI form has no canary
// split: its route tables cannot match headers.)
func checkRouting(t *testing.T, w *world, r grpcRow, o outcome) {
	t.Helper()
	if o.code != codes.OK || r.pod != nil {
		return
	}
	var want string
	switch {
	case len(w.service(r.dst).Endpoints) == 1:
		for _, p := range pods {
			if w.addr[p.name] == w.service(r.dst).Endpoints[0].Address {
				want = p.name
			}
		}
	case r.dst == svcCanary && w.form.name != ociForm.name && slices.Contains(r.call.md, "x-canary"):
		want = "bookstore-v2-0"
	default:
		return
	}
	if len(o.pods) != 1 || o.pods[want] == 0 {
		t.Errorf("%s, %s: served by %v, want %s", w.form.name, r, o.pods, want)
	}
}

// servingCert returns a serving certificate for the IP address, signed by
// a CA of its own, and the file holding that CA: the xDS server's
// certificate, which workloads verify with the bootstrap's xDS roots.
func servingCert(t *testing.T, ip string) (tls.Certificate, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xDS serving CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "meshward xDS"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "xds-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}
