package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// Timing of the SDS certificates.
const (
	// issueTimeout bounds one round of issuing.
	issueTimeout = 30 * time.Second
	// defaultCertRetryInterval is the wait before issuing again after a
	// failure, unless Options.CertRetryInterval sets another.
	defaultCertRetryInterval = 10 * time.Second
)

// errSecretsUnsafe is returned by New for an Issuer without VerifyPeer.
var errSecretsUnsafe = errors.New("SDS secrets hold private keys: an Issuer needs VerifyPeer, so that a node gets only the key of the identity its certificate proves")

// secrets issues each identity's workload certificate and keeps the SDS
// Secrets of the Envoy flavor: the certificate with its private key
// (named Translate.SDSCertName) and the trust bundle
// (Translate.SDSRootName), each identity's served only to the nodes of
// that identity.
type secrets struct {
	issuer             certs.Issuer
	ttl                time.Duration
	retry              time.Duration
	certName, rootName string

	mu sync.Mutex
	// certs are the certificates of the identities of the last model.
	certs map[mesh.Identity]*identityCert
	// root is the trust bundle's Secret, the same for every identity,
	// made of bundle.
	root   *resource
	bundle []byte
	// wake tells the renewal loop that the identities changed.
	wake chan struct{}
}

// identityCert is an identity's certificate as served.
type identityCert struct {
	// secret is the Secret with the certificate and its key; nil until
	// the first certificate is issued.
	secret *resource
	// renewAt is when to issue again: two thirds of the lifetime, or the
	// retry after a failure.
	renewAt time.Time
}

func newSecrets(opts Options) (*secrets, error) {
	if opts.Issuer == nil {
		return nil, nil
	}
	switch {
	case opts.Translate.Flavor != translate.FlavorEnvoy:
		return nil, fmt.Errorf("an Issuer serves SDS secrets, which only the %q flavor reads (gRPC reads its certificates from files)", translate.FlavorEnvoy)
	case opts.Translate.Plaintext:
		return nil, errors.New("an Issuer serves SDS secrets, which no resource reads with Plaintext")
	case !opts.VerifyPeer:
		return nil, errSecretsUnsafe
	case opts.CertTTL < 0:
		return nil, fmt.Errorf("CertTTL %s is negative", opts.CertTTL)
	case opts.CertRetryInterval < 0:
		return nil, fmt.Errorf("CertRetryInterval %s is negative", opts.CertRetryInterval)
	}
	return &secrets{
		issuer:   opts.Issuer,
		ttl:      opts.CertTTL,
		retry:    cmp.Or(opts.CertRetryInterval, defaultCertRetryInterval),
		certName: cmp.Or(opts.Translate.SDSCertName, translate.DefaultSDSCertName),
		rootName: cmp.Or(opts.Translate.SDSRootName, translate.DefaultSDSRootName),
		certs:    map[mesh.Identity]*identityCert{},
		wake:     make(chan struct{}, 1),
	}, nil
}

// refresh makes the certificates of ids current: it reads the trust
// bundle, issues a certificate for every identity that has none or is due
// for renewal (all at once, on every core), and forgets the identities
// not in ids. It returns each identity's Secrets (no certificate for an
// identity whose first one failed), the failures by identity, and the
// failure to read the trust bundle (the last one read is kept).
func (sc *secrets) refresh(ids []mesh.Identity, now time.Time) (map[mesh.Identity][]*resource, map[mesh.Identity]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), issueTimeout)
	defer cancel()
	bundleErr := sc.refreshRoot(ctx)

	sc.mu.Lock()
	keep := make(map[mesh.Identity]bool, len(ids))
	var due []mesh.Identity
	for _, id := range ids {
		keep[id] = true
		c := sc.certs[id]
		if c == nil {
			c = &identityCert{}
			sc.certs[id] = c
		}
		if !now.Before(c.renewAt) { // a new identity's is zero
			due = append(due, id)
		}
	}
	for id := range sc.certs {
		if !keep[id] {
			delete(sc.certs, id) // its private key goes with it
		}
	}
	sc.mu.Unlock()
	// The renewal loop looks again at what is due next.
	defer func() {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}()

	issued := make([]*identityCert, len(due))
	errs := make([]error, len(due))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(due)) {
		wg.Go(func() {
			for i := range next {
				issued[i], errs[i] = sc.issue(ctx, due[i], now)
			}
		})
	}
	for i := range due {
		next <- i
	}
	close(next)
	wg.Wait()

	sc.mu.Lock()
	defer sc.mu.Unlock()
	failed := map[mesh.Identity]error{}
	for i, id := range due {
		c := sc.certs[id]
		if errs[i] != nil {
			c.renewAt = now.Add(sc.retry)
			failed[id] = errs[i]
		} else {
			*c = *issued[i]
		}
	}
	out := make(map[mesh.Identity][]*resource, len(ids))
	for _, id := range ids {
		var rs []*resource
		if c := sc.certs[id]; c.secret != nil {
			rs = append(rs, c.secret)
		}
		if sc.root != nil {
			rs = append(rs, sc.root)
		}
		out[id] = rs
	}
	return out, failed, bundleErr
}

// refreshRoot reads the trust bundle and makes its Secret.
func (sc *secrets) refreshRoot(ctx context.Context) error {
	bundle, err := sc.issuer.TrustBundle(ctx)
	if err != nil {
		return fmt.Errorf("reading the trust bundle: %w", err)
	}
	sc.mu.Lock()
	same := sc.root != nil && bytes.Equal(sc.bundle, bundle)
	sc.mu.Unlock()
	if same {
		return nil
	}
	root, err := secretResource(&tlsv3.Secret{
		Name: sc.rootName,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(bundle),
		}},
	})
	if err != nil {
		return err
	}
	sc.mu.Lock()
	sc.root, sc.bundle = root, bytes.Clone(bundle)
	sc.mu.Unlock()
	return nil
}

// issue generates a key and has it certified for id.
func (sc *secrets) issue(ctx context.Context, id mesh.Identity, now time.Time) (*identityCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := sc.issuer.Issue(ctx, certs.Request{Identity: id, PublicKey: &key.PublicKey, TTL: sc.ttl})
	if err != nil {
		return nil, fmt.Errorf("issuing the SDS certificate of %s: %w", id, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	secret, err := secretResource(&tlsv3.Secret{
		Name: sc.certName,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(cert.FullChainPEM()),
			PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("the SDS certificate of %s: %w", id, err)
	}
	return &identityCert{secret: secret, renewAt: certs.RenewAt(now, cert.NotAfter)}, nil
}

// nextRenewal returns when the earliest certificate is due, and whether
// there is any.
func (sc *secrets) nextRenewal() (time.Time, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var next time.Time
	found := false
	for _, c := range sc.certs {
		if !found || c.renewAt.Before(next) {
			next, found = c.renewAt, true
		}
	}
	return next, found
}

// identities returns the identities whose certificates are kept.
func (sc *secrets) identities() []mesh.Identity {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := make([]mesh.Identity, 0, len(sc.certs))
	for id := range sc.certs {
		out = append(out, id)
	}
	return out
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// secretResource validates and serializes a Secret. Secrets are not
// shared through the interner: a certificate's Secret belongs to one
// identity.
func secretResource(s *tlsv3.Secret) (*resource, error) {
	var scratch []byte
	return (&interner{next: map[string]*resource{}}).intern(resourcev3.SecretType, s, &scratch)
}

// publishSecrets sets each identity's Secrets, before anything that names
// them. Called with updateMu held.
func (s *Server) publishSecrets(byID map[mesh.Identity][]*resource) {
	for id, rs := range byID {
		if len(rs) > 0 {
			s.state(id).caches[resourcev3.SecretType].update(nil, rs)
		}
	}
}

// reportSecretFailures logs and counts the identities whose certificate
// could not be issued, and returns the error for Update.
func (s *Server) reportSecretFailures(failed map[mesh.Identity]error, bundleErr error) error {
	var errs []error
	if bundleErr != nil {
		s.metrics.updateFailures.WithLabelValues(stageCertificate).Inc()
		s.log.Error(bundleErr, "the trust bundle could not be read; the last one is served")
		errs = append(errs, bundleErr)
	}
	for id, err := range failed {
		s.metrics.updateFailures.WithLabelValues(stageCertificate).Inc()
		s.log.Error(err, "SDS certificate not issued; the last one (if any) is served, and issuing is retried", "identity", id.String(), "retryIn", s.secrets.retry.String())
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// KeepCertificatesFresh renews the SDS certificates of the Envoy flavor
// (Options.Issuer) at two thirds of their lifetime, retries the ones that
// could not be issued, and pushes the new Secrets, until ctx is done.
// Serve runs it; a caller that serves with Register runs it itself. It
// returns at once without an Issuer, or while another call runs.
func (s *Server) KeepCertificatesFresh(ctx context.Context) {
	if s.secrets == nil || !s.renewing.CompareAndSwap(false, true) {
		return
	}
	defer s.renewing.Store(false)
	for {
		wait := time.Hour
		if next, ok := s.secrets.nextRenewal(); ok {
			wait = time.Until(next)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.secrets.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		s.renewCertificates()
	}
}

// renewCertificates issues the certificates that are due and publishes
// them, with the trust bundle.
func (s *Server) renewCertificates() {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	byID, failed, bundleErr := s.secrets.refresh(s.secrets.identities(), time.Now())
	s.publishSecrets(byID)
	_ = s.reportSecretFailures(failed, bundleErr)
}
