package opaplugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	logtest "github.com/open-policy-agent/opa/v1/logging/test"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/meshward/meshward/policy/opaplugin"
)

// startManager starts an OPA plugin manager the way OPA's runtime does:
// discovery builds every plugin of the configuration (ours through the
// factory, decision logs through OPA's) and the manager starts them.
func startManager(t *testing.T, config map[string]any, console logging.Logger) *plugins.Manager {
	t.Helper()
	raw, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	m, err := plugins.New(raw, "test", inmem.New(), plugins.ConsoleLogger(console), plugins.Logger(logging.NewNoOpLogger()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(m, discovery.Factories(map[string]plugins.Factory{opaplugin.Name: factory()}))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	m.Register(discovery.Name, d)
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("manager start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Stop(ctx)
	})
	return m
}

func pluginConfig(dir string, extra map[string]any) map[string]any {
	c := map[string]any{"addr": "127.0.0.1:0", "mesh-dir": dir}
	for k, v := range extra {
		c[k] = v
	}
	return map[string]any{
		"plugins":       map[string]any{opaplugin.Name: c},
		"decision_logs": map[string]any{"console": true},
	}
}

func TestPlugin(t *testing.T) {
	dir := meshDir(t, nil)
	console := logtest.New()
	m := startManager(t, pluginConfig(dir, nil), console)
	waitStatus(t, m, opaplugin.Name, plugins.StateOK)
	p := opaplugin.Lookup(m)
	if p == nil {
		t.Fatal("plugin not registered with the manager")
	}
	addr := p.Addr().String()
	c := client(t, addr)

	// The built-in SMI decision over the mesh directory.
	allowed := checkHTTP(t, c, buyer, "GET", "/books")
	if !allowed.allowed || !strings.Contains(allowed.reason, "TrafficTarget bookstore/buyers") {
		t.Errorf("bookbuyer GET /books = %+v, want allowed by the TrafficTarget", allowed)
	}
	denied := checkHTTP(t, c, thief, "GET", "/books")
	if denied.allowed {
		t.Errorf("bookthief GET /books = %+v, want denied", denied)
	}

	// Decisions are logged by OPA's decision log plugin, with meshward's ids.
	events := map[string]map[string]any{}
	for _, e := range console.Entries() {
		if e.Message == "Decision Log" {
			events[fmt.Sprint(e.Fields["decision_id"])] = e.Fields
		}
	}
	for _, r := range []result{allowed, denied} {
		e := events[r.id]
		if e == nil {
			t.Errorf("no decision log event for %s (events: %d)", r.id, len(events))
			continue
		}
		res, _ := e["result"].(map[string]any)
		if res["allowed"] != r.allowed || res["reason"] != r.reason || e["path"] != "envoy/authz/allow" {
			t.Errorf("event %s = %v, want allowed %v reason %q", r.id, e, r.allowed, r.reason)
		}
	}

	// A policy loaded into OPA adds a deny.
	upsertPolicy(t, m, "maintenance.rego", `package meshward.ext

deny contains "the bookstore is closed for stock-taking" if input.meshward.destination == "bookstore/bookstore"
`)
	r := checkHTTP(t, c, buyer, "GET", "/books")
	if r.allowed || !strings.Contains(r.reason, "closed for stock-taking") {
		t.Errorf("with OPA's deny: %+v, want denied by it", r)
	}
	waitStatus(t, m, opaplugin.Name, plugins.StateOK)

	// A policy meshward refuses leaves the previous one in force.
	upsertPolicy(t, m, "bad.rego", "package meshward.authz\n\nallow := true\n")
	s := waitStatus(t, m, opaplugin.Name, plugins.StateWarn)
	if !strings.Contains(s.Message, "bad.rego") || !strings.Contains(s.Message, "reserved") {
		t.Errorf("status message %q, want the refused module named", s.Message)
	}
	if r := checkHTTP(t, c, buyer, "GET", "/books"); r.allowed {
		t.Errorf("after a refused module: %+v, want the deny still in force", r)
	}
	deletePolicy(t, m, "bad.rego")
	deletePolicy(t, m, "maintenance.rego")
	waitStatus(t, m, opaplugin.Name, plugins.StateOK)
	if r := checkHTTP(t, c, buyer, "GET", "/books"); !r.allowed {
		t.Errorf("after deleting OPA's policies: %+v, want allowed", r)
	}

	// The mesh directory is watched: its manifests and its .rego files.
	writeFile(t, filepath.Join(dir, "thief.yaml"), `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: thieves, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  rules:
    - {kind: HTTPRouteGroup, name: routes, matches: [books]}
  sources:
    - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
`)
	eventually(t, "the new TrafficTarget", func() bool { return checkHTTP(t, c, thief, "GET", "/books").allowed })
	writeFile(t, filepath.Join(dir, "ext.rego"), `package meshward.ext

deny contains "no thieves" if input.meshward.source == "bookthief/bookthief"
`)
	eventually(t, "the mesh directory's Rego", func() bool { return !checkHTTP(t, c, thief, "GET", "/books").allowed })

	// Stop closes the listener.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Stop(ctx)
	if p.Addr() != nil {
		t.Error("Addr after Stop")
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	waitStatus(t, m, opaplugin.Name, plugins.StateNotReady)
}

func TestReconfigure(t *testing.T) {
	dir := meshDir(t, nil)
	m := startManager(t, pluginConfig(dir, nil), logtest.New())
	waitStatus(t, m, opaplugin.Name, plugins.StateOK)
	p := opaplugin.Lookup(m)
	oldAddr := p.Addr().String()
	if r := checkHTTP(t, client(t, oldAddr), thief, "GET", "/books"); r.allowed {
		t.Fatalf("bookthief allowed before dry-run: %+v", r)
	}

	cfg := p.Config()
	cfg.DryRun = true
	p.Reconfigure(context.Background(), &cfg)
	r := checkHTTP(t, client(t, oldAddr), thief, "GET", "/books")
	if !r.allowed || !strings.Contains(r.reason, "dry run") {
		t.Errorf("dry-run: %+v, want allowed with the real decision in the reason", r)
	}

	// A new address: the server moves.
	cfg.Addr = "127.0.0.2:0"
	p.Reconfigure(context.Background(), &cfg)
	newAddr := p.Addr().String()
	if !strings.HasPrefix(newAddr, "127.0.0.2:") {
		t.Fatalf("address after reconfiguring: %s", newAddr)
	}
	if r := checkHTTP(t, client(t, newAddr), thief, "GET", "/books"); !r.allowed {
		t.Errorf("on the new address: %+v", r)
	}
	if conn, err := net.DialTimeout("tcp", oldAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("old address %s still open", oldAddr)
	}

	// A new mesh directory, with other options.
	other := meshDir(t, nil)
	cfg.DryRun, cfg.MeshDir, cfg.Permissive = false, other, true
	p.Reconfigure(context.Background(), &cfg)
	eventually(t, "permissive mode", func() bool { return checkHTTP(t, client(t, newAddr), thief, "POST", "/anything").allowed })
	waitStatus(t, m, opaplugin.Name, plugins.StateOK)
}

// TestListenError: a plugin that cannot listen fails the manager's start
// and says why in its status.
func TestListenError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	raw, _ := json.Marshal(pluginConfig(meshDir(t, nil), map[string]any{"addr": lis.Addr().String()}))
	m, err := plugins.New(raw, "test", inmem.New(), plugins.Logger(logging.NewNoOpLogger()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(m, discovery.Factories(map[string]plugins.Factory{opaplugin.Name: factory()}))
	if err != nil {
		t.Fatal(err)
	}
	m.Register(discovery.Name, d)
	err = m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start: %v, want address already in use", err)
	}
	if s := m.PluginStatus()[opaplugin.Name]; s == nil || s.State != plugins.StateErr || !strings.Contains(s.Message, lis.Addr().String()) {
		t.Errorf("status %v, want ERROR naming the address", s)
	}
	m.Stop(context.Background())
}
