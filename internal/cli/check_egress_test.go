package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

// egressPolicy lets bookbuyer reach a catalogue over HTTP, a payment API
// over HTTPS and a database network over TCP.
const egressPolicy = `apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: AccessPolicy
metadata:
  name: bookbuyer-egress
  namespace: bookbuyer
spec:
  mesh:
    ref:
      name: bookstore-mesh
      namespace: bookstore
  rules:
    - action: ALLOW
      source:
        virtualService:
          ref:
            name: bookbuyer
      destination:
        externalService:
          httpExternalService:
            hostnames: ["catalogue.example.com", "*.cdn.example.com"]
            ports: [80]
    - action: ALLOW
      source:
        virtualService:
          ref:
            name: bookbuyer
      destination:
        externalService:
          httpsExternalService:
            hostnames: ["pay.example.com"]
    - action: ALLOW
      source:
        virtualService:
          ref:
            name: bookbuyer
      destination:
        externalService:
          tcpExternalService:
            ipAddresses: ["10.20.0.0/16"]
            ports: [5432]
`

// TestCheckEgress checks requests to services outside the mesh
// (--destination ext:HOST) against the egress rules of AccessPolicies.
func TestCheckEgress(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "bookstore-oci"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "egress.yaml"), []byte(egressPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args   []string
		code   int
		reason string
	}{
		"http host":            {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:catalogue.example.com", "--port", "80", "--path", "/books"}, cli.ExitOK, "bookbuyer/bookbuyer may reach external service catalogue.example.com: AccessPolicy bookbuyer/bookbuyer-egress: rules[0]"},
		"http wildcard":        {[]string{"--source", "vs:bookbuyer/bookbuyer", "--destination", "ext:img.cdn.example.com", "--port", "80", "--path", "/"}, cli.ExitOK, "every one allows the request"},
		"http other port":      {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:catalogue.example.com", "--port", "8080", "--path", "/"}, cli.ExitError, "on port 8080"},
		"https by name":        {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:pay.example.com", "--port", "443"}, cli.ExitOK, "rules[1]"},
		"tcp by address":       {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:10.20.3.4", "--port", "5432"}, cli.ExitOK, "rules[2]"},
		"tcp other address":    {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:10.99.3.4", "--port", "5432"}, cli.ExitError, "10.99.3.4"},
		"caller without rules": {[]string{"--source", "bookthief/bookthief", "--destination", "ext:catalogue.example.com", "--port", "80", "--path", "/"}, cli.ExitError, "no AccessPolicy lets bookthief/bookthief reach external services"},
		"ext as source":        {[]string{"--source", "ext:pay.example.com", "--destination", "bookstore/bookstore", "--port", "80"}, cli.ExitUsage, "can only be a --destination"},
		"ext with a port":      {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "ext:pay.example.com:443", "--port", "443"}, cli.ExitUsage, "without a port"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"check", "--dir", dir, "-o", "json"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			if tc.code == cli.ExitUsage {
				if !strings.Contains(errOut, tc.reason) {
					t.Fatalf("error %q lacks %q", errOut, tc.reason)
				}
				return
			}
			var got struct {
				Allowed bool   `json:"allowed"`
				Reason  string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if got.Allowed != (tc.code == cli.ExitOK) || !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("allowed %v, reason %q; want reason with %q", got.Allowed, got.Reason, tc.reason)
			}
		})
	}
}
