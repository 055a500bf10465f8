package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

func TestIssueServing(t *testing.T) {
	ca := newCA(t, certs.Options{Now: fixedClock(t0)})
	key := newKey(t)
	hosts := []string{"meshward.meshward-system.svc", "meshward.meshward-system.svc.cluster.local", "127.0.0.1", "::1"}
	c, err := ca.IssueServing(context.Background(), certs.ServingRequest{Hosts: hosts, PublicKey: &key.PublicKey, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, c.CertPEM)
	if !slices.Equal(leaf.DNSNames, hosts[:2]) || len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("SANs DNS %v IP %v, want %v", leaf.DNSNames, leaf.IPAddresses, hosts)
	}
	if len(leaf.URIs) != 0 {
		t.Errorf("a serving certificate names a workload: %v", leaf.URIs)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Errorf("extended key usage %v (CA %v), want server auth only", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if leaf.Subject.CommonName != hosts[0] {
		t.Errorf("CN %q", leaf.Subject.CommonName)
	}
	if !c.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Errorf("NotAfter %s, want %s", c.NotAfter, t0.Add(time.Hour))
	}
	roots := pool(t, bundleOf(t, ca))
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h, CurrentTime: t0}); err != nil {
			t.Errorf("as %s: %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "meshward.other.svc", CurrentTime: t0}); err == nil {
		t.Error("valid for a host it was not issued for")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a serving certificate verifies as a client certificate")
	}
}

func TestIssueServingRejects(t *testing.T) {
	ca := newCA(t, certs.Options{})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		req  certs.ServingRequest
		want error
	}{
		"no hosts":   {certs.ServingRequest{PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidHost},
		"upper case": {certs.ServingRequest{Hosts: []string{"Meshward.svc"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidHost},
		"wildcard":   {certs.ServingRequest{Hosts: []string{"*.svc"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidHost},
		"host:port":  {certs.ServingRequest{Hosts: []string{"localhost:15012"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidHost},
		"empty":      {certs.ServingRequest{Hosts: []string{""}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidHost},
		"P-384 key":  {certs.ServingRequest{Hosts: []string{"localhost"}, PublicKey: &p384.PublicKey}, certs.ErrUnsupportedKey},
		"negative":   {certs.ServingRequest{Hosts: []string{"localhost"}, PublicKey: &newKey(t).PublicKey, TTL: -time.Second}, certs.ErrInvalidTTL},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ca.IssueServing(context.Background(), tc.req); !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			}
		})
	}
}

// TestServingCertificateIsNoMeshIdentity presents a serving certificate
// where a mesh server expects a workload's client certificate: the
// handshake fails, because it is for server authentication only.
func TestServingCertificateIsNoMeshIdentity(t *testing.T) {
	ca := newCA(t, certs.Options{})
	roots := pool(t, bundleOf(t, ca))
	backend := mesh.Identity{Namespace: "shop", Name: "backend"}
	s, err := certs.NewServingCertificate(context.Background(), ca, certs.ServingOptions{Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	h := mutualTLS(t, tlsCert(t, ca, backend), *s.Certificate(context.Background()), roots, roots, backend.Principal(mesh.PrincipalSPIFFE, "cluster.local"))
	if h.serverErr == nil || h.clientID != "" {
		t.Fatalf("a mesh server accepted the serving certificate as a client (server error %v, client %q)", h.serverErr, h.clientID)
	}
	t.Logf("refused: %v", h.serverErr)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestServingCertificateRenews serves TLS with a ServingCertificate: a
// client verifying with the trust bundle accepts it, and after two thirds
// of its lifetime a handshake gets a new certificate with a new key.
func TestServingCertificateRenews(t *testing.T) {
	clk := &clock{now: time.Now().Truncate(time.Second)}
	start := clk.Now()
	ca := newCA(t, certs.Options{Now: clk.Now})
	s, err := certs.NewServingCertificate(context.Background(), ca, certs.ServingOptions{Hosts: []string{"localhost", "127.0.0.1"}, TTL: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(conn, "hello")
			}()
		}
	}()
	roots := pool(t, bundleOf(t, ca))
	served := func(name string) *x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12,
			// The certificates are valid for the test's clock, which the
			// client does not share.
			Time: clk.Now,
		})
		if err != nil {
			t.Fatalf("as %s: %v", name, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	first := served("localhost")
	if !first.NotAfter.Equal(start.Add(3 * time.Hour)) {
		t.Errorf("NotAfter %s, want %s", first.NotAfter, start.Add(3*time.Hour))
	}
	if got := served("127.0.0.1"); !got.Equal(first) {
		t.Error("a new certificate before it was due")
	}
	clk.Set(start.Add(2*time.Hour - time.Second))
	if got := served("localhost"); !got.Equal(first) {
		t.Error("renewed before two thirds of the lifetime")
	}
	clk.Set(start.Add(2 * time.Hour))
	second := served("localhost")
	if second.Equal(first) || second.PublicKey.(*ecdsa.PublicKey).Equal(first.PublicKey) {
		t.Fatal("not renewed with a new key after two thirds of the lifetime")
	}
	if !second.NotAfter.Equal(start.Add(5 * time.Hour)) {
		t.Errorf("renewed NotAfter %s, want %s", second.NotAfter, start.Add(5*time.Hour))
	}
	if got := served("localhost"); !got.Equal(second) {
		t.Error("renewed again at once")
	}
}

// TestServingCertificateKeepsServingWhenRenewalFails: when the CA cannot
// issue, the current certificate keeps serving and renewal is retried
// after the retry interval, not on every handshake.
func TestServingCertificateKeepsServingWhenRenewalFails(t *testing.T) {
	clk := &clock{now: time.Now().Truncate(time.Second)}
	start := clk.Now()
	ca := newCA(t, certs.Options{Now: clk.Now, RootValidity: 2 * time.Hour})
	var (
		mu     sync.Mutex
		failed []string
	)
	log := funcr.New(func(_, args string) {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(args, "renewing the serving certificate failed") {
			failed = append(failed, args)
		}
	}, funcr.Options{})
	s, err := certs.NewServingCertificate(context.Background(), ca, certs.ServingOptions{Hosts: []string{"localhost"}, TTL: time.Hour, RetryInterval: time.Minute, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Certificate(context.Background())
	failures := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(failed)
	}
	// Past the root's end nothing can be issued.
	clk.Set(start.Add(2*time.Hour + time.Second))
	for range 3 {
		if got := s.Certificate(context.Background()); got != first {
			t.Fatal("the certificate changed although renewal failed")
		}
	}
	if n := failures(); n != 1 {
		t.Errorf("%d failed renewals logged, want 1 until the retry interval passes", n)
	}
	clk.Set(start.Add(2*time.Hour + time.Minute + time.Second))
	s.Certificate(context.Background())
	if n := failures(); n != 2 {
		t.Errorf("%d failed renewals logged after the retry interval, want 2", n)
	}
}
