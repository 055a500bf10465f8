package kube

import (
	"context"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
)

// GatewayOptions configure the IngressGatewayDeployment controller.
type GatewayOptions struct {
	// Image is the gateway proxy's container image (required).
	Image string
	// Args are the container's arguments.
	Args []string
	// CPUUtilization is the average CPU utilisation, in percent of the
	// requests, the HorizontalPodAutoscaler aims at (default 80).
	CPUUtilization int32
	// SkipNameValidation allows several controllers of this name in one
	// process (tests).
	SkipNameValidation bool
}

// gatewaySecretsDir is where the gateway's Secrets are mounted, one
// directory per Secret.
const gatewaySecretsDir = "/etc/meshward/secrets"

// GatewayReconciler runs the pods of IngressGatewayDeployments: for each it
// creates and owns a ServiceAccount (the gateway's identity in the mesh), a
// Deployment whose pods carry servicemeshv1beta1.LabelIngressGatewayDeployment,
// a HorizontalPodAutoscaler between minPods and maxPods, and, when
// spec.service is set, a Service in front of the pods. All are named after
// the IngressGatewayDeployment and follow its spec; deleting it deletes
// them (owner references).
type GatewayReconciler struct {
	client client.Client
	opts   GatewayOptions
}

// SetupGatewayController registers the IngressGatewayDeployment controller
// with a manager whose scheme holds the servicemesh.oci.oracle.com types and
// the apps, autoscaling and core types.
func SetupGatewayController(mgr ctrl.Manager, opts GatewayOptions) error {
	if opts.Image == "" {
		return fmt.Errorf("gateway controller: an image is required")
	}
	if opts.CPUUtilization <= 0 {
		opts.CPUUtilization = 80
	}
	r := &GatewayReconciler{client: mgr.GetClient(), opts: opts}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("ingressgatewaydeployment").
		For(&servicemeshv1beta1.IngressGatewayDeployment{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{})
	if opts.SkipNameValidation {
		b = b.WithOptions(controller.Options{SkipNameValidation: ptr.To(true)})
	}
	return b.Complete(r)
}

// Reconcile brings the objects of one IngressGatewayDeployment in line
// with its spec.
func (r *GatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var igd servicemeshv1beta1.IngressGatewayDeployment
	if err := r.client.Get(ctx, req.NamespacedName, &igd); err != nil {
		// Deleted: the owned objects go with it.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !igd.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	meta := func() metav1.ObjectMeta { return metav1.ObjectMeta{Name: igd.Name, Namespace: igd.Namespace} }

	sa := &corev1.ServiceAccount{ObjectMeta: meta()}
	if err := r.apply(ctx, &igd, sa, func() error { return nil }); err != nil {
		return ctrl.Result{}, err
	}
	dep := &appsv1.Deployment{ObjectMeta: meta()}
	if err := r.apply(ctx, &igd, dep, func() error { r.deployment(&igd, dep); return nil }); err != nil {
		return ctrl.Result{}, err
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta()}
	if err := r.apply(ctx, &igd, hpa, func() error { r.autoscaler(&igd, hpa); return nil }); err != nil {
		return ctrl.Result{}, err
	}
	svc := &corev1.Service{ObjectMeta: meta()}
	if igd.Spec.Service == nil {
		return ctrl.Result{}, r.deleteOwned(ctx, &igd, svc)
	}
	return ctrl.Result{}, r.apply(ctx, &igd, svc, func() error { gatewayService(&igd, svc); return nil })
}

// apply creates or updates obj, owned by igd, as mutate says. An object of
// that name that igd does not own is left alone and reported.
func (r *GatewayReconciler) apply(ctx context.Context, igd *servicemeshv1beta1.IngressGatewayDeployment, obj client.Object, mutate func() error) error {
	_, err := controllerutil.CreateOrUpdate(ctx, r.client, obj, func() error {
		if obj.GetResourceVersion() != "" && !metav1.IsControlledBy(obj, igd) {
			return fmt.Errorf("%T %s/%s exists and is not owned by IngressGatewayDeployment %s", obj, obj.GetNamespace(), obj.GetName(), igd.Name)
		}
		if err := mutate(); err != nil {
			return err
		}
		return controllerutil.SetControllerReference(igd, obj, r.client.Scheme())
	})
	return err
}

// deleteOwned deletes obj when igd owns it.
func (r *GatewayReconciler) deleteOwned(ctx context.Context, igd *servicemeshv1beta1.IngressGatewayDeployment, obj client.Object) error {
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, igd) {
		return nil
	}
	if err := r.client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// gatewayLabels are the labels selecting the pods of an
// IngressGatewayDeployment.
func gatewayLabels(igd *servicemeshv1beta1.IngressGatewayDeployment) map[string]string {
	return map[string]string{servicemeshv1beta1.LabelIngressGatewayDeployment: igd.Name}
}

// deployment sets the Deployment's spec from the IngressGatewayDeployment.
// The replica count is set on creation only: the autoscaler owns it.
func (r *GatewayReconciler) deployment(igd *servicemeshv1beta1.IngressGatewayDeployment, dep *appsv1.Deployment) {
	spec := &igd.Spec.Deployment
	podLabels := maps.Clone(spec.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, gatewayLabels(igd))
	dep.Labels = gatewayLabels(igd)
	if dep.ResourceVersion == "" {
		dep.Spec.Replicas = ptr.To(max(spec.Autoscaling.MinPods, 1))
	}
	dep.Spec.Selector = &metav1.LabelSelector{MatchLabels: gatewayLabels(igd)}
	c := corev1.Container{Name: "gateway", Image: r.opts.Image, Args: r.opts.Args}
	for _, p := range igd.Spec.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: portName(p), ContainerPort: p.Port, Protocol: p.Protocol})
	}
	if res := spec.Autoscaling.Resources; res != nil {
		c.Resources = *res.DeepCopy()
	}
	var volumes []corev1.Volume
	for _, s := range igd.Spec.Secrets {
		name := "secret-" + s.SecretName
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s.SecretName}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: gatewaySecretsDir + "/" + s.SecretName, ReadOnly: true})
	}
	// Keep what the API server defaults in the pod template, so that an
	// unchanged spec is not rewritten on every reconcile.
	tmpl := &dep.Spec.Template
	tmpl.Labels = podLabels
	tmpl.Spec.ServiceAccountName = igd.Name
	tmpl.Spec.Volumes = volumes
	if len(tmpl.Spec.Containers) == 1 && tmpl.Spec.Containers[0].Name == c.Name {
		old := &tmpl.Spec.Containers[0]
		old.Image, old.Args, old.Ports, old.Resources, old.VolumeMounts = c.Image, c.Args, c.Ports, c.Resources, c.VolumeMounts
	} else {
		tmpl.Spec.Containers = []corev1.Container{c}
	}
}

// autoscaler sets the HorizontalPodAutoscaler's spec: the Deployment
// between minPods and maxPods, scaled on CPU utilisation.
func (r *GatewayReconciler) autoscaler(igd *servicemeshv1beta1.IngressGatewayDeployment, hpa *autoscalingv2.HorizontalPodAutoscaler) {
	a := igd.Spec.Deployment.Autoscaling
	hpa.Labels = gatewayLabels(igd)
	hpa.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: igd.Name}
	hpa.Spec.MinReplicas = ptr.To(max(a.MinPods, 1))
	hpa.Spec.MaxReplicas = max(a.MaxPods, a.MinPods, 1)
	hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(r.opts.CPUUtilization)},
		},
	}}
}

// gatewayService sets the Service's spec: the gateway's ports (service
// port serviceport, else port) in front of its pods.
func gatewayService(igd *servicemeshv1beta1.IngressGatewayDeployment, svc *corev1.Service) {
	spec := igd.Spec.Service
	svc.Labels = maps.Clone(spec.Labels)
	if svc.Labels == nil {
		svc.Labels = map[string]string{}
	}
	maps.Copy(svc.Labels, gatewayLabels(igd))
	svc.Annotations = mergeAnnotations(svc.Annotations, spec.Annotations)
	svc.Spec.Type = spec.Type
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	svc.Spec.Selector = gatewayLabels(igd)
	ports := make([]corev1.ServicePort, 0, len(igd.Spec.Ports))
	for _, p := range igd.Spec.Ports {
		sp := corev1.ServicePort{Name: portName(p), Protocol: p.Protocol, Port: p.Port, TargetPort: intstr.FromInt32(p.Port)}
		if p.ServicePort != nil {
			sp.Port = *p.ServicePort
		}
		// Keep the node port the API server allocated.
		for _, old := range svc.Spec.Ports {
			if old.Name == sp.Name {
				sp.NodePort = old.NodePort
			}
		}
		ports = append(ports, sp)
	}
	svc.Spec.Ports = ports
}

// mergeAnnotations sets the wanted annotations over the existing ones
// (other controllers may annotate the Service too).
func mergeAnnotations(have, want map[string]string) map[string]string {
	if len(want) == 0 {
		return have
	}
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// portName is the port's name, or "<protocol>-<port>".
func portName(p servicemeshv1beta1.GatewayPort) string {
	if p.Name != "" {
		return p.Name
	}
	proto := p.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), p.Port)
}
