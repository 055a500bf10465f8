package ocirouting

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/adapters/files"
	meshtranslate "github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// wait bounds every wait for the system to converge. It is a failure
// bound, not a timing assertion.
const wait = 30 * time.Second

var (
	catalogV1 = mesh.Identity{Namespace: namespace, Name: "catalog-v1"}
	catalogV2 = mesh.Identity{Namespace: namespace, Name: "catalog-v2"}
	clientID  = mesh.Identity{Namespace: namespace, Name: "client"}
)

// world is meshward serving the manifests of a directory over xDS, with
// the certificates of every identity.
type world struct {
	dir     string
	srv     *server.Server
	xdsAddr string
	xdsCA   string
	certDir string
}

// newWorld writes certificates for every identity with the built-in CA and
// starts the xDS server as `meshward serve --xds-flavor grpc` does: the
// gRPC flavor with RBAC, behind TLS that requires a workload certificate
// proving the node's identity.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), certDir: t.TempDir()}
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []mesh.Identity{catalogV1, catalogV2, clientID} {
		if _, err := certs.WriteIdentityFiles(context.Background(), ca, w.certDir, id, certs.FileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bundle, err := ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(bundle)
	var serving tls.Certificate
	serving, w.xdsCA = servingCert(t, "127.0.0.1")
	w.srv, err = server.New(server.Options{
		Translate:  translate.Options{Flavor: translate.FlavorGRPC},
		Log:        testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
		Registry:   prometheus.NewRegistry(),
		VerifyPeer: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.xdsAddr = lis.Addr().String()
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS13,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.srv.Serve(ctx, lis, creds) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xDS server: %v", err)
		}
	})
	return w
}

// apply writes the manifests into the directory, loads it as `meshward
// serve --dir` does (adapters/files, then the model), checks the model has
// no findings, and publishes it to the xDS server.
func (w *world) apply(t *testing.T, p params) {
	t.Helper()
	m := manifests(p)
	for _, name := range manifestFiles {
		if err := os.WriteFile(filepath.Join(w.dir, name+".yaml"), []byte(m[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := files.Load(w.dir, snapshot.NewDecoder())
	if err != nil {
		t.Fatalf("loading %s: %v", w.dir, err)
	}
	model := meshtranslate.Build(res.Snapshot, mesh.DefaultOptions())
	if len(model.Findings) != 0 {
		var b strings.Builder
		for _, f := range model.Findings {
			fmt.Fprintf(&b, "\n  %+v", f)
		}
		t.Fatalf("the model has findings:%s", b.String())
	}
	if err := w.srv.Update(model); err != nil {
		t.Fatalf("publishing the model: %v", err)
	}
}

// boot returns an identity's gRPC bootstrap as `meshward bootstrap
// --format grpc` prints it: mTLS to the xDS server and, through a
// file_watcher certificate provider, to the mesh.
func (w *world) boot(t *testing.T, id mesh.Identity) []byte {
	t.Helper()
	b, err := bootstrap.GRPC(bootstrap.Options{
		Identity: id, XDSAddress: w.xdsAddr, CertDir: w.certDir, XDSCAFile: w.xdsCA,
		NodeID: bootstrap.NodeID("ocirouting", id),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
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
// bootstrap until the test ends, and waits until it serves (once the xDS
// server gave it the listener for its address, with mTLS and RBAC as that
// listener says). It answers every method with its pod's name, after
// sleeping for as many milliseconds as the request says.
func startPod(t *testing.T, name string, boot []byte, lis net.Listener) {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(boot),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			var sleep wrapperspb.Int64Value
			if err := stream.RecvMsg(&sleep); err != nil {
				return err
			}
			if d := time.Duration(sleep.GetValue()) * time.Millisecond; d > 0 {
				select {
				case <-time.After(d):
				case <-stream.Context().Done():
					return status.FromContextError(stream.Context().Err()).Err()
				}
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
		t.Fatal(err)
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
		t.Fatalf("pod %s at %s never got its listener from the xDS server", name, lis.Addr())
	}
}

// client is a proxyless gRPC client of one identity dialling one target.
type client struct {
	conn *grpc.ClientConn
}

// newClient dials target (xds:///...) with the bootstrap, over xDS
// credentials (mTLS as the clusters say).
func newClient(t *testing.T, boot []byte, target string) *client {
	t.Helper()
	rb, err := xds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		t.Fatalf("the bootstrap is not accepted: %v", err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn}
}

// call calls method (a gRPC path, /package.Service/Method), asking the
// server to take sleep before it answers, and returns the pod that
// answered. The call's own deadline is 10 s: longer than any sleep.
func (c *client) call(method string, sleep time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp wrapperspb.StringValue
	if err := c.conn.Invoke(ctx, method, wrapperspb.Int64(sleep.Milliseconds()), &resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

// count makes n calls of method and counts them by the pod that answered,
// and the failed ones by code.
func (c *client) count(method string, n int) (map[string]int, map[codes.Code]int, error) {
	pods, failed := map[string]int{}, map[codes.Code]int{}
	var last error
	for range n {
		pod, err := c.call(method, 0)
		if err != nil {
			failed[status.Code(err)]++
			last = err
			continue
		}
		pods[pod]++
	}
	return pods, failed, last
}

// eventually calls check until it returns nil; the timeout bounds the
// wait, it does not measure anything.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, wait, err)
		}
		time.Sleep(20 * time.Millisecond)
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
