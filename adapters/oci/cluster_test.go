package oci_test

import (
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/meshward/meshward/adapters/oci"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
)

// TestCRDs loads the generated CRDs into a real API server: manifests of
// every kind are accepted (with their status subresource and conditions),
// and what the schema forbids is rejected with a clear message.
func TestCRDs(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}

	// (a) The objects of the golden cases, as OCI Service Mesh users write
	// them, are accepted: every kind at least once.
	created := map[string]bool{}
	for _, name := range []string{"gateway_routes", "route_weights", "access_external_http", "access_ingress_gateway_source", "route_timeouts"} {
		s, _ := loadCase(t, filepath.Join("testdata", name+".in.yaml"))
		var objs []object
		objs = append(objs, ptrs(s.Meshes)...)
		objs = append(objs, ptrs(s.VirtualServices)...)
		objs = append(objs, ptrs(s.VirtualDeployments)...)
		objs = append(objs, ptrs(s.VirtualDeploymentBindings)...)
		objs = append(objs, ptrs(s.VirtualServiceRouteTables)...)
		objs = append(objs, ptrs(s.IngressGateways)...)
		objs = append(objs, ptrs(s.IngressGatewayDeployments)...)
		objs = append(objs, ptrs(s.IngressGatewayRouteTables)...)
		objs = append(objs, ptrs(s.AccessPolicies)...)
		for _, o := range objs {
			key := kindOf(o) + " " + o.GetName()
			if created[key] {
				continue
			}
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatalf("%s: creating %s: %v", name, key, err)
			}
			created[key] = true
			created[kindOf(o)] = true
		}
	}
	for _, kind := range []string{
		oci.KindMesh, oci.KindVirtualService, oci.KindVirtualDeployment, oci.KindVirtualDeploymentBinding,
		oci.KindVirtualServiceRouteTable, oci.KindIngressGateway, oci.KindIngressGatewayDeployment, oci.KindIngressGatewayRouteTable, oci.KindAccessPolicy,
	} {
		if !created[kind] {
			t.Errorf("no %s was created", kind)
		}
	}

	// The isGrpc default is applied by the API server.
	var vsrt servicemeshv1beta1.VirtualServiceRouteTable
	if err := env.Client.Get(ctx, key("backend-routes"), &vsrt); err != nil {
		t.Fatal(err)
	}
	if g := vsrt.Spec.RouteRules[0].HTTPRoute.IsGrpc; g == nil || *g {
		t.Errorf("isGrpc = %v, want the default false", g)
	}

	// The conditions Conditions computes are accepted by the status
	// subresource.
	var ap servicemeshv1beta1.AccessPolicy
	if err := env.Client.Get(ctx, key("egress"), &ap); err != nil {
		t.Fatal(err)
	}
	r := mesh.ObjectRef{Kind: oci.KindAccessPolicy, Namespace: "shop", Name: "egress"}
	fs := []mesh.Finding{{Object: r, Field: "spec.rules[0].source.virtualService.ref", Severity: mesh.SeverityError, Reason: oci.ReasonUnknownReference, Message: "VirtualService shop/x does not exist"}}
	for _, c := range oci.Conditions(r, fs, ap.Generation) {
		meta.SetStatusCondition(&ap.Status.Conditions, c)
	}
	if err := env.Client.Status().Update(ctx, &ap); err != nil {
		t.Fatalf("updating the status: %v", err)
	}
	if err := env.Client.Get(ctx, key("egress"), &ap); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(ap.Status.Conditions, servicemeshv1beta1.ConditionDependenciesActive); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("conditions after the update: %+v", ap.Status.Conditions)
	}

	// (b) Invalid objects are rejected, saying why.
	meshRef := servicemeshv1beta1.RefOrID{Ref: &servicemeshv1beta1.ResourceRef{Name: "shop-mesh"}}
	vsRef := func(name string) *servicemeshv1beta1.RefOrID {
		return &servicemeshv1beta1.RefOrID{Ref: &servicemeshv1beta1.ResourceRef{Name: name}}
	}
	cases := map[string]struct {
		obj  object
		want string
	}{
		"both ref and id": {
			&servicemeshv1beta1.VirtualService{
				ObjectMeta: metav1.ObjectMeta{Name: "both", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualServiceSpec{Mesh: servicemeshv1beta1.RefOrID{
					Ref: &servicemeshv1beta1.ResourceRef{Name: "shop-mesh"}, ID: "ocid1.mesh.oc1..x",
				}},
			},
			"exactly one of ref and id must be set",
		},
		"neither ref nor id": {
			&servicemeshv1beta1.VirtualService{
				ObjectMeta: metav1.ObjectMeta{Name: "neither", Namespace: "shop"},
				Spec:       servicemeshv1beta1.VirtualServiceSpec{Mesh: servicemeshv1beta1.RefOrID{}},
			},
			"exactly one of ref and id must be set",
		},
		"weight 150": {
			&servicemeshv1beta1.VirtualServiceRouteTable{
				ObjectMeta: metav1.ObjectMeta{Name: "heavy", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualServiceRouteTableSpec{
					VirtualService: *vsRef("backend"),
					RouteRules: []servicemeshv1beta1.VirtualServiceRouteRule{{TCPRoute: &servicemeshv1beta1.VirtualServiceRoute{
						Destinations: []servicemeshv1beta1.VirtualDeploymentTarget{{VirtualDeployment: *vsRef("backend-v1"), Weight: 150}},
					}}},
				},
			},
			"should be less than or equal to 100",
		},
		"priority 1001": {
			&servicemeshv1beta1.VirtualServiceRouteTable{
				ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualServiceRouteTableSpec{
					VirtualService: *vsRef("backend"), Priority: ptr.To[int32](1001),
					RouteRules: []servicemeshv1beta1.VirtualServiceRouteRule{{TCPRoute: &servicemeshv1beta1.VirtualServiceRoute{
						Destinations: []servicemeshv1beta1.VirtualDeploymentTarget{{VirtualDeployment: *vsRef("backend-v1"), Weight: 100}},
					}}},
				},
			},
			"should be less than or equal to 1000",
		},
		"two kinds of route": {
			&servicemeshv1beta1.VirtualServiceRouteTable{
				ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualServiceRouteTableSpec{
					VirtualService: *vsRef("backend"),
					RouteRules: []servicemeshv1beta1.VirtualServiceRouteRule{{
						TCPRoute:            &servicemeshv1beta1.VirtualServiceRoute{Destinations: []servicemeshv1beta1.VirtualDeploymentTarget{{VirtualDeployment: *vsRef("v1"), Weight: 1}}},
						TLSPassthroughRoute: &servicemeshv1beta1.VirtualServiceRoute{Destinations: []servicemeshv1beta1.VirtualDeploymentTarget{{VirtualDeployment: *vsRef("v1"), Weight: 1}}},
					}},
				},
			},
			"exactly one of httpRoute, tcpRoute and tlsPassthroughRoute must be set",
		},
		"bad mtls mode": {
			&servicemeshv1beta1.VirtualService{
				ObjectMeta: metav1.ObjectMeta{Name: "sometimes", Namespace: "shop"},
				Spec:       servicemeshv1beta1.VirtualServiceSpec{Mesh: meshRef, MTLS: &servicemeshv1beta1.VirtualServiceMTLS{Mode: "SOMETIMES"}},
			},
			`Unsupported value: "SOMETIMES"`,
		},
		"bad protocol": {
			&servicemeshv1beta1.VirtualDeployment{
				ObjectMeta: metav1.ObjectMeta{Name: "udp", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualDeploymentSpec{
					VirtualService: *vsRef("backend"),
					Listener:       []servicemeshv1beta1.Listener{{Protocol: "UDP", Port: 53}},
				},
			},
			`Unsupported value: "UDP"`,
		},
		"port 0": {
			&servicemeshv1beta1.VirtualDeployment{
				ObjectMeta: metav1.ObjectMeta{Name: "zero", Namespace: "shop"},
				Spec: servicemeshv1beta1.VirtualDeploymentSpec{
					VirtualService: *vsRef("backend"),
					Listener:       []servicemeshv1beta1.Listener{{Protocol: servicemeshv1beta1.ProtocolHTTP, Port: 0}},
				},
			},
			"should be greater than or equal to 1",
		},
		"rule with two sources": {
			&servicemeshv1beta1.AccessPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "two-sources", Namespace: "shop"},
				Spec: servicemeshv1beta1.AccessPolicySpec{Mesh: meshRef, Rules: []servicemeshv1beta1.AccessPolicyRule{{
					Action:      servicemeshv1beta1.ActionAllow,
					Source:      servicemeshv1beta1.TrafficSource{AllVirtualServices: &servicemeshv1beta1.AllVirtualServices{}, VirtualService: vsRef("frontend")},
					Destination: servicemeshv1beta1.TrafficDestination{VirtualService: vsRef("backend")},
				}}},
			},
			"a source sets exactly one of allVirtualServices, virtualService and ingressGateway",
		},
		"rule without destination": {
			&servicemeshv1beta1.AccessPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "nowhere", Namespace: "shop"},
				Spec: servicemeshv1beta1.AccessPolicySpec{Mesh: meshRef, Rules: []servicemeshv1beta1.AccessPolicyRule{{
					Action: servicemeshv1beta1.ActionAllow,
					Source: servicemeshv1beta1.TrafficSource{VirtualService: vsRef("frontend")},
				}}},
			},
			"a destination sets exactly one of allVirtualServices, virtualService and externalService",
		},
		"deny action": {
			&servicemeshv1beta1.AccessPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "deny", Namespace: "shop"},
				Spec: servicemeshv1beta1.AccessPolicySpec{Mesh: meshRef, Rules: []servicemeshv1beta1.AccessPolicyRule{{
					Action:      "DENY",
					Source:      servicemeshv1beta1.TrafficSource{VirtualService: vsRef("frontend")},
					Destination: servicemeshv1beta1.TrafficDestination{VirtualService: vsRef("backend")},
				}}},
			},
			`Unsupported value: "DENY"`,
		},
		"autoscaling bounds": {
			&servicemeshv1beta1.IngressGatewayDeployment{
				ObjectMeta: metav1.ObjectMeta{Name: "upside-down", Namespace: "shop"},
				Spec: servicemeshv1beta1.IngressGatewayDeploymentSpec{
					IngressGateway: *vsRef("shop-gateway"),
					Deployment:     servicemeshv1beta1.GatewayDeployment{Autoscaling: servicemeshv1beta1.Autoscaling{MinPods: 3, MaxPods: 1}},
					Ports:          []servicemeshv1beta1.GatewayPort{{Protocol: corev1.ProtocolTCP, Port: 8080}},
				},
			},
			"minPods must not exceed maxPods",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := env.Client.Create(ctx, c.obj)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("err = %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

// object is what the API client creates.
type object interface {
	metav1.Object
	runtime.Object
}

// ptrs returns pointers to the items of a slice, as objects.
func ptrs[T any, P interface {
	*T
	object
}](items []T) []object {
	out := make([]object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}

func key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "shop", Name: name}
}

func kindOf(o runtime.Object) string {
	switch o.(type) {
	case *servicemeshv1beta1.Mesh:
		return oci.KindMesh
	case *servicemeshv1beta1.VirtualService:
		return oci.KindVirtualService
	case *servicemeshv1beta1.VirtualDeployment:
		return oci.KindVirtualDeployment
	case *servicemeshv1beta1.VirtualDeploymentBinding:
		return oci.KindVirtualDeploymentBinding
	case *servicemeshv1beta1.VirtualServiceRouteTable:
		return oci.KindVirtualServiceRouteTable
	case *servicemeshv1beta1.IngressGateway:
		return oci.KindIngressGateway
	case *servicemeshv1beta1.IngressGatewayDeployment:
		return oci.KindIngressGatewayDeployment
	case *servicemeshv1beta1.IngressGatewayRouteTable:
		return oci.KindIngressGatewayRouteTable
	case *servicemeshv1beta1.AccessPolicy:
		return oci.KindAccessPolicy
	}
	return ""
}
