package dataplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// MeshCerts issues the certificates of the identities with a new
// built-in CA, writes their files into a new directory, and returns the
// directory and the CA's trust bundle.
func MeshCerts(t testing.TB, ids ...mesh.Identity) (dir string, bundle []byte) {
	t.Helper()
	dir = t.TempDir()
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := certs.WriteIdentityFiles(context.Background(), ca, dir, id, certs.FileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bundle, err = ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dir, bundle
}

// XDSOptions are the options of StartXDS.
type XDSOptions struct {
	// Registry receives the xDS server's metrics; a registry of its own
	// when nil.
	Registry *prometheus.Registry
	// Model, when not nil, is published before the server serves.
	Model *mesh.Model
}

// XDS is an xDS server that StartXDS started.
type XDS struct {
	Server *server.Server
	// Addr is where it listens, host:port.
	Addr string
	// CAFile is the file of the roots that verify its certificate.
	CAFile string
}

// StartXDS serves xDS until the test ends as `meshward serve --xds-flavor
// grpc` does: the gRPC flavor with RBAC, behind TLS 1.3 with a serving
// certificate for 127.0.0.1 from a CA of its own, requiring a workload
// certificate that bundle verifies and that proves the node's identity.
func StartXDS(t testing.TB, bundle []byte, o XDSOptions) *XDS {
	t.Helper()
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(bundle)
	serving, caFile := servingCert(t, "127.0.0.1")
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	srv, err := server.New(server.Options{
		Translate:  translate.Options{Flavor: translate.FlavorGRPC},
		Log:        testr.NewWithInterface(t, testr.Options{Verbosity: 0}),
		Registry:   reg,
		VerifyPeer: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Model != nil {
		if err := srv.Update(o.Model); err != nil {
			t.Fatalf("publishing the model: %v", err)
		}
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
	return &XDS{Server: srv, Addr: lis.Addr().String(), CAFile: caFile}
}

// Bootstrap returns the gRPC bootstrap of an identity, as `meshward
// bootstrap --format grpc` prints it: mTLS to the xDS server x and,
// through a file_watcher certificate provider, to the mesh with the
// identity's certificate files in certDir. Its node id is
// NodeID(node, id).
func (x *XDS) Bootstrap(t testing.TB, node string, id mesh.Identity, certDir string) []byte {
	t.Helper()
	b, err := bootstrap.GRPC(bootstrap.Options{
		Identity: id, XDSAddress: x.Addr, CertDir: certDir, XDSCAFile: x.CAFile,
		NodeID: bootstrap.NodeID(node, id),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// servingCert returns a serving certificate for the IP address, signed by
// a CA of its own, and the file holding that CA: the xDS server's
// certificate, which workloads verify with the bootstrap's xDS roots.
func servingCert(t testing.TB, ip string) (tls.Certificate, string) {
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
