package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/meshward/meshward/mesh"
)

// CA is the built-in Issuer: a root certificate and key that sign leaf
// certificates directly. It is safe for concurrent use.
type CA struct {
	opts   Options
	root   *x509.Certificate
	key    crypto.Signer
	bundle []byte
}

var _ Issuer = (*CA)(nil)

// NewCA returns a CA with a new root that lives in memory only. Use
// LoadOrCreateFileCA or LoadOrCreateSecretCA to keep the root.
func NewCA(opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := newRoot(opts)
	if err != nil {
		return nil, err
	}
	return loadCA(certPEM, keyPEM, nil, opts, "a new root")
}

// Root returns the signing root certificate. Do not modify it.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// TrustBundle returns the PEM roots peers must trust: the signing root,
// and any other roots stored with it (for example the previous root while
// workloads move to a new one).
func (ca *CA) TrustBundle(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return bytes.Clone(ca.bundle), nil
}

// Issue signs a leaf certificate for req.Identity. Its only URI SAN is the
// identity's SPIFFE ID; with DNS principals it also carries the DNS SAN
// <sa>.<ns>.<trust-domain>. Its subject common name is the principal in
// the mesh's format when that fits the 64-character limit, and is left out
// otherwise. The certificate ends no later than the root.
func (ca *CA) Issue(ctx context.Context, req Request) (*Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidateIdentity(req.Identity); err != nil {
		return nil, err
	}
	if err := checkLeafKey(req.PublicKey); err != nil {
		return nil, err
	}
	td := ca.opts.TrustDomain
	spiffeID, err := url.Parse(req.Identity.Principal(mesh.PrincipalSPIFFE, td))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	tmpl := &x509.Certificate{
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	// One principal format per mesh: a certificate carries exactly the
	// principal peers match. With both SANs, peers that read the URI SAN
	// first (proxyless gRPC servers, Envoy's ext_authz) would never see the
	// DNS form.
	if ca.opts.PrincipalFormat == mesh.PrincipalDNS {
		tmpl.DNSNames = []string{req.Identity.Principal(mesh.PrincipalDNS, td)}
	} else {
		tmpl.URIs = []*url.URL{spiffeID}
	}
	// An empty subject makes Go mark the SAN extension critical, as RFC
	// 5280 requires.
	if cn := req.Identity.Principal(ca.opts.PrincipalFormat, td); len(cn) <= 64 {
		tmpl.Subject = pkix.Name{CommonName: cn}
	}
	return ca.sign(tmpl, req.PublicKey, req.TTL, "certificate for "+req.Identity.String())
}

// newRoot creates a self-signed ECDSA P-256 root, PEM-encoded, the key as
// PKCS#8.
func newRoot(opts Options) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         "meshward root CA",
			Organization:       []string{"meshward"},
			OrganizationalUnit: []string{opts.TrustDomain},
		},
		NotBefore:             now.Add(-opts.Backdate),
		NotAfter:              now.Add(opts.RootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the CA root: %w", err)
	}
	keyPEM, err = pemKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

// loadCA checks a stored root and builds a CA from it. certPEM holds the
// signing root first, possibly followed by further trusted roots;
// bundlePEM, when not nil, is the trust bundle and must contain the
// signing root. where names the storage in errors.
func loadCA(certPEM, keyPEM, bundlePEM []byte, opts Options, where string) (*CA, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w in %s: %s", ErrInvalidRoot, where, fmt.Sprintf(format, args...))
	}
	stored, err := parseCerts(certPEM)
	if err != nil {
		return nil, bad("certificate: %v", err)
	}
	root := stored[0]
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, bad("key: %v", err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(root.PublicKey) {
		return nil, bad("the key does not belong to the certificate")
	}
	if !root.BasicConstraintsValid || !root.IsCA {
		return nil, bad("the certificate is not a CA certificate")
	}
	if root.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, bad("the certificate lacks the keyCertSign key usage")
	}
	now := opts.Now()
	if !now.Before(root.NotAfter) {
		return nil, fmt.Errorf("%w in %s: %w at %s", ErrInvalidRoot, where, ErrRootExpired, root.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(root.NotBefore) {
		return nil, bad("the certificate is not valid before %s (is the clock right?)", root.NotBefore.UTC().Format(time.RFC3339))
	}
	trusted := stored
	if bundlePEM != nil {
		if trusted, err = parseCerts(bundlePEM); err != nil {
			return nil, bad("trust bundle: %v", err)
		}
		found := false
		for _, c := range trusted {
			found = found || c.Equal(root)
		}
		if !found {
			return nil, bad("the trust bundle does not contain the signing certificate")
		}
	}
	var bundle []byte
	for _, c := range trusted {
		bundle = append(bundle, pemCert(c.Raw)...)
	}
	return &CA{opts: opts, root: root, key: key, bundle: bundle}, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCerts reads one or more PEM certificates and nothing else.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("data that is not PEM")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// parseKey reads one PEM private key: PKCS#8, or SEC 1 / PKCS#1 for roots
// made by other tools.
func parseKey(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("data after the private key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}
