package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

// tlsCert issues a certificate for id and returns it ready for crypto/tls.
func tlsCert(t *testing.T, issuer certs.Issuer, id mesh.Identity) tls.Certificate {
	t.Helper()
	key := newKey(t)
	c, err := issuer.Issue(context.Background(), certs.Request{Identity: id, PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, c.CertPEM)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// verifyPeerID checks the peer's chain against roots for usage and that
// its only URI SAN is want: how a mesh client authenticates a server, whose
// certificate names no host.
func verifyPeerID(roots *x509.CertPool, usage x509.ExtKeyUsage, want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no peer certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return err
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			return fmt.Errorf("peer is %v, want %s", leaf.URIs, want)
		}
		return nil
	}
}

type handshake struct {
	clientErr error
	serverErr error
	clientID  string // the client's URI SAN as the server saw it
}

// mutualTLS runs one mTLS exchange on loopback: the server requires a
// client certificate signed by serverRoots, the client expects the server
// to be wantServer.
func mutualTLS(t *testing.T, server, client tls.Certificate, serverRoots, clientRoots *x509.CertPool, wantServer string) handshake {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    serverRoots,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		id  string
		err error
	}
	served := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			served <- result{err: err}
			return
		}
		var id string
		if peers := tc.ConnectionState().PeerCertificates; len(peers) > 0 && len(peers[0].URIs) == 1 {
			id = peers[0].URIs[0].String()
		}
		_, err = io.WriteString(tc, "hello "+id)
		served <- result{id: id, err: err}
	}()

	var h handshake
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{client},
		// Mesh certificates name workloads, not hosts: the client checks
		// the chain and the server's SPIFFE ID itself.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verifyPeerID(clientRoots, x509.ExtKeyUsageServerAuth, wantServer),
		MinVersion:         tls.VersionTLS13,
	})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		// With TLS 1.3 the server checks the client certificate after the
		// client's handshake ends: reading surfaces its verdict.
		_, h.clientErr = io.ReadAll(conn)
		conn.Close()
	} else {
		h.clientErr = err
		ln.Close()
	}
	r := <-served
	h.serverErr, h.clientID = r.err, r.id
	return h
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, certs.Options{})
	roots := pool(t, bundleOf(t, ca))
	backend := mesh.Identity{Namespace: "shop", Name: "backend"}
	frontend := mesh.Identity{Namespace: "shop", Name: "frontend"}
	backendID := backend.Principal(mesh.PrincipalSPIFFE, "cluster.local")
	frontendID := frontend.Principal(mesh.PrincipalSPIFFE, "cluster.local")
	server, client := tlsCert(t, ca, backend), tlsCert(t, ca, frontend)

	t.Run("both identities verified", func(t *testing.T) {
		h := mutualTLS(t, server, client, roots, roots, backendID)
		if h.clientErr != nil || h.serverErr != nil {
			t.Fatalf("client: %v; server: %v", h.clientErr, h.serverErr)
		}
		if h.clientID != frontendID {
			t.Errorf("server saw client %q, want %q", h.clientID, frontendID)
		}
	})
	t.Run("client refuses an unexpected server", func(t *testing.T) {
		h := mutualTLS(t, server, client, roots, roots, "spiffe://cluster.local/ns/shop/sa/payments")
		if h.clientErr == nil {
			t.Fatal("client accepted the wrong server identity")
		}
	})
	t.Run("server refuses a client of another CA", func(t *testing.T) {
		stranger := tlsCert(t, newCA(t, certs.Options{}), frontend)
		h := mutualTLS(t, server, stranger, roots, roots, backendID)
		if h.serverErr == nil || h.clientErr == nil {
			t.Fatalf("a client certificate from another CA was accepted (server: %v, client: %v)", h.serverErr, h.clientErr)
		}
	})
	t.Run("DNS principals are the only SAN in dns mode", func(t *testing.T) {
		dnsCA := newCA(t, certs.Options{PrincipalFormat: mesh.PrincipalDNS})
		s := tlsCert(t, dnsCA, backend)
		if len(s.Leaf.URIs) != 0 {
			t.Errorf("dns-mode certificate carries URI SANs %v: peers reading URI SANs first would never see the DNS principal", s.Leaf.URIs)
		}
		if err := s.Leaf.VerifyHostname("backend.shop.cluster.local"); err != nil {
			t.Errorf("DNS principal is not a DNS SAN: %v", err)
		}
	})
}
