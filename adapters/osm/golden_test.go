package osm

import (
	"flag"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/adapters/smi"
	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the translator's output and remove stale ones")

// goldenView is the part of the model a golden file shows: the ingress and
// every finding (the services it was resolved against are in the input).
type goldenView struct {
	Ingress  []mesh.IngressBackend `json:"ingress,omitempty"`
	Findings []mesh.Finding        `json:"findings,omitempty"`
}

// build runs the SMI translator, then Translate, as translate.Build does.
func build(s *snapshot.Snapshot, opts mesh.Options) *mesh.Model {
	m := smi.Translate(s, opts)
	Translate(s, m)
	return m
}

func render(t testing.TB, m *mesh.Model) []byte {
	t.Helper()
	b, err := yaml.Marshal(goldenView{Ingress: m.Ingress, Findings: m.Findings})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden translates every testdata/<case>.in.yaml and compares the
// ingress and findings with testdata/<case>.out.yaml.
func TestGolden(t *testing.T) {
	golden.Run(t, *update, func(t *testing.T, in string) []byte {
		s, opts := loadCase(t, in)
		return render(t, build(s, opts))
	})
}

// loadCase decodes a multi-document manifest into a snapshot. A first line
// "# options: meshName=NAME" changes the mesh name.
func loadCase(t testing.TB, path string) (*snapshot.Snapshot, mesh.Options) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := mesh.DefaultOptions()
	first, _, _ := strings.Cut(string(data), "\n")
	if spec, ok := strings.CutPrefix(strings.TrimSpace(first), "# options:"); ok {
		for _, kv := range strings.Fields(spec) {
			k, v, _ := strings.Cut(kv, "=")
			if k != "meshName" {
				t.Fatalf("%s: unknown option %q", path, k)
			}
			opts.MeshName = v
		}
	}
	s := golden.Decode(t, path, data)
	return s, opts
}
