package opaplugin_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy/extauthz"
	"github.com/meshward/meshward/policy/opaplugin"
	"github.com/meshward/meshward/snapshot"
)

// filesSource is the mesh source meshward's commands use: the directory
// watcher of adapters/files and the translators.
func filesSource(ctx context.Context, dir string, opts mesh.Options, update func(*mesh.Model, map[string]string)) error {
	w := files.NewWatcher(dir, snapshot.NewDecoder(), files.WatchOptions{Debounce: 20 * time.Millisecond, Log: logr.Discard()})
	return w.Run(ctx, func(res *files.Result) {
		modules := make(map[string]string, len(res.Policies))
		for _, p := range res.Policies {
			modules[p.Path] = string(p.Source)
		}
		update(translate.Build(res.Snapshot, opts), modules)
	})
}

func factory() *opaplugin.Factory {
	return opaplugin.NewFactory(opaplugin.FactoryOptions{Mesh: filesSource})
}

const (
	buyer = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
	thief = "spiffe://cluster.local/ns/bookthief/sa/bookthief"
	store = "spiffe://cluster.local/ns/bookstore/sa/bookstore"
)

// meshYAML is a small mesh: bookbuyer may GET /books from bookstore;
// bookthief may call nothing.
const meshYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: bookstore, labels: {meshward.io/mesh: meshward}}
---
apiVersion: v1
kind: Namespace
metadata: {name: bookbuyer, labels: {meshward.io/mesh: meshward}}
---
apiVersion: v1
kind: Namespace
metadata: {name: bookthief, labels: {meshward.io/mesh: meshward}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookstore, namespace: bookstore}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookbuyer, namespace: bookbuyer}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookthief, namespace: bookthief}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: bookstore}
spec:
  matches:
    - name: books
      methods: [GET]
      pathRegex: /books
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: buyers, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  rules:
    - {kind: HTTPRouteGroup, name: routes, matches: [books]}
  sources:
    - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}
`

// meshDir writes meshYAML (and any other files) into a new directory.
func meshDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), meshYAML)
	for name, content := range extra {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// client dials the plugin's gRPC server.
func client(t *testing.T, addr string) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// result is what a check answered.
type result struct {
	allowed bool
	id      string
	reason  string
}

func checkHTTP(t *testing.T, c authv3.AuthorizationClient, src, method, path string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: src},
		Destination: &authv3.AttributeContext_Peer{Principal: store},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "bookstore.bookstore",
			Headers: map[string]string{":method": method, ":path": path},
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	md := resp.GetDynamicMetadata().GetFields()
	return result{
		allowed: resp.GetStatus().GetCode() == int32(code.Code_OK),
		id:      md[extauthz.MetadataDecisionID].GetStringValue(),
		reason:  md[extauthz.MetadataReason].GetStringValue(),
	}
}

// waitStatus waits until the plugin reports state (and a message
// containing msg).
func waitStatus(t *testing.T, m *plugins.Manager, name string, state plugins.State) *plugins.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := m.PluginStatus()[name]
		if s != nil && s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %s status %v, want %s", name, s, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually retries f until it returns true.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// upsertPolicy writes a module into OPA's store, as a bundle activation
// or PUT /v1/policies does; the commit fires the compiler trigger.
func upsertPolicy(t *testing.T, m *plugins.Manager, id, src string) {
	t.Helper()
	ctx := context.Background()
	err := storage.Txn(ctx, m.Store, storage.WriteParams, func(txn storage.Transaction) error {
		return m.Store.UpsertPolicy(ctx, txn, id, []byte(src))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deletePolicy(t *testing.T, m *plugins.Manager, id string) {
	t.Helper()
	ctx := context.Background()
	err := storage.Txn(ctx, m.Store, storage.WriteParams, func(txn storage.Transaction) error {
		return m.Store.DeletePolicy(ctx, txn, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}
