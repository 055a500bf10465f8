package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// BuildFunc turns a snapshot into a mesh model. It must be pure.
type BuildFunc func(*snapshot.Snapshot) *mesh.Model

// Options configure a Source.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Build translates snapshots into models.
	Build BuildFunc
	// Publish receives every new model, on every replica. It must not block
	// for long.
	Publish func(*mesh.Model)
	// PublishPolicies receives the user Rego modules of the ConfigMaps
	// labelled PolicyLabel (keys "<namespace>/<configmap>/<key>", for every
	// data key ending in .rego) whenever they change, and returns findings
	// about them (e.g. a module that does not compile), which are reported
	// like any other.
	PublishPolicies func(map[string]string) []mesh.Finding
	// Gateway, when set, runs the IngressGatewayDeployment controller on
	// the leader (when the servicemesh.oci.oracle.com CRDs are installed).
	Gateway *GatewayOptions
	// PolicyLabel selects the ConfigMaps holding user policies (default
	// "meshward.io/policy"; any value).
	PolicyLabel string
	// Debounce coalesces bursts of changes into one rebuild (default 100ms).
	Debounce time.Duration
	// MaxDelay bounds how long a continuous stream of changes can delay a
	// rebuild (default 1s).
	MaxDelay time.Duration

	// LeaderElection enables leader election; without it this replica
	// always writes Events.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease (default: the pod's namespace
	// in a cluster; required outside one).
	LeaderElectionNamespace string
	// LeaderElectionID names the Lease (default "meshward-leader").
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election
	// (controller-runtime's defaults when zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// Instance names this replica in Event annotations (default: hostname).
	Instance string
	// MetricsAddr serves Prometheus metrics ("0" disables; default "0").
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz ("0" or empty disables).
	HealthAddr string

	Log logr.Logger
}

// DefaultPolicyLabel selects the ConfigMaps that hold user Rego policies.
const DefaultPolicyLabel = "meshward.io/policy"

// EventInstanceAnnotation names the replica that wrote an Event.
const EventInstanceAnnotation = "meshward.io/instance"

// crdKinds are the custom kinds watched as unstructured objects.
var crdKinds = []schema.GroupVersionKind{
	{Group: "access.smi-spec.io", Version: "v1alpha3", Kind: "TrafficTarget"},
	{Group: "specs.smi-spec.io", Version: "v1alpha4", Kind: "HTTPRouteGroup"},
	{Group: "specs.smi-spec.io", Version: "v1alpha4", Kind: "TCPRoute"},
	{Group: "specs.smi-spec.io", Version: "v1alpha4", Kind: "UDPRoute"},
	{Group: "split.smi-spec.io", Version: "v1alpha4", Kind: "TrafficSplit"},
	{Group: "policy.openservicemesh.io", Version: "v1alpha1", Kind: "IngressBackend"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "Mesh"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "VirtualService"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "VirtualDeployment"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "VirtualDeploymentBinding"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "VirtualServiceRouteTable"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "IngressGateway"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "IngressGatewayDeployment"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "IngressGatewayRouteTable"},
	{Group: "servicemesh.oci.oracle.com", Version: "v1beta1", Kind: "AccessPolicy"},
}

// Source watches the cluster and keeps a mesh model.
type Source struct {
	opts    Options
	mgr     manager.Manager
	decoder *snapshot.Decoder
	log     logr.Logger

	changed chan struct{}
	current atomic.Pointer[build]

	mu       sync.Mutex
	watched  []schema.GroupVersionKind
	missing  []schema.GroupVersionKind
	builds   chan *build
	rebuilds atomic.Int64

	// oci collects the state of OCI-style objects during a list.
	oci map[mesh.ObjectRef]ociState

	// policies are the user modules last published, with their findings.
	policies        map[string]string
	policyFindings  []mesh.Finding
	policiesEverSet bool
}

// build is one rebuild's result with what the leader's writer needs.
type build struct {
	model *mesh.Model
	refs  map[mesh.ObjectRef]corev1.ObjectReference
	// policies are the user Rego modules of the policy ConfigMaps.
	policies map[string]string
	// ociStatus is the state of each servicemesh.oci.oracle.com object.
	ociStatus map[mesh.ObjectRef]ociState
	// ingressStatus is the status each IngressBackend has in the cluster.
	ingressStatus map[mesh.ObjectRef]policyv1alpha1.IngressBackendStatus
}

// New creates the manager and its watches. Call Start to run it.
func New(opts Options) (*Source, error) {
	if opts.Config == nil || opts.Build == nil {
		return nil, errors.New("kube source: Config and Build are required")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	if opts.PolicyLabel == "" {
		opts.PolicyLabel = DefaultPolicyLabel
	}
	if opts.LeaderElectionID == "" {
		opts.LeaderElectionID = "meshward-leader"
	}
	if opts.Instance == "" {
		opts.Instance, _ = os.Hostname()
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.HealthAddr == "0" {
		opts.HealthAddr = ""
	}
	policySelector, err := labels.Parse(opts.PolicyLabel)
	if err != nil {
		return nil, fmt.Errorf("policy label %q: %w", opts.PolicyLabel, err)
	}
	// The gateway controller reads only the Deployments and
	// HorizontalPodAutoscalers it creates, which carry the gateway label:
	// the cache holds those, not every one of the cluster.
	gatewayOwned, err := labels.Parse(servicemeshv1beta1.LabelIngressGatewayDeployment)
	if err != nil {
		return nil, err
	}
	scheme := snapshot.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mopts := manager.Options{
		Scheme:                        scheme,
		Logger:                        opts.Log,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}:                            {Transform: slimPod},
				&corev1.ConfigMap{}:                      {Label: policySelector},
				&appsv1.Deployment{}:                     {Label: gatewayOwned},
				&autoscalingv2.HorizontalPodAutoscaler{}: {Label: gatewayOwned},
			},
		},
	}
	if opts.LeaseDuration > 0 {
		mopts.LeaseDuration = &opts.LeaseDuration
	}
	if opts.RenewDeadline > 0 {
		mopts.RenewDeadline = &opts.RenewDeadline
	}
	if opts.RetryPeriod > 0 {
		mopts.RetryPeriod = &opts.RetryPeriod
	}
	mgr, err := manager.New(opts.Config, mopts)
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	s := &Source{
		opts:    opts,
		mgr:     mgr,
		decoder: snapshot.NewDecoder(),
		log:     opts.Log.WithName("kube"),
		changed: make(chan struct{}, 1),
		builds:  make(chan *build, 1),
	}
	if opts.Gateway != nil {
		gk := servicemeshv1beta1.SchemeGroupVersion.WithKind("IngressGatewayDeployment")
		if _, err := mgr.GetRESTMapper().RESTMapping(gk.GroupKind(), gk.Version); err != nil {
			s.log.Info("IngressGatewayDeployment CRD not installed; the gateway controller does not run", "error", err.Error())
		} else if err := SetupGatewayController(mgr, *opts.Gateway); err != nil {
			return nil, err
		}
	}
	if err := mgr.Add(everyReplica(s.runBuilder)); err != nil {
		return nil, err
	}
	w := &leaderWriter{
		client:   mgr.GetClient(),
		recorder: mgr.GetEventRecorder("meshward"),
		instance: opts.Instance,
		builds:   s.builds,
		log:      s.log.WithName("events"),
	}
	if err := mgr.Add(w); err != nil {
		return nil, err
	}
	if opts.HealthAddr != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("model", func(_ *http.Request) error {
			if s.current.Load() == nil {
				return errors.New("no mesh model built yet")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// everyReplica is a runnable that runs on every replica, leader or not.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every replica builds the model and serves.
func (f everyReplica) NeedLeaderElection() bool { return false }

// Start runs the manager until ctx is done.
func (s *Source) Start(ctx context.Context) error { return s.mgr.Start(ctx) }

// Elected is closed when this replica becomes the leader (at once without
// leader election).
func (s *Source) Elected() <-chan struct{} { return s.mgr.Elected() }

// Model returns the latest model, or nil before the first build.
func (s *Source) Model() *mesh.Model {
	if b := s.current.Load(); b != nil {
		return b.model
	}
	return nil
}

// Rebuilds returns how many models have been built.
func (s *Source) Rebuilds() int64 { return s.rebuilds.Load() }

// slimPod keeps only what meshward reads of a Pod, to keep the cache small.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Labels: pod.Labels, CreationTimestamp: pod.CreationTimestamp, DeletionTimestamp: pod.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{ServiceAccountName: pod.Spec.ServiceAccountName, NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs, Phase: pod.Status.Phase},
	}, nil
}

func (s *Source) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// watch registers event handlers for every kind; SMI kinds whose CRDs are
// not installed are reported and skipped.
func (s *Source) watch(ctx context.Context) error {
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.signal() },
		UpdateFunc: func(any, any) { s.signal() },
		DeleteFunc: func(any) { s.signal() },
	}
	typed := []client.Object{&corev1.Namespace{}, &corev1.ServiceAccount{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Pod{}, &corev1.ConfigMap{}}
	for _, obj := range typed {
		inf, err := s.mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	var watched, missing []schema.GroupVersionKind
	for _, gvk := range crdKinds {
		if _, err := s.mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			if meta.IsNoMatchError(err) {
				s.log.Info("CRD not installed; this kind is not watched (install the chart's CRDs and restart)", "kind", gvk.Kind, "apiVersion", gvk.GroupVersion().String())
				missing = append(missing, gvk)
				continue
			}
			return fmt.Errorf("looking up %s: %w", gvk, err)
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		inf, err := s.mgr.GetCache().GetInformer(ctx, u)
		if err != nil {
			return fmt.Errorf("watching %s: %w", gvk.Kind, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
		watched = append(watched, gvk)
	}
	s.mu.Lock()
	s.watched, s.missing = watched, missing
	s.mu.Unlock()
	return nil
}

// runBuilder rebuilds the model after changes, on every replica.
func (s *Source) runBuilder(ctx context.Context) error {
	if err := s.watch(ctx); err != nil {
		return err
	}
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	s.signal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		}
		if !s.debounce(ctx) {
			return nil
		}
		b, err := s.rebuild(ctx)
		if err != nil {
			s.log.Error(err, "rebuilding the mesh model; keeping the last good one")
			continue
		}
		s.publishPolicies(b)
		s.current.Store(b)
		s.rebuilds.Add(1)
		m := b.model
		s.log.Info("mesh model rebuilt", "namespaces", len(m.Namespaces), "identities", len(m.Identities),
			"services", len(m.Services), "accessRules", len(m.Access), "splits", len(m.Splits), "findings", len(m.Findings))
		if s.opts.Publish != nil {
			s.opts.Publish(m)
		}
		// Hand the newest build to the event writer, replacing an unread one.
		select {
		case <-s.builds:
		default:
		}
		s.builds <- b
	}
}

// publishPolicies hands changed user policies to PublishPolicies and adds
// the findings about them to the build.
func (s *Source) publishPolicies(b *build) {
	if s.opts.PublishPolicies == nil {
		return
	}
	if !s.policiesEverSet || !maps.Equal(s.policies, b.policies) {
		s.policies, s.policiesEverSet = b.policies, true
		s.policyFindings = s.opts.PublishPolicies(b.policies)
	}
	if len(s.policyFindings) > 0 {
		b.model.Findings = mesh.SortFindings(append(slices.Clone(b.model.Findings), s.policyFindings...))
	}
}

// debounce waits until no change arrived for Debounce, or MaxDelay passed.
func (s *Source) debounce(ctx context.Context) bool {
	deadline := time.NewTimer(s.opts.MaxDelay)
	defer deadline.Stop()
	quiet := time.NewTimer(s.opts.Debounce)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-quiet.C:
			return true
		case <-s.changed:
			quiet.Reset(s.opts.Debounce)
		}
	}
}
