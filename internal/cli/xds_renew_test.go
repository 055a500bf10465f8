package cli

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/adapters/envoy/server"
	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// TestRenewalStopsWhenAnIdentityLeaves checks that serve keeps the
// certificate files of every identity of the model, and stops renewing
// those of an identity that leaves it: its goroutine ends.
func TestRenewalStopsWhenAnIdentityLeaves(t *testing.T) {
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := testr.New(t)
	srv, err := server.New(server.Options{Log: log, Translate: translate.Options{Flavor: translate.FlavorGRPC, Authz: translate.AuthzRBAC}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	dir := t.TempDir()
	x := &xdsRunner{srv: srv, log: log, ca: ca, certDir: dir, wg: &wg, renewing: map[mesh.Identity]*renewal{}}

	a, b := mesh.Identity{Namespace: "shop", Name: "a"}, mesh.Identity{Namespace: "shop", Name: "b"}
	model := func(ids ...mesh.Identity) *mesh.Model {
		return &mesh.Model{Options: mesh.DefaultOptions(), Namespaces: []string{"shop"}, Identities: ids}
	}
	x.update(ctx, model(a, b))
	for _, id := range []mesh.Identity{a, b} {
		file := filepath.Join(dir, id.Namespace, id.Name, "cert.pem")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(file); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no certificate file for %s", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// b leaves, then a: each renewal stops, and with both gone every
	// goroutine the runner started has ended, while ctx is still live.
	x.update(ctx, model(a))
	x.mu.Lock()
	_, stillB := x.renewing[b]
	x.mu.Unlock()
	if stillB {
		t.Fatal("b is still renewed after leaving the model")
	}
	x.update(ctx, model())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("renewal goroutines still running after their identities left the model")
	}
	if ctx.Err() != nil {
		t.Fatal("the context ended: the test proves nothing")
	}
}
