package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

// TestCheckOCIPrefixes checks requests named by OCI-style objects against
// examples/bookstore-oci.
func TestCheckOCIPrefixes(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "examples", "bookstore-oci")
	for name, tc := range map[string]struct {
		args   []string
		code   int
		reason string // a part of the reason, when it matters
	}{
		"vs to vs allowed":        {[]string{"--source", "vs:bookbuyer/bookbuyer", "--destination", "vs:bookstore/bookstore", "--method", "GET", "--path", "/books-bought"}, cli.ExitOK, "every one allows the request"},
		"vs to vs denied":         {[]string{"--source", "vs:bookthief/bookthief", "--destination", "vs:bookstore/bookstore", "--method", "GET", "--path", "/books-bought"}, cli.ExitError, "no AccessPolicy allows bookthief/bookthief to call bookstore/bookstore"},
		"vs to vs tcp allowed":    {[]string{"--source", "vs:bookstore/bookstore", "--destination", "vs:bookwarehouse/bookwarehouse", "--port", "14001"}, cli.ExitOK, ""},
		"sa to sa allowed":        {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "bookstore/bookstore", "--method", "GET"}, cli.ExitOK, "bookbuyer/bookbuyer may call bookstore/bookstore: AccessPolicy bookstore/bookbuyer-access-bookstore: rules[0]"},
		"sa to vs allowed":        {[]string{"--source", "bookbuyer/bookbuyer", "--destination", "vs:bookstore/bookstore", "--method", "GET"}, cli.ExitOK, ""},
		"unknown virtual service": {[]string{"--source", "vs:bookbuyer/nope", "--destination", "vs:bookstore/bookstore", "--method", "GET"}, cli.ExitError, ""},
		"unknown ingress gateway": {[]string{"--source", "ig:bookstore/nope", "--destination", "vs:bookstore/bookstore", "--method", "GET"}, cli.ExitError, ""},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"check", "--dir", dir, "-o", "json"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			var got struct {
				Allowed bool   `json:"allowed"`
				Reason  string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if got.Allowed != (tc.code == cli.ExitOK) || strings.TrimSpace(got.Reason) == "" {
				t.Fatalf("allowed %v, reason %q", got.Allowed, got.Reason)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("reason %q, want it to contain %q", got.Reason, tc.reason)
			}
		})
	}
}
