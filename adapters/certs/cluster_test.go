package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/internal/testenv"
)

// TestInCluster runs against a real API server: the Secret-backed root,
// and the signing endpoint authenticating real ServiceAccount tokens with
// TokenReview.
func TestInCluster(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	for _, ns := range []string{"meshward-system", "shop"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("SecretCA", func(t *testing.T) { testSecretCA(t, env) })
	t.Run("SigningHandler", func(t *testing.T) { testSigningHandler(t, env) })
}

func testSecretCA(t *testing.T, env *testenv.Env) {
	ctx := t.Context()
	const ns, name = "meshward-system", "meshward-ca"

	// Replicas starting together agree on one root.
	roots := make([]*x509.Certificate, 4)
	var wg sync.WaitGroup
	for i := range roots {
		wg.Go(func() {
			ca, err := certs.LoadOrCreateSecretCA(ctx, env.Client, ns, name, certs.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = ca.Root()
		})
	}
	wg.Wait()
	for _, r := range roots {
		if r == nil || !r.Equal(roots[0]) {
			t.Fatal("concurrent LoadOrCreateSecretCA calls ended with different roots")
		}
	}

	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %q", secret.Type)
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, certs.SecretCAKey} {
		if len(secret.Data[k]) == 0 {
			t.Errorf("Secret key %s is empty", k)
		}
	}
	if !parseCert(t, secret.Data[corev1.TLSCertKey]).Equal(roots[0]) {
		t.Error("tls.crt is not the root in use")
	}

	again, err := certs.LoadOrCreateSecretCA(ctx, env.Client, ns, name, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Root().Equal(roots[0]) {
		t.Fatal("a second LoadOrCreateSecretCA made a new root")
	}
	var reread corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &reread); err != nil {
		t.Fatal(err)
	}
	if reread.ResourceVersion != secret.ResourceVersion {
		t.Error("loading the root wrote the Secret")
	}

	for _, bad := range []corev1.Secret{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corrupt"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: []byte("not a cert"), corev1.TLSPrivateKeyKey: []byte("not a key")},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "opaque"},
			Data:       secret.Data,
		},
		{
			// ca.crt without the signing root.
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign-bundle"},
			Type:       corev1.SecretTypeTLS,
			Data: map[string][]byte{
				corev1.TLSCertKey:       secret.Data[corev1.TLSCertKey],
				corev1.TLSPrivateKeyKey: secret.Data[corev1.TLSPrivateKeyKey],
				certs.SecretCAKey:       bundleOf(t, newCA(t, certs.Options{})),
			},
		},
	} {
		if err := env.Client.Create(ctx, &bad); err != nil {
			t.Fatal(err)
		}
		_, err := certs.LoadOrCreateSecretCA(ctx, env.Client, ns, bad.Name, certs.Options{})
		if !errors.Is(err, certs.ErrInvalidRoot) || !strings.Contains(err.Error(), "Secret "+ns+"/"+bad.Name) {
			t.Errorf("Secret %s: %v, want ErrInvalidRoot naming the Secret", bad.Name, err)
		}
		var after corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&bad), &after); err != nil {
			t.Fatal(err)
		}
		if after.ResourceVersion != bad.ResourceVersion {
			t.Errorf("Secret %s was overwritten", bad.Name)
		}
	}
}

func testSigningHandler(t *testing.T, env *testenv.Env) {
	ctx := t.Context()
	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"frontend", "gone"} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: sa}}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa, audience string) string {
		t.Helper()
		tr, err := clientset.CoreV1().ServiceAccounts("shop").CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for shop/%s: %v", sa, err)
		}
		return tr.Status.Token
	}
	goodToken, otherAudience, goneToken := token("frontend", certs.DefaultAudience), token("frontend", "vault"), token("gone", certs.DefaultAudience)
	if err := env.Client.Delete(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gone"}}); err != nil {
		t.Fatal(err)
	}

	ca := newCA(t, certs.Options{})
	mux := http.NewServeMux()
	mux.Handle(certs.SigningPath, certs.NewSigningHandler(ca, env.Client, certs.SigningOptions{TTL: time.Hour, Log: testr.New(t)}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for someone else's identity: it must be ignored.
	admin, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "admin"},
		URIs:     []*url.URL{admin},
		DNSNames: []string{"admin.kube-system.cluster.local"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))

	post := func(method, token, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+certs.SigningPath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.Bytes()
	}
	body := func(csr string) string {
		b, err := json.Marshal(certs.SigningRequest{CSR: csr})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("issues for the token's ServiceAccount only", func(t *testing.T) {
		status, b := post(http.MethodPost, goodToken, body(csr))
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, b)
		}
		var resp certs.SigningResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		leaf := parseCert(t, []byte(resp.Certificate))
		if got := spiffeID(t, leaf).String(); got != "spiffe://cluster.local/ns/shop/sa/frontend" {
			t.Errorf("URI SAN %s, want the token's ServiceAccount", got)
		}
		if len(leaf.DNSNames) != 0 || leaf.Subject.CommonName == "admin" {
			t.Errorf("the CSR's names leaked: DNS %v, CN %q", leaf.DNSNames, leaf.Subject.CommonName)
		}
		if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
			t.Error("the certificate is not for the CSR's key")
		}
		if !resp.NotAfter.Equal(leaf.NotAfter) || time.Until(leaf.NotAfter) > time.Hour {
			t.Errorf("notAfter %s, certificate %s, want about an hour", resp.NotAfter, leaf.NotAfter)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, []byte(resp.CA)), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Error(err)
		}
	})

	for name, tc := range map[string]struct {
		method, token, body string
		want                int
		says                string
	}{
		"no token":               {http.MethodPost, "", body(csr), http.StatusUnauthorized, "missing bearer token"},
		"garbage token":          {http.MethodPost, "not-a-token", body(csr), http.StatusUnauthorized, "rejected"},
		"token for vault":        {http.MethodPost, otherAudience, body(csr), http.StatusUnauthorized, "rejected"},
		"deleted ServiceAccount": {http.MethodPost, goneToken, body(csr), http.StatusUnauthorized, "rejected"},
		"not JSON":               {http.MethodPost, goodToken, csr, http.StatusBadRequest, "must be JSON"},
		"not a CSR":              {http.MethodPost, goodToken, body("hello"), http.StatusBadRequest, "bad CSR"},
		"empty CSR":              {http.MethodPost, goodToken, `{}`, http.StatusBadRequest, "bad CSR"},
		"oversized":              {http.MethodPost, goodToken, body(strings.Repeat("A", 100<<10)), http.StatusRequestEntityTooLarge, "larger"},
		"GET":                    {http.MethodGet, goodToken, "", http.StatusMethodNotAllowed, "POST"},
	} {
		t.Run(name, func(t *testing.T) {
			status, b := post(tc.method, tc.token, tc.body)
			var e certs.SigningError
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if status != tc.want || !strings.Contains(e.Error, tc.says) {
				t.Errorf("status %d %q, want %d saying %q", status, e.Error, tc.want, tc.says)
			}
			t.Logf("%d: %s", status, e.Error)
		})
	}
}
