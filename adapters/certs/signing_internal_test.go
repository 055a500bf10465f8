package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/meshward/meshward/mesh"
)

func TestIdentityFromUsername(t *testing.T) {
	for username, want := range map[string]*mesh.Identity{
		"system:serviceaccount:shop:web":    {Namespace: "shop", Name: "web"},
		"system:serviceaccount:shop:web.v2": {Namespace: "shop", Name: "web.v2"},
		"system:serviceaccount:shop:a:b":    nil,
		"system:serviceaccount:shop:":       nil,
		"system:serviceaccount::web":        nil,
		"system:serviceaccount:shop":        nil,
		"system:serviceaccounts:shop":       nil,
		"system:admin":                      nil,
		"alice":                             nil,
		"":                                  nil,
		"system:node:worker-1":              nil,
		"System:serviceaccount:shop:web":    nil,
	} {
		got, ok := identityFromUsername(username)
		if want == nil {
			if ok {
				t.Errorf("%q: got %s, want no identity", username, got)
			}
			continue
		}
		if !ok || got != *want {
			t.Errorf("%q: got %s (%v), want %s", username, got, ok, want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc.def":   "abc.def",
		"bearer abc":       "abc",
		"Bearer  abc ":     "abc",
		"Bearer":           "",
		"Bearer ":          "",
		"Basic dXNlcjpwdw": "",
		"Bearer a b":       "",
		"":                 "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("%q: got %q, %v; want %q", header, got, ok, want)
		}
	}
}

func csrPEM(t *testing.T, key any, tmpl *x509.CertificateRequest) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestParseCSR(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := csrPEM(t, p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "anything"}})
	block, _ := pem.Decode([]byte(good))
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-3] ^= 0xff
	for name, tc := range map[string]struct {
		in string
		ok bool
	}{
		"P-256":         {in: good, ok: true},
		"empty":         {in: ""},
		"not PEM":       {in: "hello"},
		"certificate":   {in: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}))},
		"bad DER":       {in: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("nope")}))},
		"bad signature": {in: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))},
		"P-384":         {in: csrPEM(t, p384, &x509.CertificateRequest{})},
		"two requests":  {in: good + good},
	} {
		_, err := parseCSR(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", name, err, tc.ok)
		}
		if name == "P-384" && !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("P-384: %v, want ErrUnsupportedKey", err)
		}
	}
}

func TestRenewAt(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		notAfter time.Time
		want     time.Duration
	}{
		"24h":             {notAfter: at.Add(24 * time.Hour), want: 16 * time.Hour},
		"3s":              {notAfter: at.Add(3 * time.Second), want: 2 * time.Second},
		"already expired": {notAfter: at.Add(-time.Second), want: time.Second},
	} {
		if got := renewAt(at, tc.notAfter).Sub(at); got != tc.want {
			t.Errorf("%s: renew after %s, want %s", name, got, tc.want)
		}
	}
}
