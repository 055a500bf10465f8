package bootstrap_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshward/meshward/adapters/envoy/bootstrap"
	"github.com/meshward/meshward/mesh"
)

var store = mesh.Identity{Namespace: "bookstore", Name: "bookstore-v2"}

func TestNodeIdentity(t *testing.T) {
	meta := func(v *structpb.Value) *structpb.Struct {
		return &structpb.Struct{Fields: map[string]*structpb.Value{bootstrap.NodeIdentityKey: v}}
	}
	for name, tc := range map[string]struct {
		node *corev3.Node
		want mesh.Identity
		err  error
	}{
		"metadata":              {node: &corev3.Node{Id: "pod-1", Metadata: meta(structpb.NewStringValue("bookstore/bookstore-v2"))}, want: store},
		"node id":               {node: &corev3.Node{Id: "bookstore-v2-7d9f~bookstore~bookstore-v2"}, want: store},
		"node id with more ~":   {node: &corev3.Node{Id: "a~b~bookstore~bookstore-v2"}, want: store},
		"dotted name":           {node: &corev3.Node{Id: "p~ns~sa.with.dots"}, want: mesh.Identity{Namespace: "ns", Name: "sa.with.dots"}},
		"metadata and same id":  {node: &corev3.Node{Id: bootstrap.NodeID("p", store), Metadata: meta(structpb.NewStringValue("bookstore/bookstore-v2"))}, want: store},
		"metadata wins over id": {node: &corev3.Node{Id: "sidecar", Metadata: meta(structpb.NewStringValue("bookstore/bookstore-v2"))}, want: store},
		"nil node":              {err: bootstrap.ErrNoIdentity},
		"plain id":              {node: &corev3.Node{Id: "pod-1"}, err: bootstrap.ErrNoIdentity},
		"conflict":              {node: &corev3.Node{Id: "p~bookstore~bookstore", Metadata: meta(structpb.NewStringValue("bookstore/bookstore-v2"))}, err: bootstrap.ErrInvalidIdentity},
		"not a string":          {node: &corev3.Node{Metadata: meta(structpb.NewNumberValue(1))}, err: bootstrap.ErrInvalidIdentity},
		"no slash":              {node: &corev3.Node{Metadata: meta(structpb.NewStringValue("bookstore"))}, err: bootstrap.ErrInvalidIdentity},
		"empty namespace":       {node: &corev3.Node{Metadata: meta(structpb.NewStringValue("/sa"))}, err: bootstrap.ErrInvalidIdentity},
		"upper case":            {node: &corev3.Node{Id: "p~Bookstore~sa"}, err: bootstrap.ErrInvalidIdentity},
		"slash in name":         {node: &corev3.Node{Metadata: meta(structpb.NewStringValue("ns/a/b"))}, err: bootstrap.ErrInvalidIdentity},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := bootstrap.NodeIdentity(tc.node)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("NodeIdentity = %v, %v; want error %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NodeIdentity = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestGRPC(t *testing.T) {
	out, err := bootstrap.GRPC(bootstrap.Options{Identity: store, XDSAddress: "10.0.0.1:15010", CertDir: "/certs", RefreshInterval: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	creds := doc["xds_servers"].([]any)[0].(map[string]any)["channel_creds"].([]any)[0].(map[string]any)
	cfg := creds["config"].(map[string]any)
	if creds["type"] != "tls" || cfg["certificate_file"] != "/certs/bookstore/bookstore-v2/cert.pem" ||
		cfg["ca_certificate_file"] != "/certs/bookstore/bookstore-v2/ca.pem" || cfg["refresh_interval"] != "90s" {
		t.Errorf("channel credentials: %v", creds)
	}

	out, err = bootstrap.GRPC(bootstrap.Options{Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	doc = nil
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["certificate_providers"]; ok {
		t.Errorf("certificate providers without a certificate directory: %s", out)
	}
}

func TestEnvoy(t *testing.T) {
	for name, opts := range map[string]bootstrap.Options{
		"plaintext, IP":   {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true},
		"mTLS, DNS name":  {Identity: store, XDSAddress: "meshward.meshward-system.svc:15010", CertDir: "/certs", Delta: true},
		"custom node id":  {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true, NodeID: "sidecar~10.1.3.20~bookstore~bookstore-v2"},
		"custom admin ip": {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true, AdminAddress: "127.0.0.1:9901"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := bootstrap.Envoy(opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("invalid Envoy bootstrap: %v", err)
			}
			id, err := bootstrap.NodeIdentity(b.GetNode())
			if err != nil || id != store {
				t.Errorf("node identity %v, %v", id, err)
			}
			c := b.GetStaticResources().GetClusters()[0]
			ts := c.GetTransportSocket()
			if opts.Plaintext != (ts == nil) {
				t.Errorf("plaintext %v but transport socket %v", opts.Plaintext, ts)
			}
			if ts != nil {
				tc := &tlsv3.UpstreamTlsContext{}
				if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
					t.Fatal(err)
				}
				if err := tc.ValidateAll(); err != nil {
					t.Errorf("TLS context: %v", err)
				}
				if tc.GetSni() != "meshward.meshward-system.svc" || c.GetType() != clusterv3.Cluster_STRICT_DNS {
					t.Errorf("DNS server: sni %q, type %v", tc.GetSni(), c.GetType())
				}
			}
			wantAPI := corev3.ApiConfigSource_GRPC
			if opts.Delta {
				wantAPI = corev3.ApiConfigSource_DELTA_GRPC
			}
			if got := b.GetDynamicResources().GetAdsConfig().GetApiType(); got != wantAPI {
				t.Errorf("ADS API type %v, want %v", got, wantAPI)
			}
		})
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opts := range map[string]bootstrap.Options{
		"no identity":           {XDSAddress: "10.0.0.1:15010", Plaintext: true},
		"no address":            {Identity: store, Plaintext: true},
		"port out of range":     {Identity: store, XDSAddress: "10.0.0.1:70000", Plaintext: true},
		"tls without certs":     {Identity: store, XDSAddress: "10.0.0.1:15010"},
		"node id names another": {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true, NodeID: "p~bookstore~bookstore"},
		"negative refresh":      {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true, RefreshInterval: -time.Second},
		"bad admin address":     {Identity: store, XDSAddress: "10.0.0.1:15010", Plaintext: true, AdminAddress: "localhost"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := bootstrap.GRPC(opts); !errors.Is(err, bootstrap.ErrInvalidOptions) {
				t.Errorf("GRPC: %v, want ErrInvalidOptions", err)
			}
			if _, err := bootstrap.Envoy(opts); !errors.Is(err, bootstrap.ErrInvalidOptions) {
				t.Errorf("Envoy: %v, want ErrInvalidOptions", err)
			}
		})
	}
}
