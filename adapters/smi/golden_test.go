package smi

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the translator's output and remove stale ones")

// TestGolden translates every testdata/<case>.in.yaml and compares the model
// with testdata/<case>.out.yaml.
func TestGolden(t *testing.T) {
	golden.Run(t, *update, func(t *testing.T, in string) []byte {
		s, opts := loadCase(t, in)
		got, err := yaml.Marshal(Translate(s, opts))
		if err != nil {
			t.Fatal(err)
		}
		return got
	})
}

// loadCase decodes a multi-document manifest into a snapshot. A first line
// "# options: key=value ..." changes the default options.
func loadCase(t testing.TB, path string) (*snapshot.Snapshot, mesh.Options) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := parseOptions(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s := golden.Decode(t, path, data)
	return s, opts
}

func parseOptions(data []byte) (mesh.Options, error) {
	opts := mesh.DefaultOptions()
	first, _, _ := strings.Cut(string(data), "\n")
	spec, ok := strings.CutPrefix(strings.TrimSpace(first), "# options:")
	if !ok {
		return opts, nil
	}
	for _, kv := range strings.Fields(spec) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return opts, fmt.Errorf("option %q is not key=value", kv)
		}
		var err error
		switch k {
		case "meshName":
			opts.MeshName = v
		case "trustDomain":
			opts.TrustDomain = v
		case "principalFormat":
			opts.PrincipalFormat = mesh.PrincipalFormat(v)
		case "pathMatch":
			opts.PathMatch = mesh.PathMatch(v)
		case "permissive":
			opts.Permissive, err = strconv.ParseBool(v)
		case "failOpen":
			opts.FailOpen, err = strconv.ParseBool(v)
		default:
			return opts, fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return opts, fmt.Errorf("option %s: %w", k, err)
		}
	}
	return opts, opts.Validate()
}
