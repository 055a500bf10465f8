package kube_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/kube"
	"github.com/meshward/meshward/adapters/translate"
	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

const wait = 30 * time.Second

// runSource starts a Source and returns it with a function giving its
// latest published model. It stops when the returned cancel is called or
// the test ends.
func runSource(t *testing.T, env *testenv.Env, mutate func(*kube.Options)) (*kube.Source, func() *mesh.Model, context.CancelFunc) {
	t.Helper()
	var latest atomic.Pointer[mesh.Model]
	opts := kube.Options{
		Config:   env.Config,
		Build:    func(s *snapshot.Snapshot) *mesh.Model { return translate.Build(s, mesh.DefaultOptions()) },
		Publish:  latest.Store,
		Debounce: 20 * time.Millisecond,
		Log:      testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
	}
	if mutate != nil {
		mutate(&opts)
	}
	src, err := kube.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("source stopped with error: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return src, latest.Load, stop
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func meshNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{mesh.NamespaceLabel: "meshward"}}}
}

func sa(ns, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func service(ns, name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
	}
}

// obj builds an unstructured SMI object, so tests can send exactly the wire
// form users write.
func obj(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     spec,
	}}
	return u
}

func trafficTarget(ns, name, destNS string, sources ...string) *unstructured.Unstructured {
	var srcs []any
	for _, s := range sources {
		srcs = append(srcs, map[string]any{"kind": "ServiceAccount", "name": s, "namespace": s})
	}
	return obj("access.smi-spec.io/v1alpha3", "TrafficTarget", ns, name, map[string]any{
		"destination": map[string]any{"kind": "ServiceAccount", "name": "bookstore", "namespace": destNS},
		"sources":     srcs,
		"rules":       []any{map[string]any{"kind": "HTTPRouteGroup", "name": "routes"}},
	})
}

func findRule(m *mesh.Model, origin string) *mesh.AccessRule {
	if m == nil {
		return nil
	}
	for i := range m.Access {
		if m.Access[i].Origin.Name == origin {
			return &m.Access[i]
		}
	}
	return nil
}

func TestObjectsReachModel(t *testing.T) {
	env := testenv.Start(t)
	c := env.Client
	create(t, c, meshNamespace("bookstore"), meshNamespace("bookbuyer"), meshNamespace("bookthief"),
		sa("bookstore", "bookstore"), sa("bookbuyer", "bookbuyer"), sa("bookthief", "bookthief"),
		service("bookstore", "bookstore", 14001), service("bookstore", "bookstore-v1", 14001), service("bookstore", "bookstore-v2", 14001))

	_, model, _ := runSource(t, env, nil)

	// Headers in the plain-map form: accepted through the API server too.
	create(t, c, obj("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "bookstore", "routes", map[string]any{
		"matches": []any{
			map[string]any{"name": "books", "methods": []any{"GET"}, "pathRegex": "/books", "headers": map[string]any{"User-Agent": ".*Firefox.*"}},
		},
	}), trafficTarget("bookstore", "buyer", "bookstore", "bookbuyer"))

	testenv.Eventually(t, wait, func() error {
		r := findRule(model(), "buyer")
		if r == nil {
			return errors.New("TrafficTarget buyer not in the model")
		}
		if len(r.HTTP) != 1 || len(r.HTTP[0].Headers) != 1 || r.HTTP[0].Headers[0] != (mesh.HeaderMatch{Name: "user-agent", Regex: ".*Firefox.*"}) {
			return fmt.Errorf("unexpected HTTP matches %+v", r.HTTP)
		}
		if !slices.Equal(r.Sources, []mesh.Identity{{Namespace: "bookbuyer", Name: "bookbuyer"}}) {
			return fmt.Errorf("sources %v", r.Sources)
		}
		return nil
	})

	// An update is reflected.
	var tt unstructured.Unstructured
	tt.SetGroupVersionKind(trafficTarget("", "", "").GroupVersionKind())
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "bookstore", Name: "buyer"}, &tt); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(tt.Object, []any{
		map[string]any{"kind": "ServiceAccount", "name": "bookbuyer", "namespace": "bookbuyer"},
		map[string]any{"kind": "ServiceAccount", "name": "bookthief", "namespace": "bookthief"},
	}, "spec", "sources"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background(), &tt); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		r := findRule(model(), "buyer")
		if r == nil || len(r.Sources) != 2 {
			return fmt.Errorf("want 2 sources after the update, have %+v", r)
		}
		return nil
	})

	// A split, then a change of its weights.
	split := obj("split.smi-spec.io/v1alpha4", "TrafficSplit", "bookstore", "split", map[string]any{
		"service": "bookstore",
		"backends": []any{
			map[string]any{"service": "bookstore-v1", "weight": int64(80)},
			map[string]any{"service": "bookstore-v2", "weight": int64(20)},
		},
	})
	create(t, c, split)
	weights := func(want ...int32) func() error {
		return func() error {
			m := model()
			if m == nil || len(m.Splits) != 1 {
				return errors.New("no split in the model")
			}
			var got []int32
			for _, b := range m.Splits[0].Backends {
				got = append(got, b.Weight)
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("weights %v, want %v", got, want)
			}
			return nil
		}
	}
	testenv.Eventually(t, wait, weights(80, 20))
	if err := unstructured.SetNestedSlice(split.Object, []any{
		map[string]any{"service": "bookstore-v1", "weight": int64(10)},
		map[string]any{"service": "bookstore-v2", "weight": int64(90)},
	}, "spec", "backends"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, weights(10, 90))

	// Endpoints: a pod and its EndpointSlice give the service an identity.
	create(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bookstore", Name: "bookstore-v1-0"},
		Spec:       corev1.PodSpec{ServiceAccountName: "bookstore", Containers: []corev1.Container{{Name: "app", Image: "example.invalid/bookstore"}}},
	}, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "bookstore", Name: "bookstore-v1-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "bookstore-v1"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.1.0.7"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "bookstore", Name: "bookstore-v1-0"},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](14001)}},
	})
	testenv.Eventually(t, wait, func() error {
		for _, s := range model().Services {
			if s.Name == "bookstore-v1" && len(s.Endpoints) == 1 && s.Endpoints[0].Identity != nil &&
				*s.Endpoints[0].Identity == (mesh.Identity{Namespace: "bookstore", Name: "bookstore"}) {
				return nil
			}
		}
		return errors.New("endpoint 10.1.0.7 with identity bookstore/bookstore not in the model")
	})

	// A delete is reflected.
	if err := c.Delete(context.Background(), &tt); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if findRule(model(), "buyer") != nil {
			return errors.New("deleted TrafficTarget still in the model")
		}
		return nil
	})
}

// events returns the Events regarding the named object.
func events(t *testing.T, c client.Client, ns, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func eventFrom(t *testing.T, c client.Client, ns, name, reason, instance string) func() error {
	return func() error {
		for _, e := range events(t, c, ns, name) {
			if e.Reason == reason && e.Annotations[kube.EventInstanceAnnotation] == instance {
				return nil
			}
		}
		return fmt.Errorf("no %s Event from %s regarding %s/%s", reason, instance, ns, name)
	}
}

func TestInvalidObjectsGetEvents(t *testing.T) {
	env := testenv.Start(t)
	c := env.Client
	create(t, c, meshNamespace("bookstore"), meshNamespace("bookbuyer"), sa("bookstore", "bookstore"))
	_, model, _ := runSource(t, env, func(o *kube.Options) { o.Instance = "solo" })

	// A TrafficTarget outside its destination's namespace is ignored and gets an Event.
	create(t, c, trafficTarget("bookbuyer", "misplaced", "bookstore", "bookbuyer"))
	testenv.Eventually(t, wait, eventFrom(t, c, "bookbuyer", "misplaced", "WrongNamespace", "solo"))
	if findRule(model(), "misplaced") != nil {
		t.Fatal("a TrafficTarget in the wrong namespace must not grant access")
	}
	for _, e := range events(t, c, "bookbuyer", "misplaced") {
		if e.Type != corev1.EventTypeWarning || e.Regarding.Kind != "TrafficTarget" || e.Note == "" {
			t.Errorf("unexpected event %+v", e)
		}
	}

	// A header list item with two keys: the match is dropped and reported,
	// and the rest of the HTTPRouteGroups are still read.
	create(t, c, obj("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "bookstore", "bad-headers", map[string]any{
		"matches": []any{map[string]any{"name": "m", "headers": []any{map[string]any{"a": "1", "b": "2"}}}},
	}), obj("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "bookstore", "routes", map[string]any{
		"matches": []any{map[string]any{"name": "all", "pathRegex": "/"}},
	}), trafficTarget("bookstore", "buyer", "bookstore", "bookbuyer"))
	testenv.Eventually(t, wait, eventFrom(t, c, "bookstore", "bad-headers", "InvalidHeaders", "solo"))
	testenv.Eventually(t, wait, func() error {
		if r := findRule(model(), "buyer"); r == nil || len(r.HTTP) != 1 {
			return fmt.Errorf("TrafficTarget buyer not resolved: %+v", r)
		}
		return nil
	})
}

func TestOnlyTheLeaderWritesEvents(t *testing.T) {
	env := testenv.Start(t)
	c := env.Client
	create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshward-system"}},
		meshNamespace("bookstore"), meshNamespace("bookbuyer"), sa("bookstore", "bookstore"))
	elect := func(instance string) func(*kube.Options) {
		return func(o *kube.Options) {
			o.Instance = instance
			o.LeaderElection = true
			o.LeaderElectionNamespace = "meshward-system"
			o.LeaseDuration = 2 * time.Second
			o.RenewDeadline = time.Second
			o.RetryPeriod = 200 * time.Millisecond
		}
	}
	a, modelA, stopA := runSource(t, env, elect("replica-a"))
	select {
	case <-a.Elected():
	case <-time.After(wait):
		t.Fatal("replica-a was not elected")
	}
	b, modelB, _ := runSource(t, env, elect("replica-b"))

	create(t, c, trafficTarget("bookbuyer", "misplaced-1", "bookstore", "bookbuyer"))
	testenv.Eventually(t, wait, eventFrom(t, c, "bookbuyer", "misplaced-1", "WrongNamespace", "replica-a"))
	// Both replicas build the model; only the leader writes.
	hasFinding := func(model func() *mesh.Model, name string) func() error {
		return func() error {
			m := model()
			if m != nil {
				for _, f := range m.Findings {
					if f.Object.Name == name && f.Reason == "WrongNamespace" {
						return nil
					}
				}
			}
			return fmt.Errorf("finding for %s not in the model", name)
		}
	}
	testenv.Eventually(t, wait, hasFinding(modelA, "misplaced-1"))
	testenv.Eventually(t, wait, hasFinding(modelB, "misplaced-1"))
	time.Sleep(500 * time.Millisecond) // give a misbehaving follower the chance to write
	if err := eventFrom(t, c, "bookbuyer", "misplaced-1", "WrongNamespace", "replica-b")(); err == nil {
		t.Fatal("the follower replica-b wrote an Event")
	}
	select {
	case <-b.Elected():
		t.Fatal("replica-b elected while replica-a leads")
	default:
	}

	// The leader stops; the follower takes over and reports.
	stopA()
	select {
	case <-b.Elected():
	case <-time.After(wait):
		t.Fatal("replica-b did not take over")
	}
	create(t, c, trafficTarget("bookbuyer", "misplaced-2", "bookstore", "bookbuyer"))
	testenv.Eventually(t, wait, eventFrom(t, c, "bookbuyer", "misplaced-2", "WrongNamespace", "replica-b"))
}

func ingressBackend(name, backend string) *unstructured.Unstructured {
	return obj("policy.openservicemesh.io/v1alpha1", "IngressBackend", "bookstore", name, map[string]any{
		"backends": []any{map[string]any{"name": backend, "port": map[string]any{"number": int64(14001), "protocol": "http"}}},
		"sources":  []any{map[string]any{"kind": "IPRange", "name": "10.2.0.0/16"}},
	})
}

func TestIngressBackendStatus(t *testing.T) {
	env := testenv.Start(t)
	c := env.Client
	create(t, c, meshNamespace("bookstore"), service("bookstore", "bookstore", 14001))
	_, model, _ := runSource(t, env, nil)
	create(t, c, ingressBackend("good", "bookstore"), ingressBackend("bad", "no-such-service"))

	status := func(name string) (string, string) {
		var ib policyv1alpha1.IngressBackend
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "bookstore", Name: name}, &ib); err != nil {
			t.Fatal(err)
		}
		return ib.Status.CurrentStatus, ib.Status.Reason
	}
	testenv.Eventually(t, wait, func() error {
		if s, r := status("good"); s != "committed" {
			return fmt.Errorf("good: status %q (%s)", s, r)
		}
		if s, r := status("bad"); s != "error" || !strings.Contains(r, "backend") {
			return fmt.Errorf("bad: status %q (%s)", s, r)
		}
		return nil
	})
	if m := model(); m == nil || len(m.Ingress) != 1 || m.Ingress[0].Origin.Name != "good" {
		t.Fatalf("model ingress %+v", model().Ingress)
	}
}

func TestOCIStatusConditions(t *testing.T) {
	env := testenv.Start(t)
	c := env.Client
	create(t, c, meshNamespace("bookstore"))
	runSource(t, env, nil)
	create(t, c, obj("servicemesh.oci.oracle.com/v1beta1", "AccessPolicy", "bookstore", "dangling", map[string]any{
		"mesh": map[string]any{"ref": map[string]any{"name": "no-such-mesh"}},
		"rules": []any{map[string]any{
			"action":      "ALLOW",
			"source":      map[string]any{"allVirtualServices": map[string]any{}},
			"destination": map[string]any{"allVirtualServices": map[string]any{}},
		}},
	}))
	testenv.Eventually(t, wait, func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(obj("servicemesh.oci.oracle.com/v1beta1", "AccessPolicy", "", "", nil).GroupVersionKind())
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "bookstore", Name: "dangling"}, u); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, cond := range conds {
			m := cond.(map[string]any)
			if m["type"] == "ServiceMeshDependenciesActive" && m["status"] == "False" && strings.Contains(fmt.Sprint(m["message"]), "no-such-mesh") {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", conds)
	})
}
