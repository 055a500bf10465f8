package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshward/meshward/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.json from the current output and remove stale ones")

// goldenDir compares outputs with the JSON files of one testdata
// directory. With -update it writes them and, at the end of the test,
// removes the files no case wrote.
type goldenDir struct {
	dir     string
	written []string
}

func newGoldenDir(t *testing.T, dir string) *goldenDir {
	t.Helper()
	g := &goldenDir{dir: filepath.Join("testdata", dir)}
	if *update {
		if err := os.MkdirAll(g.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.removeStale(t) })
	}
	return g
}

// check marshals v as indented JSON and compares it with <dir>/<name>.json.
func (g *goldenDir) check(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join(g.dir, name+".json")
	g.written = append(g.written, path)
	golden.Check(t, path, got, *update)
}

func (g *goldenDir) removeStale(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(g.dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.Contains(g.written, f) {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
}
