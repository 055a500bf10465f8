package xds

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
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/mesh"
)

// testService answers UnaryCall with the name of the pod that served it.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	pod string
}

func (s *testService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: s.pod, Hostname: s.pod}, nil
}

// listenPods listens on the same free port at every address, as pods of
// one Deployment do on their own pod IPs.
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

// bootstrapFor returns the gRPC bootstrap of an identity, as `meshward
// bootstrap --format grpc` prints it: mTLS to the xDS server (whose
// certificate xdsCA verifies) and to the mesh with the certificate files
// of the identity in certDir.
func bootstrapFor(t *testing.T, id mesh.Identity, xdsAddr, certDir, xdsCA string) []byte {
	t.Helper()
	b, err := bootstrap.GRPC(bootstrap.Options{Identity: id, XDSAddress: xdsAddr, CertDir: certDir, XDSCAFile: xdsCA, NodeID: bootstrap.NodeID(t.Name(), id)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startPod serves the test service as an xDS-enabled gRPC server on lis,
// with the identity's bootstrap, until the test ends. The server serves
// only once the xDS server gave it the listener for its address, and with
// mTLS and RBAC as that listener says.
func startPod(t *testing.T, name string, boot []byte, lis net.Listener) {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(boot),
		xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			t.Logf("pod %s at %s: serving mode %s (%v)", name, addr, args.Mode, args.Err)
			if args.Mode == connectivity.ServingModeServing {
				once.Do(func() { close(serving) })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	testgrpc.RegisterTestServiceServer(srv, &testService{pod: name})
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

// client is a proxyless gRPC client of one identity.
type client struct {
	name string
	conn *grpc.ClientConn
	test testgrpc.TestServiceClient
}

// newClient dials target (xds:///...) with the identity's bootstrap, over
// xDS credentials (mTLS as the clusters say).
func newClient(t *testing.T, name string, boot []byte, target string) *client {
	t.Helper()
	rb, err := xds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		t.Fatalf("%s: the bootstrap is not accepted: %v", name, err)
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
	return &client{name: name, conn: conn, test: testgrpc.NewTestServiceClient(conn)}
}

// call makes one call and returns the pod that served it.
func (c *client) call(ctx context.Context, md ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	resp, err := c.test.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
	if err != nil {
		return "", err
	}
	return resp.GetServerId(), nil
}

// count makes n calls and counts them by serving pod; it fails the test
// on the first failed call.
func (c *client) count(t *testing.T, n int, md ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		pod, err := c.call(context.Background(), md...)
		if err != nil {
			t.Fatalf("%s: call %d of %d failed: %v", c.name, i+1, n, err)
		}
		got[pod]++
	}
	return got
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

// wantCode checks that err is a gRPC status with the code.
func wantCode(err error, code codes.Code) error {
	if err == nil {
		return fmt.Errorf("call succeeded, want %s", code)
	}
	if s, ok := status.FromError(err); !ok || s.Code() != code {
		return fmt.Errorf("call failed with %w, want %s", err, code)
	}
	return nil
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
