package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/internal/cli"
)

func TestBootstrapGRPC(t *testing.T) {
	code, out, errOut := run(t, "bootstrap", "--identity", "bookstore/bookstore", "--format", "grpc",
		"--xds-address", "meshward.meshward-system.svc:15010", "--cert-dir", "/var/run/meshward/certs")
	if code != cli.ExitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	// gRPC accepts it.
	if _, err := xds.NewXDSResolverWithConfigForTesting([]byte(out)); err != nil {
		t.Fatalf("gRPC rejects the bootstrap: %v\n%s", err, out)
	}
	var doc struct {
		XDSServers []struct {
			ServerURI      string   `json:"server_uri"`
			ServerFeatures []string `json:"server_features"`
			ChannelCreds   []struct {
				Type string `json:"type"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
		CertificateProviders map[string]struct {
			PluginName string            `json:"plugin_name"`
			Config     map[string]string `json:"config"`
		} `json:"certificate_providers"`
		Template string `json:"server_listener_resource_name_template"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.XDSServers) != 1 || doc.XDSServers[0].ServerURI != "meshward.meshward-system.svc:15010" ||
		strings.Join(doc.XDSServers[0].ServerFeatures, ",") != "xds_v3" || doc.XDSServers[0].ChannelCreds[0].Type != "tls" {
		t.Errorf("xds_servers: %+v", doc.XDSServers)
	}
	if doc.Node.Metadata["meshward.io/identity"] != "bookstore/bookstore" || doc.Node.ID != "grpc~bookstore~bookstore" {
		t.Errorf("node: %+v", doc.Node)
	}
	p := doc.CertificateProviders["meshward"]
	if p.PluginName != "file_watcher" || p.Config["certificate_file"] != "/var/run/meshward/certs/bookstore/bookstore/cert.pem" ||
		p.Config["private_key_file"] != "/var/run/meshward/certs/bookstore/bookstore/key.pem" ||
		p.Config["ca_certificate_file"] != "/var/run/meshward/certs/bookstore/bookstore/ca.pem" {
		t.Errorf("certificate provider: %+v", doc.CertificateProviders)
	}
	if doc.Template != "grpc/server?xds.resource.listening_address=%s" {
		t.Errorf("server listener template %q", doc.Template)
	}
}

func TestBootstrapEnvoy(t *testing.T) {
	for _, extra := range [][]string{{"--plaintext"}, {"--cert-dir", "/certs", "--delta"}} {
		args := append([]string{"bootstrap", "--identity", "bookstore/bookstore-v2", "--format", "envoy", "--xds-address", "meshward.meshward-system.svc:15010"}, extra...)
		code, out, errOut := run(t, args...)
		if code != cli.ExitOK {
			t.Fatalf("%v: exit %d, stderr: %s", extra, code, errOut)
		}
		j, err := yaml.YAMLToJSON([]byte(out))
		if err != nil {
			t.Fatal(err)
		}
		b := &bootstrapv3.Bootstrap{}
		if err := protojson.Unmarshal(j, b); err != nil {
			t.Fatalf("%v: not an Envoy bootstrap: %v\n%s", extra, err, out)
		}
		if err := b.ValidateAll(); err != nil {
			t.Errorf("%v: invalid Envoy bootstrap: %v", extra, err)
		}
		if got := b.GetNode().GetMetadata().GetFields()["meshward.io/identity"].GetStringValue(); got != "bookstore/bookstore-v2" {
			t.Errorf("%v: node identity %q", extra, got)
		}
	}
}

func TestBootstrapUsage(t *testing.T) {
	for name, args := range map[string][]string{
		"no flags":        {"bootstrap"},
		"bad identity":    {"bootstrap", "--identity", "bookstore", "--format", "grpc", "--xds-address", "x:1", "--plaintext"},
		"invalid name":    {"bootstrap", "--identity", "Book_Store/x", "--format", "grpc", "--xds-address", "x:1", "--plaintext"},
		"bad format":      {"bootstrap", "--identity", "a/b", "--format", "istio", "--xds-address", "x:1", "--plaintext"},
		"bad address":     {"bootstrap", "--identity", "a/b", "--format", "grpc", "--xds-address", "x", "--plaintext"},
		"no cert dir":     {"bootstrap", "--identity", "a/b", "--format", "grpc", "--xds-address", "x:1"},
		"foreign node id": {"bootstrap", "--identity", "a/b", "--format", "grpc", "--xds-address", "x:1", "--plaintext", "--node-id", "p~a~c"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, args...)
			if code != cli.ExitUsage {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, cli.ExitUsage, out, errOut)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}
