package osm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// TestDeterministic checks that the order of the input objects does not
// change the result, for every golden case.
func TestDeterministic(t *testing.T) {
	ins := golden.Inputs(t)
	for _, in := range ins {
		t.Run(golden.CaseName(in), func(t *testing.T) {
			s, opts := loadCase(t, in)
			want := render(t, build(s, opts))
			r := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				if got := render(t, build(golden.Shuffle(s, r), opts)); !bytes.Equal(got, want) {
					t.Fatalf("a shuffled snapshot gives a different result:\n%s", golden.Diff(string(want), string(got)))
				}
			}
		})
	}
}

// TestTranslateLeavesSnapshotAlone checks that Translate does not modify the
// snapshot and that a model without IngressBackends is left as it was.
func TestTranslateLeavesSnapshotAlone(t *testing.T) {
	s, opts := loadCase(t, filepath.Join("testdata", "multiple_backends.in.yaml"))
	before := deepCopyBackends(s.IngressBackends)
	build(s, opts)
	for i := range before {
		if !reflect.DeepEqual(before[i], s.IngressBackends[i]) {
			t.Fatalf("IngressBackend %d was modified", i)
		}
	}

	m := &mesh.Model{Options: opts, Findings: []mesh.Finding{{Reason: "Kept"}}}
	Translate(&snapshot.Snapshot{}, m)
	Translate(nil, m)
	Translate(s, nil)
	if m.Ingress != nil || len(m.Findings) != 1 {
		t.Fatalf("model changed without IngressBackends: %+v", m)
	}
}

func deepCopyBackends(in []policyv1alpha1.IngressBackend) []policyv1alpha1.IngressBackend {
	out := make([]policyv1alpha1.IngressBackend, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

// ib builds an IngressBackend in namespace bookstore.
func ib(backends []policyv1alpha1.BackendSpec, sources ...policyv1alpha1.IngressSourceSpec) *policyv1alpha1.IngressBackend {
	return &policyv1alpha1.IngressBackend{
		ObjectMeta: metav1.ObjectMeta{Name: "ib", Namespace: "bookstore"},
		Spec:       policyv1alpha1.IngressBackendSpec{Backends: backends, Sources: sources},
	}
}

func be(name string, port int32, proto string, tls *policyv1alpha1.TLSSpec) policyv1alpha1.BackendSpec {
	return policyv1alpha1.BackendSpec{Name: name, Port: policyv1alpha1.PortSpec{Number: port, Protocol: proto}, TLS: tls}
}

func src(kind, name string) policyv1alpha1.IngressSourceSpec {
	return policyv1alpha1.IngressSourceSpec{Kind: kind, Name: name}
}

func TestValidateIngressBackend(t *testing.T) {
	http := []policyv1alpha1.BackendSpec{be("bookstore", 14001, "http", nil)}
	https := []policyv1alpha1.BackendSpec{be("bookstore", 14001, "https", nil)}
	cidr := src(policyv1alpha1.KindIPRange, "10.0.0.0/8")
	principal := src(policyv1alpha1.KindAuthenticatedPrincipal, "nginx.ingress.cluster.local")
	svc := src(policyv1alpha1.KindService, "nginx")

	// want lists "field Reason" for each finding, in order.
	cases := map[string]struct {
		obj  *policyv1alpha1.IngressBackend
		want []string
	}{
		"valid http":                 {ib(http, cidr, svc), nil},
		"valid https with principal": {ib(https, svc, principal), nil},
		"https with principal only":  {ib(https, principal), nil},
		"upper-case protocol":        {ib([]policyv1alpha1.BackendSpec{be("bookstore", 1, "HTTP", nil)}, cidr), nil},
		"IPv6 range":                 {ib(http, src(policyv1alpha1.KindIPRange, "2001:db8::/48")), nil},
		"no backends and no sources": {ib(nil), []string{"spec.backends NoBackends", "spec.sources NoSources"}},
		"port above range":           {ib([]policyv1alpha1.BackendSpec{be("bookstore", 65536, "http", nil)}, cidr), []string{"spec.backends NothingAdmitted", "spec.backends[0].port.number InvalidPort"}},
		"invalid CIDR":               {ib(http, src(policyv1alpha1.KindIPRange, "10.0.0.0/40"), cidr), []string{"spec.sources[0].name InvalidCIDR"}},
		"only invalid CIDR":          {ib(https, src(policyv1alpha1.KindIPRange, "10.0.0.0/40"), principal), []string{"spec.sources NothingAdmitted", "spec.sources[0].name InvalidCIDR"}},
		"non-canonical CIDR":         {ib(http, src(policyv1alpha1.KindIPRange, "10.1.2.3/8")), []string{"spec.sources[0].name NonCanonicalCIDR"}},
		"principal on http":          {ib(http, cidr, principal), []string{"spec.sources[1] PrincipalNotChecked"}},
		"principal only on http":     {ib(http, principal), []string{"spec.backends[0] NoAddressSource", "spec.sources[0] PrincipalNotChecked"}},
		"principal on skip":          {ib([]policyv1alpha1.BackendSpec{be("bookstore", 1, "https", &policyv1alpha1.TLSSpec{SkipClientCertValidation: true})}, svc, principal), []string{"spec.sources[1] PrincipalNotChecked"}},
		"mixed backends":             {ib(append(slices.Clone(http), be("reviews", 8443, "https", nil)), svc, principal), []string{"spec.backends[0] PrincipalNotChecked"}},
		"duplicate backend":          {ib(append(slices.Clone(http), https...), cidr), []string{"spec.backends[1] DuplicateBackend"}},
		"tls on http":                {ib([]policyv1alpha1.BackendSpec{be("bookstore", 1, "http", &policyv1alpha1.TLSSpec{SNIHosts: []string{"a"}})}, cidr), []string{"spec.backends[0].tls TLSIgnored"}},
		"empty tls on http is fine":  {ib([]policyv1alpha1.BackendSpec{be("bookstore", 1, "http", &policyv1alpha1.TLSSpec{})}, cidr), nil},
		"invalid CIDR and principal on http": {
			ib(http, src(policyv1alpha1.KindIPRange, "10.0.0.0/40"), principal),
			[]string{"spec.sources NothingAdmitted", "spec.sources[0].name InvalidCIDR", "spec.sources[1] PrincipalNotChecked"},
		},
		"unsupported kind":            {ib(http, src("ServiceAccount", "nginx"), cidr), []string{"spec.sources[0].kind UnsupportedKind"}},
		"every source unsupported":    {ib(http, src("Pod", "nginx")), []string{"spec.sources NothingAdmitted", "spec.sources[0].kind UnsupportedKind"}},
		"protocol neither http/https": {ib([]policyv1alpha1.BackendSpec{be("bookstore", 1, "tcp", nil)}, cidr), []string{"spec.backends NothingAdmitted", "spec.backends[0].port.protocol InvalidProtocol"}},
		"empty principal on https": {
			ib(append(slices.Clone(https), be("bookstore", 2, "http", nil)), cidr, src(policyv1alpha1.KindAuthenticatedPrincipal, "")),
			[]string{"spec.backends[0] NothingAdmitted", "spec.sources[1].name MissingName"},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, f := range ValidateIngressBackend(c.obj) {
				got = append(got, f.Field+" "+f.Reason)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("findings = %q, want %q", got, c.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	ref := mesh.ObjectRef{Kind: kindIngressBackend, Namespace: "bookstore", Name: "ib"}
	other := mesh.ObjectRef{Kind: kindIngressBackend, Namespace: "bookstore", Name: "other"}
	warn := mesh.Finding{Object: ref, Field: "spec.sources[0].name", Severity: mesh.SeverityWarning, Reason: ReasonNoEndpoints, Message: "w"}
	errA := mesh.Finding{Object: ref, Field: "spec.backends[0].name", Severity: mesh.SeverityError, Reason: ReasonUnknownService, Message: "a"}
	errB := mesh.Finding{Object: ref, Severity: mesh.SeverityError, Reason: ReasonNothingAdmitted, Message: "b"}
	foreign := mesh.Finding{Object: other, Severity: mesh.SeverityError, Reason: ReasonNoSources, Message: "x"}

	cases := map[string]struct {
		fs   []mesh.Finding
		want policyv1alpha1.IngressBackendStatus
	}{
		"no findings":      {nil, policyv1alpha1.IngressBackendStatus{CurrentStatus: "committed", Reason: "enforced by meshward"}},
		"other object":     {[]mesh.Finding{foreign}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "committed", Reason: "enforced by meshward"}},
		"warning":          {[]mesh.Finding{warn}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "committed", Reason: "enforced by meshward, with warnings: spec.sources[0].name: w"}},
		"error":            {[]mesh.Finding{warn, errA}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "error", Reason: "spec.backends[0].name: a"}},
		"errors":           {[]mesh.Finding{errA, errB}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "error", Reason: "spec.backends[0].name: a (and 1 more error)"}},
		"error, no field":  {[]mesh.Finding{errB, errA, errA, foreign}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "error", Reason: "b (and 2 more errors)"}},
		"warnings counted": {[]mesh.Finding{warn, warn}, policyv1alpha1.IngressBackendStatus{CurrentStatus: "committed", Reason: "enforced by meshward, with warnings: spec.sources[0].name: w (and 1 more warning)"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Status(ref, c.fs); got != c.want {
				t.Errorf("Status = %+v, want %+v", got, c.want)
			}
		})
	}
}

const manifest = `apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata:
  name: bookstore
spec:
  backends:
  - name: bookstore
    port:
      number: 14001
      protocol: https
    tls:
      skipClientCertValidation: false
      sniHosts: [bookstore.example.com]
  sources:
  - kind: Service
    name: ingress-nginx-controller
    namespace: ingress-nginx
  - kind: IPRange
    name: 10.0.0.0/8
  - kind: AuthenticatedPrincipal
    name: ingress-nginx.ingress-nginx.cluster.local
  matches:
  - apiGroup: specs.smi-spec.io
    kind: HTTPRouteGroup
    name: bookstore-routes
status:
  currentStatus: committed
  reason: ok
`

// TestDecode checks that an IngressBackend manifest goes through the
// snapshot decoder, strictly, and into a snapshot.
func TestDecode(t *testing.T) {
	dec := snapshot.NewDecoder()
	obj, fs, err := dec.Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Fatalf("unexpected findings: %v", fs)
	}
	got, ok := obj.(*policyv1alpha1.IngressBackend)
	if !ok {
		t.Fatalf("decoded a %T", obj)
	}
	if got.Namespace != snapshot.DefaultNamespace {
		t.Errorf("namespace = %q, want the default", got.Namespace)
	}
	spec := got.Spec
	if len(spec.Backends) != 1 || spec.Backends[0].Port.Number != 14001 || spec.Backends[0].Port.Protocol != "https" ||
		spec.Backends[0].TLS == nil || !slices.Equal(spec.Backends[0].TLS.SNIHosts, []string{"bookstore.example.com"}) {
		t.Errorf("backends = %+v", spec.Backends)
	}
	if len(spec.Sources) != 3 || spec.Sources[0].Namespace != "ingress-nginx" || spec.Sources[2].Kind != policyv1alpha1.KindAuthenticatedPrincipal {
		t.Errorf("sources = %+v", spec.Sources)
	}
	if len(spec.Matches) != 1 || spec.Matches[0].APIGroup == nil || *spec.Matches[0].APIGroup != "specs.smi-spec.io" {
		t.Errorf("matches = %+v", spec.Matches)
	}
	if got.Status.CurrentStatus != policyv1alpha1.StatusCommitted {
		t.Errorf("status = %+v", got.Status)
	}

	var s snapshot.Snapshot
	if err := s.Add(obj); err != nil {
		t.Fatal(err)
	}
	if len(s.IngressBackends) != 1 || s.Len() != 1 {
		t.Errorf("snapshot holds %d IngressBackends, %d objects", len(s.IngressBackends), s.Len())
	}

	// Unknown fields are reported and the object is kept.
	obj, fs, err = dec.Decode([]byte(strings.Replace(manifest, "      number: 14001", "      number: 14001\n      name: web", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.(*policyv1alpha1.IngressBackend); !ok || len(fs) != 1 || fs[0].Reason != "UnknownField" {
		t.Errorf("unknown field: object %T, findings %v", obj, fs)
	}

	// Another version of the group is not read.
	_, _, err = dec.Decode([]byte(strings.Replace(manifest, "v1alpha1", "v1alpha2", 1)))
	if !errors.Is(err, snapshot.ErrUnknownKind) {
		t.Errorf("v1alpha2: err = %v, want ErrUnknownKind", err)
	}
}
