package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

// t0 is a whole second, so certificate times (second resolution) equal
// clock times.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t testing.TB, opts certs.Options) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func parseCert(t testing.TB, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", pemBytes)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(t testing.TB, bundle []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(bundle) {
		t.Fatalf("no certificate in the trust bundle %q", bundle)
	}
	return p
}

func issue(t testing.TB, ca certs.Issuer, id mesh.Identity, ttl time.Duration) (*certs.Certificate, *x509.Certificate) {
	t.Helper()
	c, err := ca.Issue(context.Background(), certs.Request{Identity: id, PublicKey: &newKey(t).PublicKey, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return c, parseCert(t, c.CertPEM)
}

func bundleOf(t testing.TB, ca certs.Issuer) []byte {
	t.Helper()
	b, err := ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssueSANs(t *testing.T) {
	// Names with dots are the reason never to split a principal on '.'.
	id := mesh.Identity{Namespace: "shop", Name: "web.v2"}
	for name, tc := range map[string]struct {
		opts    certs.Options
		wantURI []string
		wantDNS []string
		wantCN  string
	}{
		"spiffe default": {
			opts:    certs.Options{},
			wantURI: []string{"spiffe://cluster.local/ns/shop/sa/web.v2"},
			wantCN:  "spiffe://cluster.local/ns/shop/sa/web.v2",
		},
		"dns": {
			opts:    certs.Options{TrustDomain: "example.org", PrincipalFormat: mesh.PrincipalDNS},
			wantDNS: []string{"web.v2.shop.example.org"},
			wantCN:  "web.v2.shop.example.org",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, leaf := issue(t, newCA(t, tc.opts), id, 0)
			var uris []string
			for _, u := range leaf.URIs {
				uris = append(uris, u.String())
			}
			if !slices.Equal(uris, tc.wantURI) {
				t.Errorf("URI SANs %q, want exactly %q", uris, tc.wantURI)
			}
			if !slices.Equal(leaf.DNSNames, tc.wantDNS) {
				t.Errorf("DNS SANs %q, want %q", leaf.DNSNames, tc.wantDNS)
			}
			if len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 {
				t.Errorf("unexpected SANs: IPs %v, emails %v", leaf.IPAddresses, leaf.EmailAddresses)
			}
			if leaf.Subject.CommonName != tc.wantCN {
				t.Errorf("CN %q, want %q", leaf.Subject.CommonName, tc.wantCN)
			}
			if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v, key usage %v", leaf.IsCA, leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
			}
			if leaf.PublicKeyAlgorithm != x509.ECDSA {
				t.Errorf("public key algorithm %v", leaf.PublicKeyAlgorithm)
			}
		})
	}
}

func TestLongPrincipalLeavesCNOut(t *testing.T) {
	id := mesh.Identity{Namespace: "shop", Name: strings.Repeat("a", 60)}
	_, leaf := issue(t, newCA(t, certs.Options{}), id, 0)
	if leaf.Subject.CommonName != "" {
		t.Errorf("CN %q longer than 64 characters", leaf.Subject.CommonName)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].Path != "/ns/shop/sa/"+id.Name {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
}

func TestRoot(t *testing.T) {
	ca := newCA(t, certs.Options{Now: fixedClock(t0)})
	root := ca.Root()
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root IsCA %v, key usage %v", root.IsCA, root.KeyUsage)
	}
	if root.PublicKeyAlgorithm != x509.ECDSA || root.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("root key %v", root.PublicKeyAlgorithm)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if got := root.NotAfter.Sub(t0); got != certs.DefaultRootValidity {
		t.Errorf("root validity %s, want %s", got, certs.DefaultRootValidity)
	}
	if got := parseCert(t, bundleOf(t, ca)); !got.Equal(root) {
		t.Error("the trust bundle is not the root")
	}
}

func TestChainVerifies(t *testing.T) {
	ca := newCA(t, certs.Options{Now: fixedClock(t0)})
	_, leaf := issue(t, ca, mesh.Identity{Namespace: "shop", Name: "web"}, 0)
	roots := pool(t, bundleOf(t, ca))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify with usage %v: %v", usage, err)
		}
	}
	other := newCA(t, certs.Options{Now: fixedClock(t0)})
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, bundleOf(t, other)), CurrentTime: t0}); err == nil {
		t.Error("a leaf verified against another CA's root")
	}
}

func TestExpiry(t *testing.T) {
	now := t0
	ca := newCA(t, certs.Options{Now: func() time.Time { return now }, Backdate: 30 * time.Second})
	c, leaf := issue(t, ca, mesh.Identity{Namespace: "shop", Name: "web"}, 0)
	if !c.NotAfter.Equal(t0.Add(certs.DefaultTTL)) || !c.NotBefore.Equal(t0.Add(-30*time.Second)) {
		t.Fatalf("validity %s .. %s, want %s .. %s", c.NotBefore, c.NotAfter, t0.Add(-30*time.Second), t0.Add(certs.DefaultTTL))
	}
	if c.Serial != leaf.SerialNumber.Text(16) {
		t.Errorf("serial %q, certificate has %x", c.Serial, leaf.SerialNumber)
	}
	roots := pool(t, bundleOf(t, ca))
	for name, tc := range map[string]struct {
		at time.Time
		ok bool
	}{
		"within backdate": {at: t0.Add(-20 * time.Second), ok: true},
		"before":          {at: t0.Add(-time.Minute)},
		"last second":     {at: t0.Add(certs.DefaultTTL - time.Second), ok: true},
		"after":           {at: t0.Add(certs.DefaultTTL + time.Second)},
	} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: tc.at})
		if (err == nil) != tc.ok {
			t.Errorf("%s: verify at %s: %v, want ok=%v", name, tc.at, err, tc.ok)
		}
	}

	c, _ = issue(t, ca, mesh.Identity{Namespace: "shop", Name: "web"}, time.Hour)
	if !c.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Errorf("TTL 1h: NotAfter %s", c.NotAfter)
	}
	// A leaf never outlives the root.
	now = ca.Root().NotAfter.Add(-time.Hour)
	c, _ = issue(t, ca, mesh.Identity{Namespace: "shop", Name: "web"}, 0)
	if !c.NotAfter.Equal(ca.Root().NotAfter) {
		t.Errorf("near root expiry: NotAfter %s, root ends %s", c.NotAfter, ca.Root().NotAfter)
	}
	now = ca.Root().NotAfter
	_, err := ca.Issue(context.Background(), certs.Request{Identity: mesh.Identity{Namespace: "shop", Name: "web"}, PublicKey: &newKey(t).PublicKey})
	if !errors.Is(err, certs.ErrRootExpired) {
		t.Errorf("issue after root expiry: %v, want ErrRootExpired", err)
	}
}

func TestIssueRejects(t *testing.T) {
	ca := newCA(t, certs.Options{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := mesh.Identity{Namespace: "shop", Name: "web"}
	for name, tc := range map[string]struct {
		req  certs.Request
		want error
	}{
		"empty identity":     {certs.Request{PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidIdentity},
		"slash in name":      {certs.Request{Identity: mesh.Identity{Namespace: "shop", Name: "a/b"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidIdentity},
		"dot dot namespace":  {certs.Request{Identity: mesh.Identity{Namespace: "..", Name: "web"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidIdentity},
		"upper-case name":    {certs.Request{Identity: mesh.Identity{Namespace: "shop", Name: "Web"}, PublicKey: &newKey(t).PublicKey}, certs.ErrInvalidIdentity},
		"no key":             {certs.Request{Identity: good}, certs.ErrUnsupportedKey},
		"RSA key":            {certs.Request{Identity: good, PublicKey: &rsaKey.PublicKey}, certs.ErrUnsupportedKey},
		"P-384 key":          {certs.Request{Identity: good, PublicKey: &p384.PublicKey}, certs.ErrUnsupportedKey},
		"private key passed": {certs.Request{Identity: good, PublicKey: newKey(t)}, certs.ErrUnsupportedKey},
		"negative TTL":       {certs.Request{Identity: good, PublicKey: &newKey(t).PublicKey, TTL: -time.Second}, certs.ErrInvalidTTL},
	} {
		if _, err := ca.Issue(context.Background(), tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestSerialsAreRandom128Bit(t *testing.T) {
	ca := newCA(t, certs.Options{})
	seen := map[string]bool{}
	for range 50 {
		c, leaf := issue(t, ca, mesh.Identity{Namespace: "shop", Name: "web"}, 0)
		if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
			t.Fatalf("serial %x", leaf.SerialNumber)
		}
		if seen[c.Serial] {
			t.Fatalf("serial %s issued twice", c.Serial)
		}
		seen[c.Serial] = true
	}
}

func TestOptionsRejected(t *testing.T) {
	for name, opts := range map[string]certs.Options{
		"upper-case trust domain": {TrustDomain: "Cluster.Local"},
		"slash in trust domain":   {TrustDomain: "a/b"},
		"unknown format":          {PrincipalFormat: "x509"},
		"negative TTL":            {TTL: -time.Hour},
	} {
		if _, err := certs.NewCA(opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFileCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	opts := certs.Options{Now: fixedClock(t0)}
	first, err := certs.LoadOrCreateFileCA(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{certs.FileCAKey: 0o600, certs.FileCACert: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, certs.FileCAKey))
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("ca.key is not a PEM PKCS#8 key")
	} else if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Errorf("ca.key: %v", err)
	}

	again, err := certs.LoadOrCreateFileCA(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Root().Equal(first.Root()) {
		t.Fatal("reloading gave another root")
	}
	// A leaf from the reloaded CA verifies with the first CA's bundle.
	_, leaf := issue(t, again, mesh.Identity{Namespace: "shop", Name: "web"}, 0)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, bundleOf(t, first)), CurrentTime: t0}); err != nil {
		t.Error(err)
	}
}

func TestFileCAExtraRootsAreTrusted(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateFileCA(dir, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	previous := bundleOf(t, newCA(t, certs.Options{}))
	path := filepath.Join(dir, certs.FileCACert)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, previous...), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded, err := certs.LoadOrCreateFileCA(dir, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reloaded.Root().Equal(ca.Root()) {
		t.Error("the first certificate of ca.crt is not the signing root")
	}
	if got := string(bundleOf(t, reloaded)); got != string(b)+string(previous) {
		t.Errorf("trust bundle:\n%s\nwant both roots", got)
	}
}

func TestFileCAConcurrentCreators(t *testing.T) {
	dir := t.TempDir()
	roots := make([]*x509.Certificate, 16)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range roots {
		wg.Go(func() {
			<-start
			ca, err := certs.LoadOrCreateFileCA(dir, certs.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = ca.Root()
		})
	}
	close(start)
	wg.Wait()
	for _, r := range roots[1:] {
		if r == nil || !r.Equal(roots[0]) {
			t.Fatal("concurrent creators ended with different roots")
		}
	}
}

func TestFileCAInvalidIsNotReplaced(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, err := x509.MarshalPKCS8PrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	otherKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER})
	for name, tc := range map[string]struct {
		mutate func(t *testing.T, dir string)
		opts   certs.Options
		want   error
	}{
		"corrupt certificate": {mutate: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, certs.FileCACert), []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
		}},
		"garbage key": {mutate: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, certs.FileCAKey), []byte("garbage"))
		}},
		"key of another root": {mutate: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, certs.FileCAKey), otherKeyPEM)
		}},
		"key missing": {mutate: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, certs.FileCAKey)); err != nil {
				t.Fatal(err)
			}
		}},
		"expired root": {
			mutate: func(*testing.T, string) {},
			opts:   certs.Options{Now: fixedClock(t0.Add(certs.DefaultRootValidity + time.Hour))},
			want:   certs.ErrRootExpired,
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := certs.LoadOrCreateFileCA(dir, certs.Options{Now: fixedClock(t0)}); err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, dir)
			before := snapshotDir(t, dir)
			opts := tc.opts
			if opts.Now == nil {
				opts.Now = fixedClock(t0)
			}
			_, err := certs.LoadOrCreateFileCA(dir, opts)
			if !errors.Is(err, certs.ErrInvalidRoot) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("error %v, want ErrInvalidRoot %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %s", err, dir)
			}
			if after := snapshotDir(t, dir); !maps.Equal(before, after) {
				t.Error("the stored root was changed")
			}
		})
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// spiffeID is the URI SAN of a leaf, failing the test unless it has
// exactly one.
func spiffeID(t testing.TB, leaf *x509.Certificate) *url.URL {
	t.Helper()
	if len(leaf.URIs) != 1 {
		t.Fatalf("URI SANs %v, want exactly one", leaf.URIs)
	}
	return leaf.URIs[0]
}
