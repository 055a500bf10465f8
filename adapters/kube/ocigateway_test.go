package kube_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshward/meshward/adapters/kube"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/snapshot"
)

// TestGatewayController runs the IngressGatewayDeployment controller
// against a real API server: it creates the ServiceAccount, Deployment,
// HorizontalPodAutoscaler and Service, owned by the IngressGatewayDeployment,
// and updates them when its spec changes.
func TestGatewayController(t *testing.T) {
	env := testenv.Start(t)
	scheme := snapshot.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  scheme,
		Logger:  testr.New(t),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.SetupGatewayController(mgr, kube.GatewayOptions{Image: "example.com/gateway:1", Args: []string{"--gateway"}, SkipNameValidation: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	igd := &servicemeshv1beta1.IngressGatewayDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ingress", Namespace: "shop"},
		Spec: servicemeshv1beta1.IngressGatewayDeploymentSpec{
			IngressGateway: servicemeshv1beta1.RefOrID{Ref: &servicemeshv1beta1.ResourceRef{Name: "shop-gateway"}},
			Deployment: servicemeshv1beta1.GatewayDeployment{
				Autoscaling: servicemeshv1beta1.Autoscaling{MinPods: 2, MaxPods: 4},
				Labels:      map[string]string{"team": "shop"},
			},
			Ports:   []servicemeshv1beta1.GatewayPort{{Protocol: corev1.ProtocolTCP, Port: 8080, ServicePort: ptr.To[int32](80)}},
			Service: &servicemeshv1beta1.GatewayService{Type: corev1.ServiceTypeLoadBalancer, Annotations: map[string]string{"lb": "internal"}},
			Secrets: []servicemeshv1beta1.SecretName{{SecretName: "shop-tls"}},
		},
	}
	if err := c.Create(ctx, igd); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "shop", Name: "ingress"}

	var (
		dep appsv1.Deployment
		hpa autoscalingv2.HorizontalPodAutoscaler
		svc corev1.Service
		sa  corev1.ServiceAccount
	)
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, o := range []client.Object{&sa, &dep, &hpa, &svc} {
			if err := c.Get(ctx, key, o); err != nil {
				return err
			}
			if !metav1.IsControlledBy(o, igd) {
				return fmt.Errorf("%T is not controlled by the IngressGatewayDeployment: %v", o, o.GetOwnerReferences())
			}
		}
		return nil
	})
	pod := dep.Spec.Template
	if pod.Labels[servicemeshv1beta1.LabelIngressGatewayDeployment] != "ingress" || pod.Labels["team"] != "shop" {
		t.Errorf("pod labels = %v", pod.Labels)
	}
	if pod.Spec.ServiceAccountName != "ingress" || len(pod.Spec.Containers) != 1 {
		t.Fatalf("pod spec = %+v", pod.Spec)
	}
	ctr := pod.Spec.Containers[0]
	if ctr.Image != "example.com/gateway:1" || len(ctr.Ports) != 1 || ctr.Ports[0].ContainerPort != 8080 ||
		len(ctr.VolumeMounts) != 1 || ctr.VolumeMounts[0].MountPath != "/etc/meshward/secrets/shop-tls" {
		t.Errorf("container = %+v", ctr)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want minPods", dep.Spec.Replicas)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 4 || hpa.Spec.ScaleTargetRef.Name != "ingress" {
		t.Errorf("autoscaler = %+v", hpa.Spec)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 ||
		svc.Spec.Ports[0].TargetPort.IntValue() != 8080 || svc.Annotations["lb"] != "internal" ||
		svc.Spec.Selector[servicemeshv1beta1.LabelIngressGatewayDeployment] != "ingress" {
		t.Errorf("service = %+v", svc)
	}

	// Changing the spec updates the owned objects.
	if err := c.Get(ctx, key, igd); err != nil {
		t.Fatal(err)
	}
	igd.Spec.Deployment.Autoscaling.MaxPods = 6
	igd.Spec.Ports = append(igd.Spec.Ports, servicemeshv1beta1.GatewayPort{Protocol: corev1.ProtocolTCP, Port: 9090, Name: "admin"})
	igd.Spec.Service.Type = corev1.ServiceTypeClusterIP
	if err := c.Update(ctx, igd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, key, &hpa); err != nil {
			return err
		}
		if hpa.Spec.MaxReplicas != 6 {
			return fmt.Errorf("maxReplicas %d, want 6", hpa.Spec.MaxReplicas)
		}
		if err := c.Get(ctx, key, &svc); err != nil {
			return err
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Name != "admin" {
			return fmt.Errorf("service spec %+v", svc.Spec)
		}
		if err := c.Get(ctx, key, &dep); err != nil {
			return err
		}
		if n := len(dep.Spec.Template.Spec.Containers[0].Ports); n != 2 {
			return fmt.Errorf("%d container ports, want 2", n)
		}
		return nil
	})

	// Without spec.service, the Service is deleted.
	if err := c.Get(ctx, key, igd); err != nil {
		t.Fatal(err)
	}
	igd.Spec.Service = nil
	if err := c.Update(ctx, igd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		err := c.Get(ctx, key, &corev1.Service{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errors.Join(err, errors.New("the Service still exists"))
	})
}
