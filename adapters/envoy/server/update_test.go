package server

import (
	"maps"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/mesh"
)

// held returns the names and versions of a cache's resources.
func heldVersions(c *typeCache) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.resources))
	for name, h := range c.resources {
		out[name] = h.version
	}
	return out
}

// A server that publishes a sequence of models (most of them publishing
// only what changed in the shared resources) holds, after each, what a
// new server publishing only that model holds.
func TestIncrementalPublishMatchesFull(t *testing.T) {
	models := []*mesh.Model{
		benchModel(10, 10, 80),
		benchModel(12, 10, 50), // more services, a split change
		benchModel(8, 10, 30),  // fewer services
		benchModel(8, 15, 30),  // more identities
		benchModel(8, 5, 30),   // fewer identities
		benchModel(10, 10, 80),
	}
	for _, flavor := range []translate.Flavor{translate.FlavorGRPC, translate.FlavorEnvoy} {
		s, err := New(Options{Translate: translate.Options{Flavor: flavor}})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range models {
			if err := s.Update(m); err != nil {
				t.Fatal(err)
			}
			fresh, err := New(Options{Translate: translate.Options{Flavor: flavor}})
			if err != nil {
				t.Fatal(err)
			}
			if err := fresh.Update(m); err != nil {
				t.Fatal(err)
			}
			for _, id := range m.Identities {
				for _, typ := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType} {
					got, want := heldVersions(s.identities[id].caches[typ]), heldVersions(fresh.identities[id].caches[typ])
					if !maps.Equal(got, want) {
						t.Errorf("%s, model %d, %s, %s: holds %d resources, want %d (or other versions)", flavor, i, id, typ, len(got), len(want))
					}
				}
			}
			if got, want := heldVersions(s.eds), heldVersions(fresh.eds); !maps.Equal(got, want) {
				t.Errorf("%s, model %d: endpoints differ", flavor, i)
			}
		}
	}
}
