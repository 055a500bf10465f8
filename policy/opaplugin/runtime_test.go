package opaplugin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	logtest "github.com/open-policy-agent/opa/v1/logging/test"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/runtime"

	"github.com/meshward/meshward/policy/opaplugin"
)

// TestRuntime runs the plugin in OPA's own runtime, configured by an OPA
// configuration file, as `opa run --server --config-file` would: OPA's
// REST API loads a policy and the ext_authz decisions follow it, and OPA's
// health check reports on the plugin.
func TestRuntime(t *testing.T) {
	dir := meshDir(t, nil)
	configFile := filepath.Join(t.TempDir(), "opa.yaml")
	writeFile(t, configFile, fmt.Sprintf(`
plugins:
  %s:
    addr: 127.0.0.1:0
    path: envoy/authz/allow
    mesh-dir: %s
decision_logs:
  console: true
`, opaplugin.Name, dir))
	runtime.RegisterPlugin(opaplugin.Name, factory())

	console := logtest.New()
	params := runtime.NewParams()
	params.ConfigFile = configFile
	params.Addrs = &[]string{"127.0.0.1:0"}
	params.Logger = logging.NewNoOpLogger()
	params.ConsoleLogger = console
	params.GracefulShutdownPeriod = 1
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := runtime.NewRuntime(ctx, params)
	if err != nil {
		cancel()
		t.Fatalf("runtime: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- rt.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the runtime did not stop")
		}
	})

	var api string
	eventually(t, "OPA's REST API", func() bool {
		if a := rt.Addrs(); len(a) > 0 {
			api = "http://" + a[0]
			return true
		}
		return false
	})
	waitStatus(t, rt.Manager, opaplugin.Name, plugins.StateOK)
	eventually(t, "OPA's health check with plugins", func() bool { return httpStatus(t, "GET", api+"/health?plugins", "") == http.StatusOK })

	c := client(t, opaplugin.Lookup(rt.Manager).Addr().String())
	before := checkHTTP(t, c, buyer, "GET", "/books")
	if !before.allowed {
		t.Fatalf("bookbuyer GET /books: %+v, want allowed", before)
	}

	// A policy through OPA's REST API, as opa-envoy-plugin users push
	// theirs: it replaces the entry module and uses the built-in decision.
	const entry = `package envoy.authz

default allow := {"allowed": false, "http_status": 418, "body": "teapot"}

allow := {"allowed": true, "headers": {"x-checked": "opa"}} if {
	data.meshward.authz.allow
	input.attributes.request.http.method == "GET"
	not startswith(input.attributes.request.http.path, "/books/secret")
}
`
	if code := httpStatus(t, "PUT", api+"/v1/policies/authz", entry); code != http.StatusOK {
		t.Fatalf("PUT /v1/policies/authz: %d", code)
	}
	if r := checkHTTP(t, c, buyer, "GET", "/books/secret"); r.allowed {
		t.Errorf("GET /books/secret under OPA's policy: %+v, want denied", r)
	}
	after := checkHTTP(t, c, buyer, "GET", "/books")
	if !after.allowed {
		t.Errorf("GET /books under OPA's policy: %+v, want allowed", after)
	}
	if code := httpStatus(t, "DELETE", api+"/v1/policies/authz", ""); code != http.StatusOK {
		t.Fatalf("DELETE /v1/policies/authz: %d", code)
	}
	if r := checkHTTP(t, c, buyer, "GET", "/books/secret"); !r.allowed {
		t.Errorf("GET /books/secret after the policy is deleted: %+v, want allowed by SMI", r)
	}

	// OPA's decision logger logged meshward's decisions.
	logged := map[string]bool{}
	for _, e := range console.Entries() {
		if e.Message == "Decision Log" {
			logged[fmt.Sprint(e.Fields["decision_id"])] = true
		}
	}
	for _, r := range []result{before, after} {
		if !logged[r.id] {
			t.Errorf("decision %s not in OPA's console decision log", r.id)
		}
	}

	// The server's metrics are on OPA's /metrics.
	if body := httpBody(t, api+"/metrics"); !strings.Contains(body, "meshward_extauthz_decisions_total") {
		t.Errorf("OPA's /metrics has no meshward_extauthz_decisions_total")
	}
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func httpStatus(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestRuntimeConfigError: OPA refuses to start with a wrong option and
// says which.
func TestRuntimeConfigError(t *testing.T) {
	configFile := filepath.Join(t.TempDir(), "opa.yaml")
	writeFile(t, configFile, fmt.Sprintf("plugins:\n  %s:\n    mesh-dir: %s\n    dry-run: \"yes\"\n", opaplugin.Name, t.TempDir()))
	runtime.RegisterPlugin(opaplugin.Name, factory())
	params := runtime.NewParams()
	params.ConfigFile = configFile
	params.Addrs = &[]string{"127.0.0.1:0"}
	params.Logger = logging.NewNoOpLogger()
	_, err := runtime.NewRuntime(context.Background(), params)
	if err == nil || !strings.Contains(err.Error(), "plugins.meshward_ext_authz.dry-run: a string, want true or false") {
		t.Errorf("NewRuntime: %v, want the option named", err)
	}
}
