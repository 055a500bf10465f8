package oci_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/adapters/oci"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the translator's output and remove stale ones")

// goldenView is the part of the model a golden file shows: what the OCI
// translator adds, every finding, and the status conditions of every
// object a finding is about.
type goldenView struct {
	Access          []mesh.AccessRule             `json:"access,omitempty"`
	Splits          []mesh.Split                  `json:"splits,omitempty"`
	VirtualServices []mesh.VirtualService         `json:"virtualServices,omitempty"`
	Gateways        []mesh.Gateway                `json:"gateways,omitempty"`
	Egress          []mesh.EgressRule             `json:"egress,omitempty"`
	Findings        []mesh.Finding                `json:"findings,omitempty"`
	Conditions      map[string][]metav1.Condition `json:"conditions,omitempty"`
}

func render(t testing.TB, m *mesh.Model) []byte {
	t.Helper()
	v := goldenView{
		Access: m.Access, Splits: m.Splits, VirtualServices: m.VirtualServices,
		Gateways: m.Gateways, Egress: m.Egress, Findings: m.Findings,
	}
	for _, f := range m.Findings {
		if !isOCIKind(f.Object.Kind) {
			continue
		}
		if v.Conditions == nil {
			v.Conditions = map[string][]metav1.Condition{}
		}
		v.Conditions[f.Object.String()] = oci.Conditions(f.Object, m.Findings, 1)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isOCIKind(kind string) bool {
	return slices.Contains([]string{
		oci.KindMesh, oci.KindVirtualService, oci.KindVirtualDeployment, oci.KindVirtualDeploymentBinding,
		oci.KindVirtualServiceRouteTable, oci.KindIngressGateway, oci.KindIngressGatewayDeployment,
		oci.KindIngressGatewayRouteTable, oci.KindAccessPolicy,
	}, kind)
}

// TestGolden translates every testdata/<case>.in.yaml (with the SMI and
// OSM translators first, as translate.Build does) and compares the result
// with testdata/<case>.out.yaml.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 0 {
		t.Fatal("no golden cases in testdata")
	}
	if *update {
		removeStaleOutputs(t, ins)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			s, opts := loadCase(t, in)
			got := render(t, translate.Build(s, opts))
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run go test ./adapters/oci -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("model differs from %s (run with -update to accept):\n%s", out, lineDiff(string(want), string(got)))
			}
		})
	}
}

func removeStaleOutputs(t *testing.T, ins []string) {
	t.Helper()
	outs, err := filepath.Glob(filepath.Join("testdata", "*.out.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool, len(ins))
	for _, in := range ins {
		have[strings.TrimSuffix(in, ".in.yaml")] = true
	}
	for _, out := range outs {
		if !have[strings.TrimSuffix(out, ".out.yaml")] {
			if err := os.Remove(out); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// loadCase decodes a multi-document manifest into a snapshot. Leading
// comment lines "# include: FILE" first load testdata/FILE (shared
// workloads); "# options: meshName=NAME" changes the mesh name.
func loadCase(t testing.TB, path string) (*snapshot.Snapshot, mesh.Options) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := mesh.DefaultOptions()
	var all []byte
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break
		}
		if file, ok := strings.CutPrefix(line, "# include:"); ok {
			inc, err := os.ReadFile(filepath.Join(filepath.Dir(path), strings.TrimSpace(file)))
			if err != nil {
				t.Fatal(err)
			}
			all = append(append(all, inc...), "\n---\n"...)
		}
		if spec, ok := strings.CutPrefix(line, "# options:"); ok {
			for _, kv := range strings.Fields(spec) {
				k, v, _ := strings.Cut(kv, "=")
				if k != "meshName" {
					t.Fatalf("%s: unknown option %q", path, k)
				}
				opts.MeshName = v
			}
		}
	}
	all = append(all, data...)
	s := &snapshot.Snapshot{}
	dec := snapshot.NewDecoder()
	for i, doc := range splitDocuments(all) {
		obj, fs, err := dec.Decode(doc)
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if err := s.Add(obj); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		s.Findings = append(s.Findings, fs...)
	}
	return s, opts
}

// splitDocuments splits YAML on lines that are exactly "---" and drops
// documents holding only comments and blank lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	flush := func() {
		for _, l := range cur {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, []byte(strings.Join(cur, "\n")))
				break
			}
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, "\r") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
