package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

// checkControllerXDS checks the xDS server of a running controller whose
// logs are logs: it serves mTLS with a certificate from the mesh CA (kept
// in the Secret meshward-system/meshward-ca) for the Service's names, it
// answers a node presenting its identity's certificate, and it refuses a
// node without one.
func checkControllerXDS(t *testing.T, c client.Client, logs fmt.Stringer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	line := regexp.MustCompile(`msg="xDS server listening \(mTLS\)" address=(\S+) .*hosts="?\[([^\]]*)\]`)
	m := line.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no mTLS xDS server in the logs:\n%s", logs)
	}
	addr, hosts := m[1], m[2]
	if !strings.Contains(hosts, "meshward.meshward-system.svc") {
		t.Errorf("serving certificate hosts %q lack meshward.meshward-system.svc", hosts)
	}

	// The same CA, read from its Secret, issues a workload certificate.
	ca, err := certs.LoadOrCreateSecretCA(ctx, c, "meshward-system", "meshward-ca", certs.Options{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := ca.TrustBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	buyer := mesh.Identity{Namespace: "bookbuyer", Name: "bookbuyer"}
	cert, err := ca.Issue(ctx, certs.Request{Identity: buyer, PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert.FullChainPEM(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	base := &tls.Config{RootCAs: roots, ServerName: "meshward.meshward-system.svc", MinVersion: tls.VersionTLS13}

	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{pair}
	n, err := fetchListeners(ctx, addr, withCert, buyer)
	if err != nil || n == 0 {
		t.Fatalf("a node with its identity's certificate got %d listeners, %v; want some", n, err)
	}
	short, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if n, err := fetchListeners(short, addr, base, buyer); err == nil {
		t.Fatalf("a node without a certificate got %d listeners; want the connection refused", n)
	}
}

// fetchListeners opens an ADS stream as a node of id and returns how many
// listeners the first answer holds.
func fetchListeners(ctx context.Context, addr string, cfg *tls.Config, id mesh.Identity) (int, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	md, err := structpb.NewStruct(map[string]any{"meshward.io/identity": id.String()})
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{
		Node:    &corev3.Node{Id: "test~" + id.Namespace + "~" + id.Name, Metadata: md},
		TypeUrl: resourcev3.ListenerType,
	}); err != nil {
		return 0, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	return len(resp.GetResources()), nil
}
