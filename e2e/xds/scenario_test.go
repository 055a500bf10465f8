package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/e2e/internal/dataplane"
	"github.com/meshward/meshward/internal/promtest"
	"github.com/meshward/meshward/mesh"
)

// wait bounds every wait for the system to converge. It is a failure
// bound, not a timing assertion: runs take a few seconds.
const wait = 60 * time.Second

var (
	storeV1 = mesh.Identity{Namespace: "bookstore", Name: "bookstore"}
	storeV2 = mesh.Identity{Namespace: "bookstore", Name: "bookstore-v2"}
	buyer   = mesh.Identity{Namespace: "bookbuyer", Name: "bookbuyer"}
	thief   = mesh.Identity{Namespace: "bookthief", Name: "bookthief"}
)

// source is where the scenario's objects live: a directory or an API
// server. apply creates or replaces the objects of one manifest file.
type source interface {
	apply(t *testing.T, file, yaml string)
}

// world is what a scenario runs against: the xDS server, the workload
// certificates, and the pods' listeners.
type world struct {
	xdsAddr string
	certDir string
	// bundle is the mesh's trust bundle.
	bundle []byte
	port   int
	pods   []net.Listener // v1, v2
	p      params
	// bootFrom returns the gRPC bootstrap of an identity whose certificate
	// files are in certDir.
	bootFrom func(t *testing.T, id mesh.Identity, certDir string) []byte
	// counter sums the samples of the xDS server's counter family name
	// whose labels include want.
	counter func(t *testing.T, name string, want map[string]string) float64
}

// libraryWorld is a world whose xDS server runs in the test process, for
// a source that publishes models to it.
type libraryWorld struct {
	*world
	srv *server.Server
}

// newWorld writes certificates for every identity with the built-in CA,
// starts the xDS server (gRPC flavor, RBAC, mTLS) behind mTLS that
// requires a workload certificate proving the node's identity, and opens
// the pods' listeners on 127.0.0.2 and 127.0.0.3.
func newWorld(t *testing.T) *libraryWorld {
	t.Helper()
	reg := prometheus.NewRegistry()
	w := &world{}
	w.certDir, w.bundle = dataplane.MeshCerts(t, storeV1, storeV2, buyer, thief)
	x := dataplane.StartXDS(t, w.bundle, dataplane.XDSOptions{Registry: reg})
	w.xdsAddr = x.Addr
	w.bootFrom = func(t *testing.T, id mesh.Identity, certDir string) []byte {
		return x.Bootstrap(t, t.Name(), id, certDir)
	}
	w.counter = func(t *testing.T, name string, want map[string]string) float64 {
		t.Helper()
		return promtest.Sum(t, reg, name, want)
	}
	w.port, w.pods = dataplane.ListenPods(t, "127.0.0.2", "127.0.0.3")
	w.p = scenarioParams(w.port)
	return &libraryWorld{world: w, srv: x.Server}
}

// scenarioParams are the scenario's parameters when it starts, with the
// pods serving on port.
func scenarioParams(port int) params {
	return params{V1: "127.0.0.2", V2: "127.0.0.3", Port: port, V1Weight: 80, V2Weight: 20, Sources: []string{"bookbuyer"}}
}

// boot returns the identity's bootstrap, with its mesh certificate.
func (w *world) boot(t *testing.T, id mesh.Identity) []byte {
	t.Helper()
	return w.bootFrom(t, id, w.certDir)
}

// runScenario runs the scenario against objects in src, whose model the
// xDS server receives.
func runScenario(t *testing.T, w *world, src source) {
	start := time.Now()
	m := manifests(w.p)
	for _, f := range manifestFiles {
		src.apply(t, f, m[f])
	}
	if err := dataplane.StartPod(t, v1Pod, w.boot(t, storeV1), w.pods[0], wait); err != nil {
		t.Fatal(err)
	}
	if err := dataplane.StartPod(t, v2Pod, w.boot(t, storeV2), w.pods[1], wait); err != nil {
		t.Fatal(err)
	}
	buyerRoot := newClient(t, "bookbuyer", w.boot(t, buyer), rootTarget)
	dataplane.Eventually(t, wait, "bookbuyer reaches the bookstore", func() error {
		_, err := buyerRoot.call(context.Background())
		return err
	})
	t.Logf("mesh converged after %s", time.Since(start).Round(time.Millisecond))

	t.Run("split 80/20", func(t *testing.T) {
		const n = 2000
		got := buyerRoot.count(t, n)
		v1 := 100 * float64(got[v1Pod]) / n
		t.Logf("%d calls: %d (%.2f%%) to bookstore-v1, %d (%.2f%%) to bookstore-v2", n, got[v1Pod], v1, got[v2Pod], 100*float64(got[v2Pod])/n)
		if v1 < 77 || v1 > 83 || got[v1Pod]+got[v2Pod] != n {
			t.Errorf("split %v, want 80%% ± 3 points to bookstore-v1 and the rest to bookstore-v2", got)
		}
	})

	t.Run("header-matched split", func(t *testing.T) {
		canary := newClient(t, "bookbuyer canary", w.boot(t, buyer), canaryTgt)
		dataplane.Eventually(t, wait, "bookbuyer reaches bookstore-canary", func() error {
			_, err := canary.call(context.Background())
			return err
		})
		matching := canary.count(t, 200, "x-canary", "true")
		other := canary.count(t, 200, "x-canary", "false")
		t.Logf("x-canary: true -> %v; x-canary: false -> %v", matching, other)
		if matching[v2Pod] != 200 {
			t.Errorf("calls with x-canary: true went to %v, want all to %s", matching, v2Pod)
		}
		if other[v1Pod] != 200 {
			t.Errorf("calls without the canary header went to %v, want all to %s", other, v1Pod)
		}
	})

	t.Run("caller without a TrafficTarget is denied", func(t *testing.T) {
		thiefRoot := newClient(t, "bookthief", w.boot(t, thief), rootTarget)
		dataplane.Eventually(t, wait, "bookthief is refused by RBAC", func() error {
			_, err := thiefRoot.call(context.Background())
			return wantCode(err, codes.PermissionDenied)
		})
	})

	t.Run("client without a mesh certificate cannot connect", func(t *testing.T) {
		testNoCertificate(t, w)
	})

	t.Run("changes while calls run", func(t *testing.T) {
		testLiveChanges(t, w, src, buyerRoot)
	})
}

// testNoCertificate checks clients without a mesh certificate: an xDS
// client whose bootstrap has no certificate provider (it rejects the
// clusters that need one, and its calls fail), a TLS client that presents
// no certificate to a pod (the handshake fails), and a workload whose
// node claims an identity its certificate does not prove (the xDS server
// refuses its stream).
func testNoCertificate(t *testing.T, w *world) {
	nacks := func() float64 {
		return w.counter(t, "meshward_xds_nacks_total", map[string]string{"type_url": "type.googleapis.com/envoy.config.cluster.v3.Cluster"})
	}
	before := nacks()
	noCert := newClient(t, "bookbuyer without certificate", withoutProviders(t, w.boot(t, buyer)), rootTarget)
	if err := wantCode(func() error { _, err := noCert.call(context.Background()); return err }(), codes.Unavailable); err != nil {
		t.Errorf("xDS client without certificate provider: %v", err)
	}
	dataplane.Eventually(t, wait, "the xDS server counts the client's NACK", func() error {
		if n := nacks() - before; n < 1 {
			return fmt.Errorf("%v NACKs counted", n)
		}
		return nil
	})
	// The rejected clusters are not sent again and again. The client
	// rejects each response until its subscription settles (it asks for
	// one cluster, then both); from then on, with no change, it has
	// nothing more to reject.
	time.Sleep(time.Second)
	settled := nacks()
	time.Sleep(2 * time.Second)
	if n := nacks() - settled; n > 0 {
		t.Errorf("%v more NACKs within 2 s without any change: the rejected version is being resent", n)
	}
	t.Logf("cluster NACKs from the client without certificate: %v", nacks()-before)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.bundle)
	creds := credentials.NewTLS(&tls.Config{
		RootCAs: roots,
		// The pod's certificate names a SPIFFE identity, not a host; the
		// point here is the pod refusing a client without a certificate.
		InsecureSkipVerify: true, //nolint:gosec // see above
	})
	conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.2", strconv.Itoa(w.port)), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err := wantCode(err, codes.Unavailable); err != nil {
		t.Errorf("TLS client without a certificate, straight to the pod: %v", err)
	}

	// bookthief's certificate where bookbuyer's should be.
	impostor := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		b, err := os.ReadFile(filepath.Join(w.certDir, "bookthief", "bookthief", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFileAt(t, filepath.Join(impostor, "bookbuyer", "bookbuyer", f), b)
	}
	refused := func() float64 {
		return w.counter(t, "meshward_xds_streams_refused_total", map[string]string{"reason": "peer_mismatch"})
	}
	before = refused()
	fake := newClient(t, "bookthief posing as bookbuyer", w.bootFrom(t, buyer, impostor), rootTarget)
	if err := wantCode(func() error { _, err := fake.call(context.Background()); return err }(), codes.Unavailable); err != nil {
		t.Errorf("node claiming an identity its certificate does not prove: %v", err)
	}
	if refused() <= before {
		t.Error("the xDS server did not refuse the impostor's stream")
	}
}

// withoutProviders removes the certificate providers from a gRPC
// bootstrap: the workload then has no mesh certificate for its calls.
func withoutProviders(t *testing.T, boot []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(boot, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "certificate_providers")
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeFileAt writes a file, creating its directory.
func writeFileAt(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testLiveChanges changes the split, then the access rules, while
// bookbuyer calls the bookstore without pause, and checks that behaviour
// follows every change and that no call fails meanwhile.
func testLiveChanges(t *testing.T, w *world, src source, buyerRoot *client) {
	// At least 60 of the last 100 calls to a pod: with a 20/80 split that
	// is all but certain for the pod weighted 80 and all but impossible for
	// the other.
	caller := dataplane.StartCaller(t, 100, func() (string, error) { return buyerRoot.call(context.Background()) })
	mostTo := func(pod string) func() error { return caller.MostTo(pod, 60) }

	// Both backends stay in the split: a route change that makes a gRPC
	// client use a cluster it was not using fails the calls made while
	// gRPC-Go switches routes (see docs/xds.md, Limits).
	p := w.p
	p.V1Weight, p.V2Weight = 20, 80
	caller.Forget()
	src.apply(t, "split", manifests(p)["split"])
	dataplane.Eventually(t, wait, "most calls go to bookstore-v2 after the split becomes 20/80", mostTo(v2Pod))
	p.V1Weight, p.V2Weight = 80, 20
	caller.Forget()
	src.apply(t, "split", manifests(p)["split"])
	dataplane.Eventually(t, wait, "most calls go to bookstore-v1 after the split is back to 80/20", mostTo(v1Pod))

	thiefRoot := newClient(t, "bookthief", w.boot(t, thief), rootTarget)
	p.Sources = []string{"bookbuyer", "bookthief"}
	src.apply(t, "access", manifests(p)["access"])
	dataplane.Eventually(t, wait, "bookthief is allowed once a TrafficTarget lists it", func() error {
		_, err := thiefRoot.call(context.Background())
		return err
	})
	p.Sources = []string{"bookbuyer"}
	src.apply(t, "access", manifests(p)["access"])
	dataplane.Eventually(t, wait, "bookthief is denied again once no TrafficTarget lists it", func() error {
		_, err := thiefRoot.call(context.Background())
		return wantCode(err, codes.PermissionDenied)
	})

	caller.Stop()
	failed := caller.ReportFailures(t, "during the changes")
	t.Logf("%d calls by bookbuyer during the changes, %d failed", caller.Calls(), failed)
}

// writeFiles writes manifests into dir, one file each.
func writeFile(t *testing.T, dir, file, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+file+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, file+".yaml")); err != nil {
		t.Fatal(err)
	}
}
