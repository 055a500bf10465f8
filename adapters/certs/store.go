package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names of the files and Secret keys that hold a CA root.
const (
	// FileCACert holds the signing root, PEM, possibly followed by other
	// trusted roots.
	FileCACert = "ca.crt"
	// FileCAKey holds the root's private key, PEM PKCS#8, mode 0600.
	FileCAKey = "ca.key"
	// SecretCAKey is the Secret key of the trust bundle; the signing root
	// and its key are under tls.crt and tls.key.
	SecretCAKey = "ca.crt"
)

// LoadOrCreateFileCA loads the CA root kept in dir (ca.crt and ca.key),
// creating dir and a new root when neither file exists. It never replaces
// a stored root: a corrupt, mismatched or expired one, or only one of the
// two files, is an error naming the files. Processes creating the root at
// the same time agree on one.
func LoadOrCreateFileCA(dir string, opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the CA directory: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, FileCACert), filepath.Join(dir, FileCAKey)
	for range 30 {
		certPEM, certErr := os.ReadFile(certPath)
		keyPEM, keyErr := os.ReadFile(keyPath)
		certMissing, keyMissing := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
		switch {
		case certErr != nil && !certMissing:
			return nil, fmt.Errorf("reading the CA root: %w", certErr)
		case keyErr != nil && !keyMissing:
			return nil, fmt.Errorf("reading the CA key: %w", keyErr)
		case !certMissing && !keyMissing:
			return loadCA(certPEM, keyPEM, nil, opts, fmt.Sprintf("files %s and %s", certPath, keyPath))
		case certMissing && keyMissing:
			if err := createFileRoot(dir, certPath, keyPath, opts); err != nil {
				return nil, err
			}
			// Load what is there now: ours, or a concurrent creator's.
		default:
			// One file only: another process may be between its two
			// links. Give it a moment before calling the root incomplete.
			time.Sleep(50 * time.Millisecond)
		}
	}
	present, missing := certPath, keyPath
	if _, err := os.Stat(certPath); err != nil {
		present, missing = keyPath, certPath
	}
	return nil, fmt.Errorf("%w in %s: %s exists but %s does not; restore the missing file, or remove both to create a new root (every workload then needs new certificates)",
		ErrInvalidRoot, dir, present, missing)
}

// createFileRoot writes a new root under temporary names and hard-links
// them into place, key first. A link fails when its target exists, so of
// several concurrent creators one wins and the others find its files. It
// returns nil when another process won.
func createFileRoot(dir, certPath, keyPath string, opts Options) error {
	certPEM, keyPEM, err := newRoot(opts)
	if err != nil {
		return err
	}
	tmpKey, err := writeTemp(dir, "."+FileCAKey+"-*", keyPEM, 0o600)
	if err != nil {
		return fmt.Errorf("writing the CA key: %w", err)
	}
	defer os.Remove(tmpKey)
	tmpCert, err := writeTemp(dir, "."+FileCACert+"-*", certPEM, 0o644)
	if err != nil {
		return fmt.Errorf("writing the CA root: %w", err)
	}
	defer os.Remove(tmpCert)
	if err := os.Link(tmpKey, keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("storing the CA key: %w", err)
	}
	if err := os.Link(tmpCert, certPath); err != nil {
		return fmt.Errorf("storing the CA root next to the new key %s: %w", keyPath, err)
	}
	return syncDir(dir)
}

// LoadOrCreateSecretCA loads the CA root kept in a kubernetes.io/tls
// Secret (tls.crt: the signing root; tls.key: its key; ca.crt: the trust
// bundle, which must contain tls.crt), creating the Secret with a new root
// when it does not exist. When another replica creates it first, that
// root is used. It never replaces a stored root: a Secret of another type,
// with missing keys, or with a corrupt, mismatched or expired root is an
// error naming the Secret.
//
// c should read from the API server directly (client.New, or a manager's
// API reader combined with its client), not from a cache, which would
// watch every Secret in the cluster. It needs get and create on Secrets in
// namespace.
func LoadOrCreateSecretCA(ctx context.Context, c client.Client, namespace, name string, opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("Secret %s/%s", namespace, name)
	key := client.ObjectKey{Namespace: namespace, Name: name}
	var secret corev1.Secret
	err = c.Get(ctx, key, &secret)
	switch {
	case apierrors.IsNotFound(err):
		certPEM, keyPEM, err := newRoot(opts)
		if err != nil {
			return nil, err
		}
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: namespace,
				Name:      name,
				Labels: map[string]string{
					"app.kubernetes.io/managed-by": "meshward",
					"app.kubernetes.io/component":  "ca",
				},
			},
			Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{
				corev1.TLSCertKey:       certPEM,
				corev1.TLSPrivateKeyKey: keyPEM,
				SecretCAKey:             certPEM,
			},
		}
		err = c.Create(ctx, &secret)
		if apierrors.IsAlreadyExists(err) {
			secret = corev1.Secret{}
			err = c.Get(ctx, key, &secret)
		}
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", where, err)
		}
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", where, err)
	}
	return secretCA(&secret, opts, where)
}

func secretCA(s *corev1.Secret, opts Options, where string) (*CA, error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, fmt.Errorf("%w in %s: its type is %q, want %q", ErrInvalidRoot, where, s.Type, corev1.SecretTypeTLS)
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if len(s.Data[k]) == 0 {
			return nil, fmt.Errorf("%w in %s: key %s is missing or empty", ErrInvalidRoot, where, k)
		}
	}
	var bundle []byte
	if b := s.Data[SecretCAKey]; len(b) > 0 {
		bundle = b
	}
	return loadCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], bundle, opts, where)
}

// writeTemp writes data to a new file in dir named by pattern (as
// os.CreateTemp), with mode perm, flushed to disk, and returns its path.
func writeTemp(dir, pattern string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// writeFileAtomic replaces path with data: readers see the old file or the
// new one, never a part.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*", data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// syncDir flushes a directory's entries, so renames and links survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
