package oci_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	envoytranslate "github.com/meshward/meshward/adapters/envoy/translate"
	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/snapshot"
)

// load reads a directory of manifests with the files adapter.
func load(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	res, err := files.Load(dir, snapshot.NewDecoder())
	if err != nil {
		t.Fatalf("loading %s: %v", dir, err)
	}
	return res.Snapshot
}

// engine returns a policy engine serving the model of a snapshot.
func engine(t *testing.T, s *snapshot.Snapshot) (*policy.Engine, *mesh.Model) {
	t.Helper()
	m := translate.Build(s, mesh.DefaultOptions())
	e, err := policy.New(t.Context(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Update(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return e, m
}

// parityRequest is one request of the parity table, without its pair.
type parityRequest struct {
	name    string
	method  string
	path    string
	headers map[string]string
	tcp     bool
}

func (r parityRequest) request(src, dst string) policy.Request {
	p := func(id string) string { return "spiffe://cluster.local/ns/" + id }
	req := policy.Request{Source: p(src), Destination: p(dst), Port: 14001}
	if r.tcp {
		req.Protocol = policy.ProtocolTCP
		return req
	}
	req.Protocol, req.Method, req.Path, req.Headers = policy.ProtocolHTTP, r.method, r.path, r.headers
	return req
}

// TestParity checks that the SMI and OCI forms of the bookstore
// (examples/bookstore and examples/bookstore-oci) give the same decisions
// through the real policy engine, for what both can express.
//
// OCI access is per pair of services, without path rules, so the OCI form
// is compared two ways: request by request with an SMI form whose
// TrafficTargets allow everything between the same pairs
// (testdata/parity-smi, in place of the example's smi-access.yaml), and pair
// by pair with the example's own SMI form: a pair the SMI form allows
// anything to is allowed everything by the OCI form, and a pair the SMI
// form allows nothing to is allowed nothing.
func TestParity(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	smiSnap := load(t, filepath.Join(root, "examples", "bookstore"))
	ociSnap := load(t, filepath.Join(root, "examples", "bookstore-oci"))
	mirror := load(t, filepath.Join("testdata", "parity-smi"))
	mirrorSnap := *smiSnap
	mirrorSnap.TrafficTargets = mirror.TrafficTargets
	mirrorSnap.HTTPRouteGroups = slices.Concat(mirror.HTTPRouteGroups, canaryGroups(smiSnap))
	mirrorSnap.TCPRoutes = mirror.TCPRoutes

	smiEngine, smiModel := engine(t, smiSnap)
	ociEngine, ociModel := engine(t, ociSnap)
	mirrorEngine, mirrorModel := engine(t, &mirrorSnap)
	for name, m := range map[string]*mesh.Model{"SMI": smiModel, "OCI": ociModel, "mirrored SMI": mirrorModel} {
		if len(m.Findings) != 0 {
			t.Errorf("the %s form has findings: %v", name, m.Findings)
		}
	}
	if len(ociModel.Access) != 3 {
		t.Errorf("the OCI form has %d access rules, want 3 (bookbuyer to both bookstores, the bookstores to the bookwarehouse)", len(ociModel.Access))
	}
	checkSplitParity(t, smiModel, ociModel)

	ids := []string{"bookbuyer/sa/bookbuyer", "bookthief/sa/bookthief", "bookstore/sa/bookstore", "bookstore/sa/bookstore-v2", "bookwarehouse/sa/bookwarehouse"}
	requests := []parityRequest{
		{name: "GET /books-bought", method: "GET", path: "/books-bought"},
		{name: "GET /buy-a-book/new as bookbuyer", method: "GET", path: "/buy-a-book/new", headers: map[string]string{"User-Agent": "bookbuyer/1.0"}},
		{name: "POST /update-books-bought", method: "POST", path: "/update-books-bought"},
		{name: "POST /restock-books", method: "POST", path: "/restock-books"},
		{name: "TCP 14001", tcp: true},
	}
	ctx := t.Context()
	decide := func(e *policy.Engine, req policy.Request) policy.Decision {
		t.Helper()
		d, err := e.DecideRequest(ctx, req)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		return d
	}
	type pair struct{ src, dst string }
	smiAnyAllowed := map[pair]bool{}
	ociAllowed := map[pair][]bool{}
	n, allowed := 0, 0
	for _, src := range ids {
		for _, dst := range ids {
			for _, r := range requests {
				t.Run(fmt.Sprintf("%s to %s: %s", src, dst, r.name), func(t *testing.T) {
					req := r.request(src, dst)
					smi, oci, mirrored := decide(smiEngine, req), decide(ociEngine, req), decide(mirrorEngine, req)
					n++
					if oci.Allowed != mirrored.Allowed {
						t.Errorf("OCI form: allowed=%v (%s); mirrored SMI form: allowed=%v (%s)", oci.Allowed, oci.Reason, mirrored.Allowed, mirrored.Reason)
					}
					if oci.Allowed {
						allowed++
						if len(oci.Matched) == 0 || !strings.HasPrefix(oci.Matched[0], "AccessPolicy ") {
							t.Errorf("the OCI form allowed it because of %q, want an AccessPolicy", oci.Matched)
						}
					}
					p := pair{src, dst}
					smiAnyAllowed[p] = smiAnyAllowed[p] || smi.Allowed
					ociAllowed[p] = append(ociAllowed[p], oci.Allowed)
				})
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d requests compared", n)
	}
	if allowed == 0 || allowed == n {
		t.Fatalf("%d of %d requests allowed: the table does not test both answers", allowed, n)
	}
	for p, decisions := range ociAllowed {
		for i, ok := range decisions {
			if ok != smiAnyAllowed[p] {
				t.Errorf("%s to %s, %s: the OCI form allowed=%v, but the SMI form allows this pair %s", p.src, p.dst, requests[i].name, ok,
					map[bool]string{true: "some requests", false: "nothing"}[smiAnyAllowed[p]])
			}
		}
	}
}

// canaryGroups keeps the example's HTTPRouteGroups that its TrafficSplits
// use, so that the mirrored SMI form routes as the example does.
func canaryGroups(s *snapshot.Snapshot) []specsv1alpha4.HTTPRouteGroup {
	var out []specsv1alpha4.HTTPRouteGroup
	for _, g := range s.HTTPRouteGroups {
		if g.Name == "bookstore-canary-users" {
			out = append(out, g)
		}
	}
	return out
}

// checkSplitParity checks that the OCI route table splits the bookstore as
// the SMI TrafficSplit bookstore-split does.
func checkSplitParity(t *testing.T, smiModel, ociModel *mesh.Model) {
	t.Helper()
	root := mesh.ServiceKey{Namespace: "bookstore", Name: "bookstore"}
	find := func(m *mesh.Model) *mesh.Split {
		for i := range m.Splits {
			if m.Splits[i].Service == root {
				return &m.Splits[i]
			}
		}
		return nil
	}
	smiSplit, ociSplit := find(smiModel), find(ociModel)
	if smiSplit == nil || ociSplit == nil {
		t.Fatalf("bookstore splits: SMI %+v, OCI %+v", smiSplit, ociSplit)
	}
	if fmt.Sprint(smiSplit.Backends) != fmt.Sprint(ociSplit.Backends) || smiSplit.Matched != ociSplit.Matched {
		t.Errorf("the splits differ: SMI %+v, OCI %+v", *smiSplit, *ociSplit)
	}
}

// TestExampleXDS checks that the OCI example's model (access rules without
// constraints, a split from a route table) gives valid xDS resources for
// every identity, in both flavors.
func TestExampleXDS(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := translate.Build(load(t, filepath.Join(root, "examples", "bookstore-oci")), mesh.DefaultOptions())
	for _, flavor := range []envoytranslate.Flavor{envoytranslate.FlavorEnvoy, envoytranslate.FlavorGRPC} {
		for _, id := range m.Identities {
			res, err := envoytranslate.ForIdentity(m, id, envoytranslate.Options{Flavor: flavor})
			if err != nil {
				t.Fatalf("%s, %s: %v", flavor, id, err)
			}
			if err := envoytranslate.Validate(res.Messages()...); err != nil {
				t.Errorf("%s, %s: %v", flavor, id, err)
			}
		}
	}
}
