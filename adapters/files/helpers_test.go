package files

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshward/meshward/mesh"
)

// writeFiles writes files (slash-separated paths relative to dir) with
// their contents, creating directories as needed.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadDir writes files into a new directory and loads it.
func loadDir(t *testing.T, files map[string]string) (*Result, error) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return Load(dir, nil)
}

// mustContain fails unless s contains every one of wants.
func mustContain(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%q does not contain %q", s, w)
		}
	}
}

func ref(kind, ns, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}
