// Package golden holds what the golden-file tests of meshward's translators
// share: running a subtest per case, splitting a multi-document manifest,
// decoding it into a snapshot (with shared "# include:" files), showing
// where an output differs from its golden file, and removing golden files
// whose input is gone. It is used by tests only.
package golden

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshward/meshward/snapshot"
)

// SplitDocuments splits YAML on lines that are exactly "---" and drops
// documents holding only comments and blank lines.
func SplitDocuments(data []byte) [][]byte {
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

// Decode decodes every document of a manifest into a snapshot, failing the
// test on any document it cannot decode; path names the file in messages.
func Decode(t testing.TB, path string, data []byte) *snapshot.Snapshot {
	t.Helper()
	return decode(t, path, data, false)
}

// DecodeKnown is Decode skipping the kinds a snapshot does not hold (such
// as the Deployments of an example directory).
func DecodeKnown(t testing.TB, path string, data []byte) *snapshot.Snapshot {
	t.Helper()
	return decode(t, path, data, true)
}

func decode(t testing.TB, path string, data []byte, skipUnknown bool) *snapshot.Snapshot {
	t.Helper()
	s := &snapshot.Snapshot{}
	dec := snapshot.NewDecoder()
	for i, doc := range SplitDocuments(data) {
		obj, fs, err := dec.Decode(doc)
		if skipUnknown && errors.Is(err, snapshot.ErrUnknownKind) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if err := s.Add(obj); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		s.Findings = append(s.Findings, fs...)
	}
	return s
}

// Diff lists the first 20 lines where got differs from want.
func Diff(want, got string) string {
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

// RemoveStaleOutputs removes testdata/<case>.out.yaml files whose
// <case>.in.yaml is not among ins.
func RemoveStaleOutputs(t testing.TB, ins []string) {
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

// WithIncludes returns data preceded by the files that its leading comment
// lines "# include: FILE" name (relative to the directory of path), each
// followed by a document separator, so that cases share common objects.
func WithIncludes(t testing.TB, path string, data []byte) []byte {
	t.Helper()
	var all []byte
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break
		}
		if file, ok := strings.CutPrefix(line, "# include:"); ok {
			inc, err := os.ReadFile(filepath.Join(filepath.Dir(path), strings.TrimSpace(file)))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			all = append(append(all, inc...), "\n---\n"...)
		}
	}
	return append(all, data...)
}

// Check compares got with the golden file at path, or with update writes
// it there instead.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the package's tests with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, Diff(string(want), string(got)))
	}
}

// Inputs returns the golden cases' inputs, testdata/<case>.in.yaml; a
// package without any fails the test.
func Inputs(t testing.TB) []string {
	t.Helper()
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 0 {
		t.Fatal("no golden cases in testdata")
	}
	return ins
}

// CaseName is the name of the golden case whose input is in.
func CaseName(in string) string { return strings.TrimSuffix(filepath.Base(in), ".in.yaml") }

// Run runs a subtest for every testdata/<case>.in.yaml: produce turns the
// input file into the output, which must equal testdata/<case>.out.yaml.
// With update, it writes the outputs instead, after removing those whose
// input is gone.
func Run(t *testing.T, update bool, produce func(t *testing.T, in string) []byte) {
	t.Helper()
	ins := Inputs(t)
	if update {
		RemoveStaleOutputs(t, ins)
	}
	for _, in := range ins {
		t.Run(CaseName(in), func(t *testing.T) {
			Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", produce(t, in), update)
		})
	}
}

// Shuffle returns a copy of s with every list in a random order: a
// translator's output must not depend on the order objects arrive in.
func Shuffle(s *snapshot.Snapshot, r *rand.Rand) *snapshot.Snapshot {
	c := *s
	c.Namespaces = shuffled(r, s.Namespaces)
	c.ServiceAccounts = shuffled(r, s.ServiceAccounts)
	c.Services = shuffled(r, s.Services)
	c.EndpointSlices = shuffled(r, s.EndpointSlices)
	c.Pods = shuffled(r, s.Pods)
	c.TrafficTargets = shuffled(r, s.TrafficTargets)
	c.HTTPRouteGroups = shuffled(r, s.HTTPRouteGroups)
	c.TCPRoutes = shuffled(r, s.TCPRoutes)
	c.UDPRoutes = shuffled(r, s.UDPRoutes)
	c.TrafficSplits = shuffled(r, s.TrafficSplits)
	c.IngressBackends = shuffled(r, s.IngressBackends)
	c.Meshes = shuffled(r, s.Meshes)
	c.VirtualServices = shuffled(r, s.VirtualServices)
	c.VirtualDeployments = shuffled(r, s.VirtualDeployments)
	c.VirtualDeploymentBindings = shuffled(r, s.VirtualDeploymentBindings)
	c.VirtualServiceRouteTables = shuffled(r, s.VirtualServiceRouteTables)
	c.IngressGateways = shuffled(r, s.IngressGateways)
	c.IngressGatewayDeployments = shuffled(r, s.IngressGatewayDeployments)
	c.IngressGatewayRouteTables = shuffled(r, s.IngressGatewayRouteTables)
	c.AccessPolicies = shuffled(r, s.AccessPolicies)
	c.Findings = shuffled(r, s.Findings)
	return &c
}

func shuffled[T any](r *rand.Rand, s []T) []T {
	c := slices.Clone(s)
	r.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c
}
