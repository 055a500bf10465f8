package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

const sdsType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// sdsNames are the Secrets the Envoy flavor's transport sockets name.
var sdsNames = []string{translate.DefaultSDSCertName, translate.DefaultSDSRootName}

// tlsHarness is a server of the Envoy flavor with an Issuer, served over
// mTLS as Options.Issuer requires, and its CA.
type tlsHarness struct {
	srv    *server.Server
	reg    *prometheus.Registry
	ca     *certs.CA
	bundle []byte
	lis    *bufconn.Listener
}

// newTLSHarness starts the server; issuer, when not nil, wraps the CA.
func newTLSHarness(t *testing.T, ttl time.Duration, issuer func(*certs.CA) certs.Issuer) *tlsHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &tlsHarness{reg: prometheus.NewRegistry(), ca: ca, lis: bufconn.Listen(1 << 20)}
	if h.bundle, err = ca.TrustBundle(ctx); err != nil {
		t.Fatal(err)
	}
	var iss certs.Issuer = ca
	if issuer != nil {
		iss = issuer(ca)
	}
	h.srv, err = server.New(server.Options{
		Translate:  translate.Options{Flavor: translate.FlavorEnvoy},
		Log:        testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Registry:   h.reg,
		VerifyPeer: true,
		Issuer:     iss,
		CertTTL:    ttl,
		// Retry failed certificates after a second, not ten, so that
		// TestSecretsAreRetried waits for the retry well within its
		// receive timeout.
		CertRetryInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := certs.NewServingCertificate(ctx, ca, certs.ServingOptions{Hosts: []string{"xds.test"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := serving.TLSConfig()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = x509.NewCertPool()
	cfg.ClientCAs.AppendCertsFromPEM(h.bundle)
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, h.lis, credentials.NewTLS(cfg)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return h
}

// dialAs connects with a client certificate of id from the mesh CA.
func (h *tlsHarness) dialAs(t *testing.T, id mesh.Identity) *grpc.ClientConn {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := h.ca.Issue(context.Background(), certs.Request{Identity: id, PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cert.CertPEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.bundle)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}},
		RootCAs:      roots,
		ServerName:   "xds.test",
		MinVersion:   tls.VersionTLS13,
	})
	conn, err := grpc.NewClient("passthrough:///xds.test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sotwOn opens a state-of-the-world stream on conn.
func sotwOn(t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *sotw {
	t.Helper()
	h := &harness{conn: conn}
	return h.sotw(t, node)
}

// deltaOn opens a delta stream on conn.
func (h *tlsHarness) deltaOn(t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *delta {
	t.Helper()
	return (&harness{conn: conn}).delta(t, node)
}

// workloadSecret is what a certificate Secret carries, decoded.
type workloadSecret struct {
	leaf *x509.Certificate
	key  crypto.Signer
}

// secretsOf decodes the Secrets of a response by name, checking their
// shape: the certificate Secret holds a chain and a matching PKCS#8 key,
// and nothing else; the root Secret holds only trusted CAs.
func secretsOf(t *testing.T, res []*anypb.Any) (map[string]*workloadSecret, map[string][]byte) {
	t.Helper()
	certsByName, roots := map[string]*workloadSecret{}, map[string][]byte{}
	for _, a := range res {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		switch typ := s.GetType().(type) {
		case *tlsv3.Secret_TlsCertificate:
			tc := typ.TlsCertificate
			block, rest := pem.Decode(tc.GetCertificateChain().GetInlineBytes())
			if block == nil || block.Type != "CERTIFICATE" {
				t.Fatalf("Secret %q: no PEM certificate chain", s.GetName())
			}
			if len(rest) != 0 {
				t.Errorf("Secret %q: the built-in CA signs leaves directly, but the chain has more", s.GetName())
			}
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			kb, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
			if kb == nil || kb.Type != "PRIVATE KEY" {
				t.Fatalf("Secret %q: no PEM PKCS#8 private key", s.GetName())
			}
			k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			key := k.(crypto.Signer)
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Errorf("Secret %q: the key does not belong to the certificate", s.GetName())
			}
			if tc.GetPassword() != nil || tc.GetOcspStaple() != nil || tc.GetPrivateKeyProvider() != nil {
				t.Errorf("Secret %q carries more than a chain and a key", s.GetName())
			}
			certsByName[s.GetName()] = &workloadSecret{leaf: leaf, key: key}
		case *tlsv3.Secret_ValidationContext:
			vc := typ.ValidationContext
			if len(vc.GetMatchTypedSubjectAltNames()) != 0 || vc.GetCrl() != nil {
				t.Errorf("Secret %q: the roots' Secret checks more than the chain", s.GetName())
			}
			roots[s.GetName()] = vc.GetTrustedCa().GetInlineBytes()
		default:
			t.Fatalf("Secret %q of unexpected type %T", s.GetName(), typ)
		}
	}
	return certsByName, roots
}

func spiffeIDs(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// A node gets its own identity's certificate and key, and the trust
// bundle, over SDS (state of the world and delta); never another
// identity's.
func TestSecretsAreServedToTheirIdentityOnly(t *testing.T) {
	h := newTLSHarness(t, 0, nil)
	if err := h.srv.Update(testModel()); err != nil {
		t.Fatal(err)
	}
	webConn, apiConn := h.dialAs(t, web), h.dialAs(t, api)

	c := sotwOn(t, webConn, nodeOf(t, web))
	c.request(sdsType, "", "", sdsNames, "")
	r := c.recv()
	got, roots := secretsOf(t, r.GetResources())
	webCert := got[translate.DefaultSDSCertName]
	if webCert == nil {
		t.Fatalf("no Secret %q among %d", translate.DefaultSDSCertName, len(r.GetResources()))
	}
	if ids := spiffeIDs(webCert.leaf); !slices.Equal(ids, []string{"spiffe://cluster.local/ns/shop/sa/web"}) {
		t.Errorf("web's certificate carries %v", ids)
	}
	if string(roots[translate.DefaultSDSRootName]) != string(h.bundle) {
		t.Error("the roots' Secret is not the CA's trust bundle")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots[translate.DefaultSDSRootName])
	if _, err := webCert.leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the certificate does not verify with the served roots: %v", err)
	}
	c.ack(r, sdsNames)
	c.none()

	// api's node gets api's certificate, with another key.
	d := h.deltaOn(t, apiConn, nodeOf(t, api))
	d.request(sdsType, "", sdsNames, nil, "")
	dr := d.recv()
	var anys []*anypb.Any
	for _, res := range dr.GetResources() {
		anys = append(anys, res.GetResource())
	}
	apiSecrets, _ := secretsOf(t, anys)
	apiCert := apiSecrets[translate.DefaultSDSCertName]
	if apiCert == nil {
		t.Fatal("api got no certificate over delta")
	}
	if ids := spiffeIDs(apiCert.leaf); !slices.Equal(ids, []string{"spiffe://cluster.local/ns/shop/sa/api"}) {
		t.Errorf("api's certificate carries %v", ids)
	}
	if apiCert.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(webCert.key.Public()) {
		t.Error("two identities share a key")
	}

	// web's certificate cannot ask for api's Secrets: its stream ends.
	claim := sotwOn(t, webConn, nodeOf(t, api))
	claim.request(sdsType, "", "", sdsNames, "")
	select {
	case resp, ok := <-claim.in:
		if ok {
			t.Fatalf("a node claiming another identity got %d resources", len(resp.GetResources()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a node claiming another identity did not end")
	}
	if _, err := claim.stream.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("claiming another identity: %v, want PermissionDenied", err)
	}
	// Nor can it name them otherwise: the names are the same for every
	// identity and resolve to the node's own.
	other := sotwOn(t, webConn, nodeOf(t, web))
	other.request(sdsType, "", "", []string{"shop/api", "spiffe://cluster.local/ns/shop/sa/api"}, "")
	if r := other.recv(); len(r.GetResources()) != 0 {
		t.Errorf("asking for other names gave %d Secrets", len(r.GetResources()))
	}
}

// A certificate is renewed at two thirds of its lifetime, and the new
// Secret is pushed to the nodes that hold the old one.
func TestSecretsAreRenewed(t *testing.T) {
	t.Parallel()
	h := newTLSHarness(t, 3*time.Second, nil)
	if err := h.srv.Update(testModel()); err != nil {
		t.Fatal(err)
	}
	c := sotwOn(t, h.dialAs(t, web), nodeOf(t, web))
	c.request(sdsType, "", "", sdsNames, "")
	r := c.recv()
	first, _ := secretsOf(t, r.GetResources())
	c.ack(r, sdsNames)
	r = c.recv() // within about 2 s
	renewed, _ := secretsOf(t, r.GetResources())
	if len(r.GetResources()) != 1 || renewed[translate.DefaultSDSCertName] == nil {
		t.Fatalf("the renewal pushed %d Secrets, want the certificate only", len(r.GetResources()))
	}
	a, b := first[translate.DefaultSDSCertName], renewed[translate.DefaultSDSCertName]
	if a.leaf.SerialNumber.Cmp(b.leaf.SerialNumber) == 0 || a.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.key.Public()) {
		t.Error("the renewed Secret holds the same certificate or key")
	}
	if !slices.Equal(spiffeIDs(b.leaf), spiffeIDs(a.leaf)) {
		t.Errorf("the renewed certificate is %v's", spiffeIDs(b.leaf))
	}
}

// Private keys go only to nodes that prove their identity, to Envoy
// nodes, and where TLS is on.
func TestIssuerNeedsVerifiedPeersAndEnvoy(t *testing.T) {
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]server.Options{
		"no VerifyPeer": {Translate: translate.Options{Flavor: translate.FlavorEnvoy}, Issuer: ca},
		"grpc flavor":   {Translate: translate.Options{Flavor: translate.FlavorGRPC}, Issuer: ca, VerifyPeer: true},
		"plaintext":     {Translate: translate.Options{Flavor: translate.FlavorEnvoy, Plaintext: true}, Issuer: ca, VerifyPeer: true},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := server.New(opts); err == nil {
				t.Fatal("New accepted an Issuer")
			}
		})
	}
}

// failingIssuer fails while fail is set.
type failingIssuer struct {
	certs.Issuer
	fail atomic.Bool
}

func (f *failingIssuer) Issue(ctx context.Context, req certs.Request) (*certs.Certificate, error) {
	if f.fail.Load() {
		return nil, errors.New("the CA is down")
	}
	return f.Issuer.Issue(ctx, req)
}

// A certificate that cannot be issued is reported and retried; the rest
// of the configuration is published meanwhile (Envoy holds what needs the
// certificate until it comes).
func TestSecretsAreRetried(t *testing.T) {
	t.Parallel()
	var issuer *failingIssuer
	h := newTLSHarness(t, 0, func(ca *certs.CA) certs.Issuer {
		issuer = &failingIssuer{Issuer: ca}
		issuer.fail.Store(true)
		return issuer
	})
	err := h.srv.Update(testModel())
	if !errors.Is(err, server.ErrRejected) {
		t.Fatalf("Update with a failing issuer = %v, want ErrRejected", err)
	}
	if n := (&harness{reg: h.reg}).metric(t, "meshward_xds_update_failures_total", map[string]string{"stage": "certificate"}); n != 2 {
		t.Errorf("%v certificate failures counted, want 2", n)
	}
	conn := h.dialAs(t, web)
	lds := sotwOn(t, conn, nodeOf(t, web))
	lds.request(ldsType, "", "", nil, "")
	if r := lds.recv(); len(r.GetResources()) == 0 {
		t.Error("web got no listeners while its certificate is missing")
	}
	c := sotwOn(t, conn, nodeOf(t, web))
	c.request(sdsType, "", "", sdsNames, "")
	r := c.recv()
	if got, roots := secretsOf(t, r.GetResources()); len(got) != 0 || roots[translate.DefaultSDSRootName] == nil {
		t.Fatalf("before the certificate: %d certificates and roots %v", len(got), roots != nil)
	}
	c.ack(r, sdsNames)
	issuer.fail.Store(false)
	r = c.recv() // after the retry interval
	if got, _ := secretsOf(t, r.GetResources()); got[translate.DefaultSDSCertName] == nil {
		t.Fatal("the certificate issued on retry was not pushed")
	}
}
