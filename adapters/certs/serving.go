package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrInvalidHost is returned, wrapped, when a serving certificate is asked
// for a name that is neither a DNS name nor an IP address, or for no name
// at all.
var ErrInvalidHost = errors.New("invalid host for a serving certificate")

// ServingRequest asks the CA for the TLS serving certificate of one of
// meshward's own endpoints (the xDS server, the signing endpoint).
type ServingRequest struct {
	// Hosts are the DNS names and IP addresses clients reach the endpoint
	// by; at least one.
	Hosts []string
	// PublicKey is the key to certify: an ECDSA P-256 public key.
	PublicKey crypto.PublicKey
	// TTL is the wanted lifetime; 0 means the CA's default.
	TTL time.Duration
}

// IssueServing signs a serving certificate for req.Hosts: each DNS name
// becomes a DNS SAN and each IP address an IP SAN. It names no workload:
// no URI SAN, and the extended key usage is server authentication only,
// so a mesh peer that requires client certificates refuses it. Clients
// verify it with the CA's trust bundle, the roots workloads already
// trust. Its subject common name is the first host. It ends no later
// than the root.
func (ca *CA) IssueServing(ctx context.Context, req ServingRequest) (*Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dns, ips, err := splitHosts(req.Hosts)
	if err != nil {
		return nil, err
	}
	if err := checkLeafKey(req.PublicKey); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	if cn := req.Hosts[0]; len(cn) <= 64 {
		tmpl.Subject = pkix.Name{CommonName: cn}
	}
	return ca.sign(tmpl, req.PublicKey, req.TTL, "serving certificate for "+strings.Join(req.Hosts, ", "))
}

// ValidateHosts checks that hosts are DNS names or IP addresses, at least
// one, as IssueServing requires; errors wrap ErrInvalidHost.
func ValidateHosts(hosts []string) error {
	_, _, err := splitHosts(hosts)
	return err
}

// splitHosts sorts hosts into DNS names and IP addresses, and rejects
// anything else.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("%w: no DNS name or IP address", ErrInvalidHost)
	}
	var (
		dns []string
		ips []net.IP
	)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if errs := validation.IsDNS1123Subdomain(h); len(errs) > 0 {
			return nil, nil, fmt.Errorf("%w: %q is neither an IP address nor a DNS name: %s", ErrInvalidHost, h, strings.Join(errs, "; "))
		}
		dns = append(dns, h)
	}
	return dns, ips, nil
}

// sign completes tmpl (serial, validity) and signs it with the root.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration, what string) (*Certificate, error) {
	if ttl < 0 {
		return nil, fmt.Errorf("%w: %s is negative", ErrInvalidTTL, ttl)
	}
	if ttl == 0 {
		ttl = ca.opts.TTL
	}
	now := ca.opts.Now()
	if !now.Before(ca.root.NotAfter) {
		return nil, fmt.Errorf("%w at %s", ErrRootExpired, ca.root.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.root.NotAfter) {
		notAfter = ca.root.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-ca.opts.Backdate)
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing a %s: %w", what, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the %s: %w", what, err)
	}
	return &Certificate{
		CertPEM:   pemCert(der),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Serial:    leaf.SerialNumber.Text(16),
	}, nil
}

// ServingOptions configure a ServingCertificate.
type ServingOptions struct {
	// Hosts are the DNS names and IP addresses of the endpoint; at least
	// one.
	Hosts []string
	// TTL is the certificate lifetime; 0 means the CA's default.
	TTL time.Duration
	// RetryInterval is the wait after a failed renewal; default
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Log receives renewals (V(1)) and failures; discarded when unset.
	Log logr.Logger
}

// ServingCertificate is the serving certificate of a TLS server of
// meshward's, kept fresh: NewServingCertificate issues the first one, and
// the first handshake after two thirds of its lifetime issues the next
// (with a new key). When renewal fails the current certificate keeps
// serving, and renewal is tried again after RetryInterval. It is safe for
// concurrent use.
type ServingCertificate struct {
	ca    *CA
	opts  ServingOptions
	mu    sync.Mutex
	cur   *tls.Certificate
	renew time.Time
}

// NewServingCertificate issues a serving certificate for opts.Hosts and
// returns the keeper; it fails when the hosts are invalid or the CA
// cannot issue.
func NewServingCertificate(ctx context.Context, ca *CA, opts ServingOptions) (*ServingCertificate, error) {
	opts.Hosts = slices.Clone(opts.Hosts)
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	s := &ServingCertificate{ca: ca, opts: opts}
	if err := s.issue(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// issue replaces the current certificate; s.mu is held or s is not shared
// yet.
func (s *ServingCertificate) issue(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	issuedAt := s.ca.opts.Now()
	cert, err := s.ca.IssueServing(ctx, ServingRequest{Hosts: s.opts.Hosts, PublicKey: &key.PublicKey, TTL: s.opts.TTL})
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(cert.CertPEM, mustPEMKey(key))
	if err != nil {
		return err
	}
	s.cur = &pair
	s.renew = renewAt(issuedAt, cert.NotAfter)
	return nil
}

// mustPEMKey encodes a key that PKCS#8 can always encode.
func mustPEMKey(key *ecdsa.PrivateKey) []byte {
	b, err := pemKey(key)
	if err != nil {
		panic(err)
	}
	return b
}

// Certificate returns the certificate to serve, renewing it first when
// it is due.
func (s *ServingCertificate) Certificate(ctx context.Context) *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ca.opts.Now()
	if now.Before(s.renew) {
		return s.cur
	}
	if err := s.issue(ctx); err != nil {
		s.renew = now.Add(s.opts.RetryInterval)
		s.opts.Log.Error(err, "renewing the serving certificate failed; serving the current one",
			"hosts", s.opts.Hosts, "expiresAt", s.cur.Leaf.NotAfter, "retryAt", s.renew)
		return s.cur
	}
	s.opts.Log.V(1).Info("renewed the serving certificate", "hosts", s.opts.Hosts,
		"notAfter", s.cur.Leaf.NotAfter, "renewAt", s.renew)
	return s.cur
}

// GetCertificate is tls.Config's GetCertificate.
func (s *ServingCertificate) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := context.Background()
	if hello != nil && hello.Context() != nil {
		ctx = hello.Context()
	}
	return s.Certificate(ctx), nil
}

// TLSConfig returns a server configuration that serves the certificate,
// TLS 1.2 or later.
func (s *ServingCertificate) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: s.GetCertificate, MinVersion: tls.VersionTLS12}
}
