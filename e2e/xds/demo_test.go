package xds

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
)

var update = flag.Bool("update", false, "rewrite "+demoDir+" from the scenario's manifests")

const (
	// demoDir holds the scenario's manifests for `make demo`.
	demoDir = "examples/bookstore-grpc"
	// demoPort is where the demo's pods serve, at 127.0.0.2 and 127.0.0.3.
	demoPort = 14001
)

const demoHeader = `# The scenario of meshward's end-to-end xDS tests (e2e/xds), which
# ` + "`make demo`" + ` serves. Generated from e2e/xds/manifests_test.go by
#   go test ./e2e/xds -run TestDemoIsTheScenario -update
# Do not edit: change the templates and regenerate.
`

// TestDemoIsTheScenario checks that the directory `make demo` serves holds
// the manifests TestFromDirectory runs, with the pods on port demoPort
// (the test picks a free port instead), and that they load without
// findings. With -update it rewrites the directory.
func TestDemoIsTheScenario(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, demoDir)
	m := manifests(scenarioParams(demoPort))
	for _, f := range manifestFiles {
		path := filepath.Join(dir, f+".yaml")
		want := demoHeader + m[f]
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is not the scenario's %s manifest (%v): run go test ./e2e/xds -run TestDemoIsTheScenario -update", path, f, err)
		}
	}
	yamls, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range yamls {
		if name := strings.TrimSuffix(filepath.Base(y), ".yaml"); !slices.Contains(manifestFiles, name) {
			if *update {
				if err := os.Remove(y); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s is not part of the scenario: run go test ./e2e/xds -run TestDemoIsTheScenario -update", y)
		}
	}

	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if got := regexp.MustCompile(`(?m)^DEMO_DIR\s*\?=\s*(\S+)`).FindSubmatch(makefile); got == nil || string(got[1]) != demoDir {
		t.Errorf("make demo does not serve %s (DEMO_DIR: %q)", demoDir, got)
	}

	res, err := files.Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	model := translate.Build(res.Snapshot, mesh.DefaultOptions())
	for _, f := range model.Findings {
		t.Errorf("finding in %s: %s", demoDir, f)
	}
	if len(model.Identities) != 4 || len(model.Splits) != 2 || len(model.Access) == 0 {
		t.Errorf("model of %s: %d identities, %d splits, %d access rules; want 4, 2 and some", demoDir, len(model.Identities), len(model.Splits), len(model.Access))
	}
}
