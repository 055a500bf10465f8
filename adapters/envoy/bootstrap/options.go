package bootstrap

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// Names of the files a workload's certificate directory holds, as the
// certificate writer lays them out under <cert-dir>/<ns>/<sa>/.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
	CAFile   = "ca.pem"
)

// Defaults of the Options fields.
const (
	DefaultRefreshInterval = time.Minute
	DefaultAdminAddress    = "127.0.0.1:15000"
	// XDSClusterName is the Envoy bootstrap's static cluster of the xDS
	// server.
	XDSClusterName = "meshward-xds"
)

// ErrInvalidOptions is returned, wrapped with details, for options that
// cannot give a working bootstrap.
var ErrInvalidOptions = errors.New("invalid bootstrap options")

// Options describe the workload and where its xDS server is.
type Options struct {
	// Identity is the workload's ServiceAccount; required.
	Identity mesh.Identity
	// XDSAddress is the xDS server's host:port; required.
	XDSAddress string
	// NodeID is the node id; default NodeID(<flavor>, Identity). An id of
	// the form <anything>~<ns>~<sa> must name Identity.
	NodeID string
	// CertDir is the directory of workload certificates, laid out as
	// <CertDir>/<ns>/<sa>/{cert.pem,key.pem,ca.pem}. gRPC: the files of
	// the certificate provider instance that mesh mTLS uses. Both: the
	// client certificate and roots of the xDS channel unless Plaintext.
	// Empty is allowed only with Plaintext, and then a gRPC bootstrap
	// has no certificate provider (only a plaintext mesh works).
	CertDir string
	// Plaintext connects to the xDS server without TLS. Unsafe outside
	// tests and a trusted network: the node's identity is not proven.
	Plaintext bool
	// XDSCAFile holds the roots that verify the xDS server's certificate;
	// default the workload's ca.pem. The server's certificate must carry
	// the host of XDSAddress as a DNS or IP SAN.
	XDSCAFile string
	// CertProviderInstance names the gRPC certificate provider instance;
	// default translate.DefaultCertProviderInstance. It must equal the
	// xDS server's translate.Options.CertProviderInstance.
	CertProviderInstance string
	// RefreshInterval is how often gRPC's file_watcher re-reads the
	// certificate files; default one minute.
	RefreshInterval time.Duration
	// AdminAddress is Envoy's admin listener; default 127.0.0.1:15000.
	// Keep it on loopback.
	AdminAddress string
	// Delta makes Envoy use incremental (delta) xDS over ADS.
	Delta bool
}

// withDefaults fills in the defaults for flavor and checks the options.
func (o Options) withDefaults(flavor translate.Flavor) (Options, error) {
	if err := ValidateIdentity(o.Identity); err != nil {
		return o, fmt.Errorf("%w: identity: %w", ErrInvalidOptions, err)
	}
	if _, _, err := translate.SplitHostPort(o.XDSAddress); err != nil {
		return o, fmt.Errorf("%w: xDS address: %w", ErrInvalidOptions, err)
	}
	if o.NodeID == "" {
		o.NodeID = NodeID(string(flavor), o.Identity)
	}
	if strings.Count(o.NodeID, nodeIDSeparator) >= 2 {
		if id, err := identityFromNodeID(o.NodeID); err != nil || id != o.Identity {
			return o, fmt.Errorf("%w: node id %q must name the identity %s as <anything>~%s~%s", ErrInvalidOptions, o.NodeID, o.Identity, o.Identity.Namespace, o.Identity.Name)
		}
	}
	if o.CertDir == "" && !o.Plaintext {
		return o, fmt.Errorf("%w: a certificate directory is required unless the xDS channel is plaintext", ErrInvalidOptions)
	}
	if o.XDSCAFile == "" && o.CertDir != "" {
		o.XDSCAFile = o.file(CAFile)
	}
	if o.CertProviderInstance == "" {
		o.CertProviderInstance = translate.DefaultCertProviderInstance
	}
	if o.RefreshInterval < 0 {
		return o, fmt.Errorf("%w: negative refresh interval", ErrInvalidOptions)
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.AdminAddress == "" {
		o.AdminAddress = DefaultAdminAddress
	}
	if _, _, err := translate.SplitHostPort(o.AdminAddress); err != nil {
		return o, fmt.Errorf("%w: admin address: %w", ErrInvalidOptions, err)
	}
	return o, nil
}

// file returns the path of one of the identity's certificate files.
func (o Options) file(name string) string {
	return filepath.Join(o.CertDir, o.Identity.Namespace, o.Identity.Name, name)
}
