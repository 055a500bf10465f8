package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshward/meshward/mesh"
)

// Issuer issues workload certificates for identities.
type Issuer interface {
	// Issue signs a certificate for the identity with the given public key
	// (from a CSR or a generated key).
	Issue(ctx context.Context, req Request) (*Certificate, error)
	// TrustBundle returns the PEM roots clients and servers must trust.
	TrustBundle(ctx context.Context) ([]byte, error)
}

// Request asks for a certificate.
type Request struct {
	// Identity is who the certificate is for. The caller has established
	// it (from a token, or because it runs the workload); the issuer only
	// checks that it is well formed.
	Identity mesh.Identity
	// PublicKey is the key to certify: an ECDSA P-256 public key.
	PublicKey crypto.PublicKey
	// TTL is the wanted lifetime; 0 means the issuer's default.
	TTL time.Duration
}

// Certificate is an issued certificate.
type Certificate struct {
	// CertPEM is the leaf certificate.
	CertPEM []byte
	// ChainPEM holds the intermediate certificates between the leaf and a
	// root of the trust bundle, leaf excluded; it is empty when a root
	// signed the leaf, as the built-in CA does.
	ChainPEM []byte
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore, NotAfter time.Time
	// Serial is the serial number in lower-case hexadecimal.
	Serial string
}

// FullChainPEM returns the leaf followed by its intermediates: what a TLS
// peer presents.
func (c *Certificate) FullChainPEM() []byte {
	out := make([]byte, 0, len(c.CertPEM)+len(c.ChainPEM))
	out = append(out, c.CertPEM...)
	return append(out, c.ChainPEM...)
}

// Errors returned by issuers and by the CA loaders. Test with errors.Is.
var (
	// ErrInvalidIdentity: the identity is not a valid ServiceAccount name.
	ErrInvalidIdentity = errors.New("invalid identity")
	// ErrUnsupportedKey: the public key is not ECDSA P-256.
	ErrUnsupportedKey = errors.New("unsupported public key: want ECDSA P-256")
	// ErrInvalidTTL: the requested lifetime is negative.
	ErrInvalidTTL = errors.New("invalid TTL")
	// ErrInvalidRoot: a stored root certificate or key is corrupt,
	// mismatched, not a CA, or outside its validity.
	ErrInvalidRoot = errors.New("invalid CA root")
	// ErrRootExpired: the CA root has expired; nothing can be issued.
	ErrRootExpired = errors.New("CA root expired")
)

// Defaults of Options.
const (
	DefaultTrustDomain  = "cluster.local"
	DefaultRootValidity = 10 * 365 * 24 * time.Hour
	DefaultTTL          = 24 * time.Hour
	DefaultBackdate     = time.Minute
)

// Options configure the built-in CA. The zero value is usable: trust
// domain cluster.local, SPIFFE principals, a 10-year root, 24-hour leaves.
type Options struct {
	// TrustDomain is the SPIFFE trust domain (mesh.Options.TrustDomain).
	TrustDomain string
	// PrincipalFormat is the mesh's principal format
	// (mesh.Options.PrincipalFormat). With mesh.PrincipalDNS, leaves carry
	// only the DNS SAN <sa>.<ns>.<trust-domain>; otherwise only the SPIFFE
	// URI SAN.
	PrincipalFormat mesh.PrincipalFormat
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// RootValidity is the lifetime of a newly created root.
	RootValidity time.Duration
	// TTL is the default leaf lifetime.
	TTL time.Duration
	// Backdate moves NotBefore into the past to absorb clock skew between
	// the CA and its peers.
	Backdate time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if err := mesh.ValidateTrustDomain(o.TrustDomain); err != nil {
		return o, err
	}
	switch o.PrincipalFormat {
	case "":
		o.PrincipalFormat = mesh.PrincipalSPIFFE
	case mesh.PrincipalSPIFFE, mesh.PrincipalDNS:
	default:
		return o, fmt.Errorf("principal format %q is invalid: want %q or %q", o.PrincipalFormat, mesh.PrincipalSPIFFE, mesh.PrincipalDNS)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RootValidity < 0 || o.TTL < 0 || o.Backdate < 0 {
		return o, errors.New("root validity, TTL and backdate must not be negative")
	}
	if o.RootValidity == 0 {
		o.RootValidity = DefaultRootValidity
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Backdate == 0 {
		o.Backdate = DefaultBackdate
	}
	return o, nil
}

// ValidateIdentity checks that id names a possible ServiceAccount: the
// namespace a DNS-1123 label, the name a DNS-1123 subdomain. Such names
// are safe as SPIFFE path segments and as directory names.
func ValidateIdentity(id mesh.Identity) error {
	if errs := validation.IsDNS1123Label(id.Namespace); len(errs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrInvalidIdentity, id.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(id.Name); len(errs) > 0 {
		return fmt.Errorf("%w: ServiceAccount name %q: %s", ErrInvalidIdentity, id.Name, strings.Join(errs, "; "))
	}
	return nil
}

// checkLeafKey accepts ECDSA P-256 public keys only.
func checkLeafKey(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil {
		return fmt.Errorf("%w: got %T", ErrUnsupportedKey, pub)
	}
	if k.Curve == nil {
		return fmt.Errorf("%w: key without a curve", ErrUnsupportedKey)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("%w: got curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	}
	return nil
}
