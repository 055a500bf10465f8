package xds

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/kube"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// podNet is the pod network of the cluster scenario. The API server
// refuses loopback endpoint addresses, so EndpointSlices list pods in
// podNet and the test maps it onto 127.0.0.0/24, where the pods listen.
const podNet = "10.255.0."

// clusterSource keeps the objects in a real API server.
type clusterSource struct{ c ctrlclient.Client }

// apply creates or updates every object of a manifest.
func (s clusterSource) apply(t *testing.T, _ string, manifest string) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewBufferString(manifest), 4096)
	ctx := context.Background()
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatalf("decoding a manifest: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		err := s.c.Get(ctx, ctrlclient.ObjectKeyFromObject(u), cur)
		switch {
		case apierrors.IsNotFound(err):
			err = s.c.Create(ctx, u)
		case err == nil:
			u.SetResourceVersion(cur.GetResourceVersion())
			err = s.c.Update(ctx, u)
		}
		if err != nil {
			t.Fatalf("applying %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
}

// toLoopback returns the model with the endpoint addresses in podNet
// moved to 127.0.0.0/24; the model it is given is left alone.
func toLoopback(m *mesh.Model) *mesh.Model {
	out := *m
	out.Services = make([]mesh.Service, len(m.Services))
	for i, svc := range m.Services {
		svc.Endpoints = append([]mesh.Endpoint(nil), svc.Endpoints...)
		for j := range svc.Endpoints {
			if rest, ok := strings.CutPrefix(svc.Endpoints[j].Address, podNet); ok {
				svc.Endpoints[j].Address = "127.0.0." + rest
			}
		}
		out.Services[i] = svc
	}
	return &out
}

// TestFromCluster runs the scenario on SMI objects in a real API server:
// the kube Source watches them and publishes every model to the xDS
// server.
func TestFromCluster(t *testing.T) {
	env := testenv.Start(t)
	w := newWorld(t)
	w.p.V1, w.p.V2 = podNet+"2", podNet+"3"
	src, err := kube.New(kube.Options{
		Config:   env.Config,
		Build:    func(s *snapshot.Snapshot) *mesh.Model { return translate.Build(s, mesh.DefaultOptions()) },
		Debounce: 20 * time.Millisecond,
		Log:      testr.NewWithOptions(t, testr.Options{Verbosity: 0}).WithName("kube"),
		Publish: func(m *mesh.Model) {
			if err := w.srv.Update(toLoopback(m)); err != nil {
				t.Errorf("publishing the model: %v", err)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kube source: %v", err)
		}
	})
	runScenario(t, w.world, clusterSource{c: env.Client})
}
