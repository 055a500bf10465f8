package bootstrap

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/meshward/meshward/adapters/envoy/translate"
)

// ServerFeatures are the xds_servers features of a gRPC bootstrap: xDS v3
// only. ignore_resource_deletion is deliberately absent: a listener or
// cluster the server withdraws must stop working (fail closed).
var ServerFeatures = []string{"xds_v3"}

// FileWatcherPlugin is gRPC's certificate provider plugin that reads PEM
// files and re-reads them periodically.
const FileWatcherPlugin = "file_watcher"

// grpcBootstrap is the gRPC-Go xDS bootstrap document (gRFC A27 and its
// successors), limited to what meshward sets.
type grpcBootstrap struct {
	XDSServers                         []grpcXDSServer             `json:"xds_servers"`
	Node                               grpcNode                    `json:"node"`
	CertificateProviders               map[string]grpcCertProvider `json:"certificate_providers,omitempty"`
	ServerListenerResourceNameTemplate string                      `json:"server_listener_resource_name_template"`
}

type grpcXDSServer struct {
	ServerURI      string             `json:"server_uri"`
	ChannelCreds   []grpcChannelCreds `json:"channel_creds"`
	ServerFeatures []string           `json:"server_features"`
}

type grpcChannelCreds struct {
	Type   string           `json:"type"`
	Config *grpcFileWatcher `json:"config,omitempty"`
}

type grpcNode struct {
	ID       string         `json:"id"`
	Cluster  string         `json:"cluster,omitempty"`
	Metadata map[string]any `json:"metadata"`
}

type grpcCertProvider struct {
	PluginName string          `json:"plugin_name"`
	Config     grpcFileWatcher `json:"config"`
}

// grpcFileWatcher is the file_watcher plugin's configuration; the "tls"
// channel credentials take the same fields.
type grpcFileWatcher struct {
	CertificateFile   string `json:"certificate_file,omitempty"`
	PrivateKeyFile    string `json:"private_key_file,omitempty"`
	CACertificateFile string `json:"ca_certificate_file,omitempty"`
	RefreshInterval   string `json:"refresh_interval,omitempty"`
}

// GRPC returns the gRPC-Go xDS bootstrap JSON of a proxyless gRPC workload:
//
//   - xds_servers: XDSAddress, over "tls" channel credentials (the
//     workload's certificate and key, and XDSCAFile as roots) or
//     "insecure" with Plaintext; server_features ["xds_v3"];
//   - node: the id, cluster <sa>.<ns>, and the identity in the metadata;
//   - certificate_providers (with CertDir): a file_watcher instance named
//     CertProviderInstance reading <CertDir>/<ns>/<sa>/{cert,key,ca}.pem,
//     which the xDS resources' transport sockets refer to for mesh mTLS;
//   - server_listener_resource_name_template:
//     translate.ServerListenerNameTemplate, so that xDS-enabled servers ask
//     for the listeners meshward serves them.
//
// Set GRPC_XDS_BOOTSTRAP to the file holding it (or
// GRPC_XDS_BOOTSTRAP_CONFIG to the JSON itself).
func GRPC(opts Options) ([]byte, error) {
	o, err := opts.withDefaults(translate.FlavorGRPC)
	if err != nil {
		return nil, err
	}
	creds := grpcChannelCreds{Type: "insecure"}
	if !o.Plaintext {
		creds = grpcChannelCreds{Type: "tls", Config: &grpcFileWatcher{
			CertificateFile:   o.file(CertFile),
			PrivateKeyFile:    o.file(KeyFile),
			CACertificateFile: o.XDSCAFile,
			RefreshInterval:   protoDuration(o.RefreshInterval),
		}}
	}
	b := grpcBootstrap{
		XDSServers: []grpcXDSServer{{
			ServerURI:      o.XDSAddress,
			ChannelCreds:   []grpcChannelCreds{creds},
			ServerFeatures: ServerFeatures,
		}},
		Node: grpcNode{
			ID:       o.NodeID,
			Cluster:  o.Identity.Name + "." + o.Identity.Namespace,
			Metadata: NodeMetadata(o.Identity),
		},
		ServerListenerResourceNameTemplate: translate.ServerListenerNameTemplate,
	}
	if o.CertDir != "" {
		b.CertificateProviders = map[string]grpcCertProvider{
			o.CertProviderInstance: {PluginName: FileWatcherPlugin, Config: grpcFileWatcher{
				CertificateFile:   o.file(CertFile),
				PrivateKeyFile:    o.file(KeyFile),
				CACertificateFile: o.file(CAFile),
				RefreshInterval:   protoDuration(o.RefreshInterval),
			}},
		}
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// protoDuration writes a duration as the JSON form of a protobuf Duration
// ("60s", "0.5s"), which is what gRPC's bootstrap parser reads.
func protoDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
