package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// rebuild lists everything from the cache and translates it.
func (s *Source) rebuild(ctx context.Context) (*build, error) {
	snap, refs, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var cms corev1.ConfigMapList
	if err := s.mgr.GetCache().List(ctx, &cms); err != nil {
		return nil, fmt.Errorf("listing policy config maps: %w", err)
	}
	policies := map[string]string{}
	for i := range cms.Items {
		cm := &cms.Items[i]
		refs[mesh.ObjectRef{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name}] = corev1.ObjectReference{
			Kind: "ConfigMap", APIVersion: "v1", Namespace: cm.Namespace, Name: cm.Name, UID: cm.UID, ResourceVersion: cm.ResourceVersion,
		}
		for key, src := range cm.Data {
			if strings.HasSuffix(key, ".rego") {
				policies[cm.Namespace+"/"+cm.Name+"/"+key] = src
			}
		}
	}
	b := &build{
		model: s.opts.Build(snap), refs: refs, policies: policies,
		ingressStatus: map[mesh.ObjectRef]policyv1alpha1.IngressBackendStatus{},
		ociStatus:     s.takeOCI(),
	}
	for i := range snap.IngressBackends {
		ib := &snap.IngressBackends[i]
		b.ingressStatus[mesh.ObjectRef{Kind: "IngressBackend", Namespace: ib.Namespace, Name: ib.Name}] = ib.Status
	}
	return b, nil
}

// list reads a snapshot from the informer cache, with an object reference
// for every object so findings can be attached to Events.
func (s *Source) list(ctx context.Context) (*snapshot.Snapshot, map[mesh.ObjectRef]corev1.ObjectReference, error) {
	c := s.mgr.GetCache()
	snap := &snapshot.Snapshot{}
	refs := map[mesh.ObjectRef]corev1.ObjectReference{}
	remember := func(kind, apiVersion string, m metav1.Object) {
		refs[mesh.ObjectRef{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()}] = corev1.ObjectReference{
			Kind: kind, APIVersion: apiVersion, Namespace: m.GetNamespace(), Name: m.GetName(),
			UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		}
	}

	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return nil, nil, fmt.Errorf("listing namespaces: %w", err)
	}
	snap.Namespaces = nss.Items
	var sas corev1.ServiceAccountList
	if err := c.List(ctx, &sas); err != nil {
		return nil, nil, fmt.Errorf("listing service accounts: %w", err)
	}
	snap.ServiceAccounts = sas.Items
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return nil, nil, fmt.Errorf("listing services: %w", err)
	}
	snap.Services = svcs.Items
	for i := range svcs.Items {
		remember("Service", "v1", &svcs.Items[i])
	}
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices); err != nil {
		return nil, nil, fmt.Errorf("listing endpoint slices: %w", err)
	}
	snap.EndpointSlices = slices.Items
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	snap.Pods = pods.Items

	s.mu.Lock()
	watched := s.watched
	s.mu.Unlock()
	for _, gvk := range watched {
		var list unstructured.UnstructuredList
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, &list); err != nil {
			return nil, nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			remember(gvk.Kind, gvk.GroupVersion().String(), u)
			if gvk.Group == servicemeshv1beta1.GroupName {
				s.rememberOCI(gvk, u)
			}
			ref := mesh.ObjectRef{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
			raw, err := json.Marshal(u.Object)
			if err != nil {
				snap.Findings = append(snap.Findings, decodeFinding(ref, err))
				continue
			}
			obj, findings, err := s.decoder.Decode(raw)
			if err != nil {
				snap.Findings = append(snap.Findings, decodeFinding(ref, err))
				continue
			}
			snap.Findings = append(snap.Findings, findings...)
			if err := snap.Add(obj); err != nil {
				return nil, nil, err
			}
		}
	}
	return snap, refs, nil
}

func decodeFinding(ref mesh.ObjectRef, err error) mesh.Finding {
	return mesh.Finding{
		Object: ref, Severity: mesh.SeverityError, Reason: "InvalidObject",
		Message: fmt.Sprintf("cannot be read: %v; the object is ignored", err),
	}
}
