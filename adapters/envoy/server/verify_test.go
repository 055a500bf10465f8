package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

func TestPeerIdentity(t *testing.T) {
	s, err := New(Options{Translate: translate.Options{Flavor: translate.FlavorGRPC}, VerifyPeer: true})
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(uris ...string) context.Context {
		cert := &x509.Certificate{}
		for _, u := range uris {
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			cert.URIs = append(cert.URIs, parsed)
		}
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
			State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}},
		}})
	}
	shopWeb := mesh.Identity{Namespace: "shop", Name: "web"}
	for name, tc := range map[string]struct {
		ctx  context.Context
		want mesh.Identity
		ok   bool
	}{
		"SPIFFE ID":           {ctx: withCert("spiffe://cluster.local/ns/shop/sa/web"), want: shopWeb, ok: true},
		"second URI":          {ctx: withCert("https://example.com/x", "spiffe://cluster.local/ns/shop/sa/web"), want: shopWeb, ok: true},
		"other trust domain":  {ctx: withCert("spiffe://example.org/ns/shop/sa/web")},
		"not a workload ID":   {ctx: withCert("spiffe://cluster.local/ns/shop")},
		"no peer":             {ctx: context.Background()},
		"no verified chain":   {ctx: peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}})},
		"plaintext transport": {ctx: peer.NewContext(context.Background(), &peer.Peer{})},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.peerIdentity(tc.ctx)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("peerIdentity = %v, %v; want %v (ok %v)", got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, errPeer) {
				t.Fatalf("error %v does not wrap errPeer", err)
			}
		})
	}
	if err := s.checkNode(&corev3.Node{Id: "p~shop~web"}, shopWeb); err != nil {
		t.Errorf("checkNode(matching) = %v", err)
	}
	if err := s.checkNode(&corev3.Node{Id: "p~shop~api"}, shopWeb); !errors.Is(err, errPeer) {
		t.Errorf("checkNode(other identity) = %v, want errPeer", err)
	}
	if err := s.checkNode(&corev3.Node{Id: "p"}, shopWeb); !errors.Is(err, errPeer) {
		t.Errorf("checkNode(no identity) = %v, want errPeer", err)
	}
}
