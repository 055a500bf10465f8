package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"

	"github.com/meshward/meshward/mesh"
)

// Names of the files WriteIdentityFiles writes in <dir>/<ns>/<sa>/.
const (
	// CertFile holds the leaf certificate followed by any intermediates.
	CertFile = "cert.pem"
	// KeyFile holds the leaf's private key, PEM PKCS#8, mode 0600.
	KeyFile = "key.pem"
	// CAFile holds the trust bundle.
	CAFile = "ca.pem"
)

// DefaultRetryInterval is how long KeepFresh waits after a failed renewal.
const DefaultRetryInterval = 10 * time.Second

// FileOptions configure WriteIdentityFiles and KeepFresh.
type FileOptions struct {
	// TTL is the wanted certificate lifetime; 0 means the issuer's default.
	TTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// After waits on the clock; time.After when nil. Tests pass a fake
	// clock's.
	After func(time.Duration) <-chan time.Time
	// RetryInterval is the wait after a failed renewal.
	RetryInterval time.Duration
	// Log receives renewals (V(1)) and failures; discarded when unset.
	Log logr.Logger
	// OnWrite, when set, is called after each complete write.
	OnWrite func(*Certificate)
}

func (o FileOptions) withDefaults() FileOptions {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	return o
}

// IdentityDir returns <dir>/<ns>/<sa>, where WriteIdentityFiles writes id's
// files.
func IdentityDir(dir string, id mesh.Identity) string {
	return filepath.Join(dir, id.Namespace, id.Name)
}

// WriteIdentityFiles generates a key, has issuer certify it for id, and
// writes cert.pem, key.pem (mode 0600) and ca.pem in IdentityDir(dir, id),
// creating the directories. Each file is replaced atomically (written
// under a temporary name, then renamed); ca.pem is written first so that
// peers trust a new root before certificates signed by it appear.
//
// The three renames are not one atomic step: a reader may see the new key
// with the old certificate for a moment. gRPC's file_watcher skips a pair
// that does not match and reads again at its next refresh.
func WriteIdentityFiles(ctx context.Context, issuer Issuer, dir string, id mesh.Identity, opts FileOptions) (*Certificate, error) {
	opts = opts.withDefaults()
	if err := ValidateIdentity(id); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := issuer.Issue(ctx, Request{Identity: id, PublicKey: &key.PublicKey, TTL: opts.TTL})
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: %w", id, err)
	}
	bundle, err := issuer.TrustBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	keyPEM, err := pemKey(key)
	if err != nil {
		return nil, err
	}
	out := IdentityDir(dir, id)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CAFile, bundle, 0o644},
		{KeyFile, keyPEM, 0o600},
		{CertFile, cert.FullChainPEM(), 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(out, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("writing %s for %s: %w", f.name, id, err)
		}
	}
	if err := syncDir(out); err != nil {
		return nil, err
	}
	if opts.OnWrite != nil {
		opts.OnWrite(cert)
	}
	return cert, nil
}

// KeepFresh writes id's files now, then re-issues them when two thirds of
// each certificate's lifetime (counted from when it was issued) have
// passed, until ctx is done. It returns an error only when the first
// write fails; later failures are logged and retried every
// opts.RetryInterval. It returns nil when ctx is done.
func KeepFresh(ctx context.Context, issuer Issuer, dir string, id mesh.Identity, opts FileOptions) error {
	opts = opts.withDefaults()
	log := opts.Log.WithValues("identity", id.String())
	issuedAt := opts.Now()
	cert, err := WriteIdentityFiles(ctx, issuer, dir, id, opts)
	if err != nil {
		return err
	}
	next := renewAt(issuedAt, cert.NotAfter)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-opts.After(next.Sub(opts.Now())):
		}
		issuedAt = opts.Now()
		fresh, err := WriteIdentityFiles(ctx, issuer, dir, id, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			next = issuedAt.Add(opts.RetryInterval)
			log.Error(err, "renewing the workload certificate failed; retrying",
				"retryAt", next, "expiresAt", cert.NotAfter)
			continue
		}
		cert = fresh
		next = renewAt(issuedAt, cert.NotAfter)
		log.V(1).Info("renewed the workload certificate", "serial", cert.Serial,
			"notAfter", cert.NotAfter, "renewAt", next)
	}
}

// RenewAt returns when a certificate issued at issuedAt and valid until
// notAfter is to be renewed: two thirds of the way, and at least a second
// after issuedAt. KeepFresh and the xDS server's SDS certificates follow
// it.
func RenewAt(issuedAt, notAfter time.Time) time.Time { return renewAt(issuedAt, notAfter) }

// renewAt is two thirds of the way from issuedAt to notAfter, and at
// least a second after issuedAt, so that a lifetime shorter than the
// certificate's one-second resolution cannot make a busy loop. Counting
// from the issue time rather than NotBefore keeps the CA's backdating from
// shortening the wait.
func renewAt(issuedAt, notAfter time.Time) time.Time {
	return issuedAt.Add(max(notAfter.Sub(issuedAt)*2/3, time.Second))
}
