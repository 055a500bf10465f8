package parity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/e2e/internal/dataplane"
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
	port, listeners := dataplane.ListenPods(t, addrs...)
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

	certDir, bundle := dataplane.MeshCerts(t, buyer, thief, storeV1, storeV2, warehouse, nobody)
	x := dataplane.StartXDS(t, bundle, dataplane.XDSOptions{Model: w.model})
	boot := func(id mesh.Identity) []byte {
		t.Helper()
		return x.Bootstrap(t, f.name, id, certDir)
	}

	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() {
			if err := dataplane.StartPod(t, p.name, boot(p.id), listeners[i], wait); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, p := range pods {
		opts, err := dataplane.ClientOptions(boot(p.id))
		if err != nil {
			t.Fatalf("%s, %s: %v", f.name, p.id, err)
		}
		opts = append(opts, grpc.WithUserAgent(userAgent(p.id)))
		w.clients[p.id] = map[mesh.ServiceKey]*grpc.ClientConn{}
		for _, svc := range services {
			w.clients[p.id][svc] = dataplane.Dial(t, "xds:///"+serviceHost(svc), opts...)
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
	return dataplane.Invoke(conn, c.method, 0, c.md...)
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
