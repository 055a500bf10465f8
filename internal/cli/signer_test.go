package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

// TestControllerSigningEndpoint runs `meshward controller` against a real
// API server with its signing endpoint on: a workload trades a CSR and a
// ServiceAccount token (from the TokenRequest API) for a certificate of
// that ServiceAccount, over TLS verified with the mesh's trust bundle (the
// ca.crt of the CA Secret the controller created) for the endpoint's
// default Service name. Missing, garbage and wrongly addressed tokens get
// 401.
func TestControllerSigningEndpoint(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	for _, ns := range []string{"meshward-system", "shop"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "frontend"}}); err != nil {
		t.Fatal(err)
	}
	ctrl := startController(t, env,
		"--ext-authz-address", "0", "--nginx-auth-address", "0", "--xds-address", "0",
		"--signer-address", "127.0.0.1:0")
	addr := ctrl.address(t, "signing endpoint")

	// The trust bundle, as an operator reads it to give it to workloads.
	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "meshward-system", Name: "meshward-ca"}, &secret); err != nil {
		t.Fatalf("the controller's CA Secret: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data[certs.SecretCAKey]) {
		t.Fatalf("no certificate in the CA Secret's %s", certs.SecretCAKey)
	}
	// In the cluster the workload dials the Service; here the test dials
	// the listener and checks the certificate for the Service's name.
	httpClient := func(serverName string, roots *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		}}
	}
	const service = "meshward.meshward-system.svc"
	endpoint := "https://" + service + ":15012" + certs.SigningPath

	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := func(audience string) string {
		t.Helper()
		tr, err := clientset.CoreV1().ServiceAccounts("shop").CreateToken(ctx, "frontend", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest: %v", err)
		}
		return tr.Status.Token
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for another identity; only the token decides.
	admin, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}, URIs: []*url.URL{admin}}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(certs.SigningRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	post := func(c *http.Client, token string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes(), err
	}
	mesh := httpClient(service, roots)

	t.Run("a ServiceAccount token gets that ServiceAccount's certificate", func(t *testing.T) {
		status, b, err := post(mesh, token(certs.DefaultAudience))
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, b)
		}
		var resp certs.SigningResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(resp.Certificate))
		if block == nil {
			t.Fatalf("no PEM certificate in %q", resp.Certificate)
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/shop/sa/frontend" {
			t.Errorf("URI SANs %v, want only spiffe://cluster.local/ns/shop/sa/frontend", leaf.URIs)
		}
		if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
			t.Error("the certificate is not for the CSR's key")
		}
		bundle := x509.NewCertPool()
		if !bundle.AppendCertsFromPEM([]byte(resp.CA)) {
			t.Fatalf("no certificate in the answer's trust bundle %q", resp.CA)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: bundle, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("the certificate does not chain to the answer's bundle: %v", err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the certificate does not chain to the CA Secret's bundle: %v", err)
		}
	})

	for name, tc := range map[string]struct {
		token string
		says  string
	}{
		"no token":                   {"", "missing bearer token"},
		"garbage token":              {"not-a-token", "rejected"},
		"token for another audience": {token("vault"), "rejected"},
		"tampered token":             {token(certs.DefaultAudience) + "x", "rejected"},
	} {
		t.Run(name+" gets 401", func(t *testing.T) {
			status, b, err := post(mesh, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			var e certs.SigningError
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if status != http.StatusUnauthorized || !strings.Contains(e.Error, tc.says) {
				t.Errorf("status %d %q, want 401 saying %q", status, e.Error, tc.says)
			}
		})
	}

	t.Run("the endpoint is verified with the mesh trust bundle", func(t *testing.T) {
		// Another name than the endpoint's Service.
		if _, _, err := post(httpClient("meshward.elsewhere.svc", roots), token(certs.DefaultAudience)); err == nil {
			t.Error("the serving certificate is valid for another Service")
		}
		// The system roots, not the mesh's: the token is never sent.
		if _, _, err := post(httpClient(service, nil), token(certs.DefaultAudience)); err == nil {
			t.Error("a client without the mesh trust bundle accepted the endpoint")
		}
		// Plain HTTP is refused.
		c := httpClient(service, roots)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+certs.SigningPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("issued over plain HTTP")
			}
		}
	})
}

// TestControllerSignerNeedsNamespace: outside a pod, the signing endpoint
// needs to be told where the CA Secret lives.
func TestControllerSignerNeedsNamespace(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want int
	}{
		"bad signer host":  {[]string{"--namespace", "meshward-system", "--signer-hosts", "not a host"}, cli.ExitUsage},
		"no namespace":     {nil, cli.ExitUsage},
		"bad xDS host":     {[]string{"--namespace", "meshward-system", "--signer-address", "0", "--xds-address", ":15010", "--xds-tls-hosts", "not a host"}, cli.ExitUsage},
		"xDS without a CA": {[]string{"--signer-address", "0", "--xds-address", ":15010"}, cli.ExitUsage},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"controller", "--kubeconfig", kubeconfig, "--ext-authz-address", "0", "--nginx-auth-address", "0", "--xds-address", "0"}, tc.args...)
			code, _, errOut := run(t, args...)
			if code != tc.want || !strings.Contains(errOut, "Error: ") {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.want, errOut)
			}
			t.Log(strings.TrimSpace(errOut))
		})
	}
}
