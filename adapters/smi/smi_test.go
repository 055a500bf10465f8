package smi

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

func marshalModel(t *testing.T, m *mesh.Model) []byte {
	t.Helper()
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeterministic checks that the order of the input objects does not
// change the model, for every golden case and a generated mesh.
func TestDeterministic(t *testing.T) {
	ins := golden.Inputs(t)
	cases := map[string]func(t *testing.T) (*snapshot.Snapshot, mesh.Options){
		"generated": func(*testing.T) (*snapshot.Snapshot, mesh.Options) {
			return generate(genConfig{Namespaces: 3, ServicesPerNS: 8, EndpointsPerService: 3, Targets: 20, Splits: 6}), mesh.DefaultOptions()
		},
	}
	for _, in := range ins {
		cases[golden.CaseName(in)] = func(t *testing.T) (*snapshot.Snapshot, mesh.Options) {
			return loadCase(t, in)
		}
	}
	for name, load := range cases {
		t.Run(name, func(t *testing.T) {
			s, opts := load(t)
			want := marshalModel(t, Translate(s, opts))
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			for range 5 {
				if got := marshalModel(t, Translate(golden.Shuffle(s, r), opts)); !bytes.Equal(got, want) {
					t.Fatalf("shuffled input gives another model:\n%s", golden.Diff(string(want), string(got)))
				}
			}
		})
	}
}

// TestTranslateLeavesSnapshotAlone checks that Translate does not modify
// its input, comparing it with an identical snapshot built separately.
func TestTranslateLeavesSnapshotAlone(t *testing.T) {
	path := filepath.Join("testdata", "bookstore_demo.in.yaml")
	small := genConfig{Namespaces: 2, ServicesPerNS: 4, EndpointsPerService: 3, Targets: 8, Splits: 2}
	for name, build := range map[string]func() *snapshot.Snapshot{
		"bookstore": func() *snapshot.Snapshot { s, _ := loadCase(t, path); return s },
		"generated": func() *snapshot.Snapshot { return generate(small) },
	} {
		s, pristine := build(), build()
		Translate(s, mesh.DefaultOptions())
		if !reflect.DeepEqual(s, pristine) {
			t.Errorf("%s: Translate modified the snapshot", name)
		}
	}
}

func TestTranslateNilSnapshot(t *testing.T) {
	m := Translate(nil, mesh.DefaultOptions())
	if m == nil || m.Options != mesh.DefaultOptions() || len(m.Namespaces)+len(m.Access)+len(m.Findings) != 0 {
		t.Fatalf("Translate(nil) = %+v, want an empty model with the options", m)
	}
}

// memberSnapshot returns a snapshot with one member namespace "ns" and the
// ServiceAccounts "client" and "server".
func memberSnapshot() *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{
			Name: "ns", Labels: map[string]string{mesh.NamespaceLabel: "meshward"},
		}}},
		ServiceAccounts: []corev1.ServiceAccount{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "client"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "server"}},
		},
	}
}

func targetWithRules(rules ...accessv1alpha3.TrafficTargetRule) accessv1alpha3.TrafficTarget {
	return accessv1alpha3.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "server"},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "client"}},
			Rules:       rules,
		},
	}
}

// TestUnknownMatchesNeverWiden checks that a rule whose named matches all
// fail to resolve allows nothing, rather than every match of the route.
func TestUnknownMatchesNeverWiden(t *testing.T) {
	group := specsv1alpha4.HTTPRouteGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "routes"},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{
			{Name: "get", Methods: []string{"GET"}},
			{Name: "bad", PathRegex: "(("},
		}},
	}
	tcp := specsv1alpha4.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"},
		Spec:       specsv1alpha4.TCPRouteSpec{Matches: specsv1alpha4.TCPMatch{Name: "db", Ports: []int{5432}}},
	}
	tests := map[string]struct {
		rule        accessv1alpha3.TrafficTargetRule
		wantReasons []string
	}{
		"unknown HTTP match": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "HTTPRouteGroup", Name: "routes", Matches: []string{"post"}},
			wantReasons: []string{ReasonInvalidRegex, ReasonUnknownMatch},
		},
		"empty HTTP match name": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "HTTPRouteGroup", Name: "routes", Matches: []string{""}},
			wantReasons: []string{ReasonInvalidRegex, ReasonUnknownMatch},
		},
		"invalid HTTP match": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "HTTPRouteGroup", Name: "routes", Matches: []string{"bad"}},
			wantReasons: []string{ReasonInvalidRegex},
		},
		"unknown group": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "HTTPRouteGroup", Name: "nope"},
			wantReasons: []string{ReasonInvalidRegex, ReasonUnknownRoute},
		},
		"unknown TCP match": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "TCPRoute", Name: "db", Matches: []string{"cache"}},
			wantReasons: []string{ReasonInvalidRegex, ReasonUnknownMatch},
		},
		"TCP route asked as UDP": {
			rule:        accessv1alpha3.TrafficTargetRule{Kind: "UDPRoute", Name: "db"},
			wantReasons: []string{ReasonInvalidRegex, ReasonUnknownRoute},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := memberSnapshot()
			s.HTTPRouteGroups = append(s.HTTPRouteGroups, group)
			s.TCPRoutes = append(s.TCPRoutes, tcp)
			s.TrafficTargets = append(s.TrafficTargets, targetWithRules(tc.rule))
			m := Translate(s, mesh.DefaultOptions())
			if len(m.Access) != 1 {
				t.Fatalf("got %d access rules, want 1", len(m.Access))
			}
			if a := m.Access[0]; len(a.HTTP)+len(a.TCP)+len(a.UDP) != 0 {
				t.Errorf("rule allows %+v, want nothing", a)
			}
			if got := reasons(m.Findings); !slices.Equal(got, tc.wantReasons) {
				t.Errorf("reasons = %v, want %v", got, tc.wantReasons)
			}
		})
	}
}

// reasons lists the findings' reasons, sorted.
func reasons(fs []mesh.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Reason)
	}
	slices.Sort(out)
	return out
}

func TestValidateTrafficTarget(t *testing.T) {
	sa := func(name, ns string) accessv1alpha3.IdentityBindingSubject {
		return accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: name, Namespace: ns}
	}
	httpRule := accessv1alpha3.TrafficTargetRule{Kind: "HTTPRouteGroup", Name: "routes"}
	tests := map[string]struct {
		spec accessv1alpha3.TrafficTargetSpec
		want []string
	}{
		"valid": {
			spec: accessv1alpha3.TrafficTargetSpec{Destination: sa("server", ""), Sources: []accessv1alpha3.IdentityBindingSubject{sa("client", "other")}, Rules: []accessv1alpha3.TrafficTargetRule{httpRule}},
		},
		"destination elsewhere": {
			spec: accessv1alpha3.TrafficTargetSpec{Destination: sa("server", "other"), Sources: []accessv1alpha3.IdentityBindingSubject{sa("client", "")}, Rules: []accessv1alpha3.TrafficTargetRule{httpRule}},
			want: []string{ReasonWrongNamespace},
		},
		"destination in own namespace spelled out": {
			spec: accessv1alpha3.TrafficTargetSpec{Destination: sa("server", "ns"), Sources: []accessv1alpha3.IdentityBindingSubject{sa("client", "")}, Rules: []accessv1alpha3.TrafficTargetRule{httpRule}},
		},
		"bad kinds": {
			spec: accessv1alpha3.TrafficTargetSpec{
				Destination: accessv1alpha3.IdentityBindingSubject{Kind: "Service", Name: "server"},
				Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "User", Name: "alice"}},
				Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: "HTTPRoute", Name: "r"}},
			},
			want: []string{ReasonNoSources, ReasonUnsupportedKind, ReasonUnsupportedKind, ReasonUnsupportedKind},
		},
		"empty": {
			spec: accessv1alpha3.TrafficTargetSpec{Destination: sa("server", "")},
			want: []string{ReasonNoRules, ReasonNoSources},
		},
		"missing names": {
			spec: accessv1alpha3.TrafficTargetSpec{
				Destination: sa("", ""),
				Sources:     []accessv1alpha3.IdentityBindingSubject{sa("", ""), sa("client", "")},
				Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: "TCPRoute"}},
			},
			want: []string{ReasonMissingName, ReasonMissingName, ReasonMissingName},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tt := &accessv1alpha3.TrafficTarget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t"}, Spec: tc.spec}
			if got := reasons(ValidateTrafficTarget(tt)); !slices.Equal(got, tc.want) {
				t.Errorf("reasons = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidateHTTPRouteGroup(t *testing.T) {
	tests := map[string]struct {
		matches []specsv1alpha4.HTTPMatch
		want    []string
	}{
		"valid": {matches: []specsv1alpha4.HTTPMatch{
			{Name: "a", Methods: []string{"get", "*"}, PathRegex: "/a(/.*)?", Headers: map[string]string{"X-A": "v[0-9]+"}},
		}},
		"no matches": {},
		"bad method": {
			matches: []specsv1alpha4.HTTPMatch{{Name: "a", Methods: []string{"GE T"}}},
			want:    []string{ReasonInvalidMethod},
		},
		"bad path regex": {
			matches: []specsv1alpha4.HTTPMatch{{Name: "a", PathRegex: "a**"}},
			want:    []string{ReasonInvalidRegex},
		},
		"bad header regex and name": {
			matches: []specsv1alpha4.HTTPMatch{{Name: "a", Headers: map[string]string{"x": "[", "y:": "1"}}},
			want:    []string{ReasonInvalidHeaderName, ReasonInvalidRegex},
		},
		"names": {
			matches: []specsv1alpha4.HTTPMatch{{Name: "a"}, {}, {Name: "a"}, {Name: "b"}},
			want:    []string{ReasonDuplicateMatchName, ReasonMissingName},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := &specsv1alpha4.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g"}, Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: tc.matches}}
			if got := reasons(ValidateHTTPRouteGroup(g)); !slices.Equal(got, tc.want) {
				t.Errorf("reasons = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHTTPGroupLookup(t *testing.T) {
	g := resolveHTTPGroup(&specsv1alpha4.HTTPRouteGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g"},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{
			{Name: "write", Methods: []string{"POST"}},
			{Name: "broken", PathRegex: "("},
			{Name: "read", Methods: []string{"GET"}},
			{Name: "write", Methods: []string{"PUT"}},
		}},
	}, nil, new(findings))
	tests := map[string]struct {
		index  int
		known  bool
		method string
	}{
		"read":    {index: 0, known: true, method: "GET"},
		"write":   {index: 1, known: true, method: "POST"},
		"broken":  {index: -1, known: true},
		"missing": {known: false},
	}
	for name, tc := range tests {
		i, known := g.lookup(name)
		if i != tc.index || known != tc.known {
			t.Errorf("lookup(%q) = %d, %v; want %d, %v", name, i, known, tc.index, tc.known)
			continue
		}
		if i >= 0 && known && g.matches[i].Methods[0] != tc.method {
			t.Errorf("lookup(%q) gives methods %v, want %s", name, g.matches[i].Methods, tc.method)
		}
	}
}

func TestValidatePortRoutes(t *testing.T) {
	tests := map[string]struct {
		ports []int
		want  []string
	}{
		"none":         {},
		"valid":        {ports: []int{1, 65535, 80, 80}},
		"zero":         {ports: []int{0}, want: []string{ReasonInvalidPort}},
		"out of range": {ports: []int{80, 65536, -1}, want: []string{ReasonInvalidPort, ReasonInvalidPort}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			meta := metav1.ObjectMeta{Namespace: "ns", Name: "r"}
			tcp := &specsv1alpha4.TCPRoute{ObjectMeta: meta, Spec: specsv1alpha4.TCPRouteSpec{Matches: specsv1alpha4.TCPMatch{Ports: tc.ports}}}
			udp := &specsv1alpha4.UDPRoute{ObjectMeta: meta, Spec: specsv1alpha4.UDPRouteSpec{Matches: specsv1alpha4.UDPMatch{Ports: tc.ports}}}
			for kind, fs := range map[string][]mesh.Finding{"TCPRoute": ValidateTCPRoute(tcp), "UDPRoute": ValidateUDPRoute(udp)} {
				if got := reasons(fs); !slices.Equal(got, tc.want) {
					t.Errorf("%s: reasons = %v, want %v", kind, got, tc.want)
				}
				for _, f := range fs {
					if f.Object.Kind != kind {
						t.Errorf("finding names %s, want a %s", f.Object, kind)
					}
				}
			}
		})
	}
}

func TestValidateTrafficSplit(t *testing.T) {
	b := func(svc string, w int) splitv1alpha4.TrafficSplitBackend {
		return splitv1alpha4.TrafficSplitBackend{Service: svc, Weight: w}
	}
	other := "gateway.networking.k8s.io"
	tests := map[string]struct {
		spec splitv1alpha4.TrafficSplitSpec
		want []string
	}{
		"valid": {spec: splitv1alpha4.TrafficSplitSpec{Service: "root", Backends: []splitv1alpha4.TrafficSplitBackend{b("v1", 1), b("v2", 0)}}},
		"fqdn in own namespace": {
			spec: splitv1alpha4.TrafficSplitSpec{Service: "root.ns.svc.cluster.local", Backends: []splitv1alpha4.TrafficSplitBackend{b("v1.ns", 1)}},
		},
		"fqdn elsewhere": {
			spec: splitv1alpha4.TrafficSplitSpec{Service: "root.other", Backends: []splitv1alpha4.TrafficSplitBackend{b("v1", 1)}},
			want: []string{ReasonForeignNamespace},
		},
		"no service": {
			spec: splitv1alpha4.TrafficSplitSpec{Backends: []splitv1alpha4.TrafficSplitBackend{b("v1", 1)}},
			want: []string{ReasonMissingName},
		},
		"no backends": {spec: splitv1alpha4.TrafficSplitSpec{Service: "root"}, want: []string{ReasonNoBackends}},
		"zero total": {
			spec: splitv1alpha4.TrafficSplitSpec{Service: "root", Backends: []splitv1alpha4.TrafficSplitBackend{b("v1", 0), b("v2", 0)}},
			want: []string{ReasonZeroTotalWeight},
		},
		"bad backends": {
			spec: splitv1alpha4.TrafficSplitSpec{Service: "root", Backends: []splitv1alpha4.TrafficSplitBackend{
				b("v1", -1), b("v2", 1<<31), b("v3", 1), b("v3", 2), b("", 1),
			}},
			want: []string{ReasonDuplicateBackend, ReasonInvalidWeight, ReasonInvalidWeight, ReasonMissingName},
		},
		"bad matches": {
			spec: splitv1alpha4.TrafficSplitSpec{
				Service: "root", Backends: []splitv1alpha4.TrafficSplitBackend{b("v1", 1)},
				Matches: []corev1.TypedLocalObjectReference{
					{Kind: "HTTPRouteGroup", Name: "ok"},
					{Kind: "TCPRoute", Name: "t"},
					{Kind: "HTTPRouteGroup", APIGroup: &other, Name: "g"},
					{Kind: "HTTPRouteGroup"},
				},
			},
			want: []string{ReasonMissingName, ReasonUnsupportedKind, ReasonUnsupportedKind},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ts := &splitv1alpha4.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: tc.spec}
			if got := reasons(ValidateTrafficSplit(ts)); !slices.Equal(got, tc.want) {
				t.Errorf("reasons = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsToken(t *testing.T) {
	tests := map[string]bool{
		"GET": true, "get": true, "PROPFIND": true, "M-SEARCH": true, "x-api_key.v1": true,
		"": false, "GET POST": false, "a:b": false, "(get)": false, "é": false, "a\tb": false,
	}
	for in, want := range tests {
		if got := isToken(in); got != want {
			t.Errorf("isToken(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestServiceName(t *testing.T) {
	tests := map[string]struct {
		name string
		warn bool
	}{
		"bookstore":                             {name: "bookstore"},
		"bookstore.ns":                          {name: "bookstore"},
		"bookstore.ns.svc.cluster.local":        {name: "bookstore"},
		"bookstore.other":                       {name: "bookstore", warn: true},
		"bookstore.other.svc.cluster.local":     {name: "bookstore", warn: true},
		"bookstore.":                            {name: "bookstore", warn: true},
		"bookstore.ns.svc.cluster.local.extra.": {name: "bookstore"},
	}
	for in, tc := range tests {
		var fs findings
		got := serviceName(ref(kindTrafficSplit, "ns", "s"), "spec.service", in, &fs)
		if got != tc.name || (len(fs) > 0) != tc.warn {
			t.Errorf("serviceName(%q) = %q with %d findings; want %q, warning %v", in, got, len(fs), tc.name, tc.warn)
		}
	}
}

// TestSplitRootMustExposePorts checks the port comparison: backends need
// every port number of the root; names, protocols and target ports do not
// matter, extra ports are fine.
func TestSplitRootMustExposePorts(t *testing.T) {
	svc := func(name string, ports ...int32) corev1.Service {
		s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p})
		}
		return s
	}
	tests := map[string]struct {
		root, backend []int32
		kept          bool
	}{
		"same":            {root: []int32{80}, backend: []int32{80}, kept: true},
		"extra":           {root: []int32{80}, backend: []int32{80, 9090}, kept: true},
		"missing":         {root: []int32{80, 443}, backend: []int32{80}},
		"none on root":    {root: nil, backend: []int32{80}, kept: true},
		"other":           {root: []int32{80}, backend: []int32{8080}},
		"none on backend": {root: []int32{80}, backend: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := memberSnapshot()
			s.Services = []corev1.Service{svc("root", tc.root...), svc("b", tc.backend...), svc("ok", tc.root...)}
			s.TrafficSplits = []splitv1alpha4.TrafficSplit{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
				Spec: splitv1alpha4.TrafficSplitSpec{Service: "root", Backends: []splitv1alpha4.TrafficSplitBackend{
					{Service: "b", Weight: 1}, {Service: "ok", Weight: 1},
				}},
			}}
			m := Translate(s, mesh.DefaultOptions())
			if len(m.Splits) != 1 {
				t.Fatalf("got %d splits, want 1", len(m.Splits))
			}
			kept := len(m.Splits[0].Backends) == 2
			if kept != tc.kept {
				t.Errorf("backend kept = %v, want %v (findings: %v)", kept, tc.kept, m.Findings)
			}
			if !kept && (len(m.Findings) != 1 || m.Findings[0].Reason != ReasonMissingPort) {
				t.Errorf("findings = %v, want one %s", m.Findings, ReasonMissingPort)
			}
		})
	}
}
