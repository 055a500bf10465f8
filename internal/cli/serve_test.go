package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// copyExample copies examples/bookstore into a temporary directory.
func copyExample(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "bookstore")
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestServeOnceBookstore(t *testing.T) {
	dir := copyExample(t)
	code, out, errOut := run(t, "serve", "--dir", dir, "--once")
	if code != cli.ExitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{"4 namespaces", "5 identities", "3 access rules", "2 splits", "0 findings"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestServeOnceReportsFindingsWithPosition(t *testing.T) {
	dir := t.TempDir()
	manifest := `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    meshward.io/mesh: meshward
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: misplaced
  namespace: shop
spec:
  destination:
    kind: ServiceAccount
    name: api
    namespace: elsewhere
  sources:
    - kind: ServiceAccount
      name: web
  rules:
    - kind: HTTPRouteGroup
      name: routes
`
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "serve", "--dir", dir, "--once")
	if code != cli.ExitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	if !regexp.MustCompile(`(?m)^mesh\.yaml:8: TrafficTarget shop/misplaced: spec\.destination\.namespace: Error: .*namespace`).MatchString(out) {
		t.Fatalf("finding with file:line missing:\n%s", out)
	}
	if !strings.Contains(out, "0 access rules") {
		t.Errorf("a wrong-namespace TrafficTarget must not become a rule:\n%s", out)
	}
}

func TestServeOnceBrokenFile(t *testing.T) {
	dir := copyExample(t)
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "serve", "--dir", dir, "--once")
	if code != cli.ExitError {
		t.Fatalf("exit %d, want %d", code, cli.ExitError)
	}
	if !regexp.MustCompile(`broken\.yaml:\d+: `).MatchString(errOut) {
		t.Fatalf("error lacks file:line:\n%s", errOut)
	}
}

func TestServeUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"missing dir":      {"serve"},
		"no such dir":      {"serve", "--dir", filepath.Join(t.TempDir(), "absent")},
		"unknown flag":     {"serve", "--dir", ".", "--no-such-flag"},
		"bad path match":   {"serve", "--dir", ".", "--path-match", "sideways"},
		"bad log level":    {"serve", "--dir", ".", "--log-level", "loud"},
		"bad trust domain": {"serve", "--dir", ".", "--trust-domain", "a/b"},
		"bad evaluator":    {"serve", "--dir", ".", "--policy-evaluator", "wasm", "--ext-authz-address", "0", "--nginx-auth-address", "127.0.0.1:0"},
		"no decision logs": {"serve", "--dir", ".", "--decision-log-config", filepath.Join(t.TempDir(), "absent.yaml")},
		"bad proxies":      {"serve", "--dir", ".", "--nginx-trusted-proxies", "not-a-cidr", "--ext-authz-address", "0", "--nginx-auth-address", "127.0.0.1:0"},
		"bad xDS host": {
			"serve", "--dir", ".", "--ext-authz-address", "0", "--nginx-auth-address", "0", "--xds-address", "127.0.0.1:0",
			"--cert-dir", t.TempDir(), "--xds-tls-hosts", "not a host",
		},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := run(t, args...)
			if code != cli.ExitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, cli.ExitUsage, errOut)
			}
			if !strings.Contains(errOut, "Error: ") {
				t.Fatalf("no error message: %q", errOut)
			}
		})
	}
}

// TestServeWatches runs the long-lived serve command: an edit changes the
// model, a broken file is reported with file:line and changes nothing, and
// the fix is picked up.
func TestServeWatches(t *testing.T) {
	dir := copyExample(t)
	certDir := t.TempDir()
	logs := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{
			"serve", "--dir", dir, "--debounce", "50ms", "--ext-authz-address", "127.0.0.1:0", "--nginx-auth-address", "127.0.0.1:0",
			"--xds-address", "127.0.0.1:0", "--xds-flavor", "grpc", "--cert-dir", certDir,
		}, &bytes.Buffer{}, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != cli.ExitOK {
			t.Errorf("serve exited %d; logs:\n%s", code, logs.String())
		}
	}()
	built := func() int { return strings.Count(logs.String(), `msg="mesh model built"`) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the first model", func() bool { return built() == 1 })
	if !strings.Contains(logs.String(), "3 access rules") {
		t.Fatalf("unexpected first model:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `msg="xDS server listening`) {
		t.Fatalf("xDS server not started:\n%s", logs.String())
	}
	// Every identity gets certificate files for gRPC's file_watcher.
	waitFor("certificate files", func() bool {
		for _, id := range []string{"bookbuyer/bookbuyer", "bookstore/bookstore", "bookstore/bookstore-v2", "bookthief/bookthief", "bookwarehouse/bookwarehouse"} {
			for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
				if _, err := os.Stat(filepath.Join(certDir, id, f)); err != nil {
					return false
				}
			}
		}
		return true
	})

	// Remove a TrafficTarget: the model follows.
	access := filepath.Join(dir, "smi-access.yaml")
	orig, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(orig), "\n---\n")
	var kept []string
	for _, d := range docs {
		if !strings.Contains(d, "name: bookbuyer-access-bookstore-v2") {
			kept = append(kept, d)
		}
	}
	if len(kept) != len(docs)-1 {
		t.Fatalf("example changed: TrafficTarget bookbuyer-access-bookstore-v2 not found")
	}
	if err := os.WriteFile(access, []byte(strings.Join(kept, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the edited model", func() bool { return built() == 2 })
	if !strings.Contains(logs.String(), "2 access rules") {
		t.Fatalf("edit not reflected:\n%s", logs.String())
	}

	// A broken file: reported with file:line, no new model.
	if err := os.WriteFile(filepath.Join(dir, "zz-broken.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the parse error", func() bool { return regexp.MustCompile(`zz-broken\.yaml:\d+`).MatchString(logs.String()) })
	time.Sleep(300 * time.Millisecond)
	if n := built(); n != 2 {
		t.Fatalf("a broken file changed the model (%d builds):\n%s", n, logs.String())
	}

	// The fix is picked up.
	if err := os.Remove(filepath.Join(dir, "zz-broken.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor("the model after the fix", func() bool { return built() == 3 })
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != cli.ExitOK || !strings.HasPrefix(out, "meshward ") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
