package oci_test

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/adapters/oci"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/golden"
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
	golden.Run(t, *update, func(t *testing.T, in string) []byte {
		s, opts := loadCase(t, in)
		return render(t, translate.Build(s, opts))
	})
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
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break
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
	all := golden.WithIncludes(t, path, data)
	s := golden.Decode(t, path, all)
	return s, opts
}
