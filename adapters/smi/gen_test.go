package smi

import (
	"fmt"
	"time"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// genConfig sizes a generated snapshot.
type genConfig struct {
	Namespaces          int
	ServicesPerNS       int
	EndpointsPerService int
	// Targets and Splits are spread over the services, at most one of each
	// per service.
	Targets int
	Splits  int
}

// benchConfig is the size the translator's performance target is set for:
// 1,000 services, 10,000 endpoints, 1,000 TrafficTargets, 200 TrafficSplits.
var benchConfig = genConfig{Namespaces: 50, ServicesPerNS: 20, EndpointsPerService: 10, Targets: 1000, Splits: 200}

// generate builds a synthetic mesh: every namespace is a member; every
// service has its own ServiceAccount, an HTTPRouteGroup with three matches,
// one EndpointSlice and a Pod per endpoint; every namespace has a TCPRoute
// for the metrics port. TrafficTargets let the next two services of the
// namespace and one service of the next namespace call a service; splits
// send a root service's traffic to the next two services.
func generate(c genConfig) *snapshot.Snapshot {
	s := &snapshot.Snapshot{}
	nServices := c.Namespaces * c.ServicesPerNS
	targetEvery := max(1, nServices/max(1, c.Targets))
	splitEvery := max(1, nServices/max(1, c.Splits))
	created := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	ready, notReady := true, false
	tcp := corev1.ProtocolTCP
	httpName, metricsName := "http", "metrics"
	httpPort, metricsPort := int32(8080), int32(9090)
	appHTTP := "http"
	zones := []string{"zone-a", "zone-b", "zone-c"}

	for n := range c.Namespaces {
		ns := fmt.Sprintf("ns-%03d", n)
		nextNS := fmt.Sprintf("ns-%03d", (n+1)%c.Namespaces)
		s.Namespaces = append(s.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{mesh.NamespaceLabel: "meshward"},
		}})
		s.TCPRoutes = append(s.TCPRoutes, specsv1alpha4.TCPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "metrics"},
			Spec:       specsv1alpha4.TCPRouteSpec{Matches: specsv1alpha4.TCPMatch{Name: "metrics", Ports: []int{9090}}},
		})
		for i := range c.ServicesPerNS {
			idx := n*c.ServicesPerNS + i
			name := fmt.Sprintf("svc-%03d", i)
			peer := func(d int) string { return fmt.Sprintf("svc-%03d", (i+d)%c.ServicesPerNS) }

			s.ServiceAccounts = append(s.ServiceAccounts, corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
			s.Services = append(s.Services, corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: corev1.ServiceSpec{
					Selector: map[string]string{"app": name},
					Ports: []corev1.ServicePort{
						{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), AppProtocol: &appHTTP},
						{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
					},
				},
			})
			es := discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: ns, Name: name + "-abcde",
					Labels: map[string]string{discoveryv1.LabelServiceName: name},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports: []discoveryv1.EndpointPort{
					{Name: &httpName, Port: &httpPort, Protocol: &tcp},
					{Name: &metricsName, Port: &metricsPort, Protocol: &tcp},
				},
			}
			for e := range c.EndpointsPerService {
				pod := fmt.Sprintf("%s-%d", name, e)
				s.Pods = append(s.Pods, corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Labels: map[string]string{"app": name}},
					Spec:       corev1.PodSpec{ServiceAccountName: name},
				})
				r := &ready
				if e%7 == 6 {
					r = &notReady
				}
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", n, i, e+1)},
					Conditions: discoveryv1.EndpointConditions{Ready: r},
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
					Zone:       &zones[e%len(zones)],
				})
			}
			s.EndpointSlices = append(s.EndpointSlices, es)

			s.HTTPRouteGroups = append(s.HTTPRouteGroups, specsv1alpha4.HTTPRouteGroup{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-routes"},
				Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{
					{Name: "read", Methods: []string{"GET", "HEAD"}, PathRegex: "/api/v1/items(/.*)?"},
					{
						Name: "write", Methods: []string{"post", "PUT"}, PathRegex: "/api/v1/items/[0-9]+",
						Headers: map[string]string{"Content-Type": "application/json.*", "X-Tenant": "[a-z]+"},
					},
					{Name: "admin", PathRegex: "/" + name + "/admin/.*", Headers: map[string]string{"X-Admin": "true"}},
				}},
			})

			if idx%targetEvery == 0 && len(s.TrafficTargets) < c.Targets {
				rules := []accessv1alpha3.TrafficTargetRule{{Kind: "HTTPRouteGroup", Name: name + "-routes", Matches: []string{"read", "write"}}}
				if i%4 == 0 {
					rules = append(rules, accessv1alpha3.TrafficTargetRule{Kind: "TCPRoute", Name: "metrics"})
				}
				s.TrafficTargets = append(s.TrafficTargets, accessv1alpha3.TrafficTarget{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec: accessv1alpha3.TrafficTargetSpec{
						Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: name, Namespace: ns},
						Sources: []accessv1alpha3.IdentityBindingSubject{
							{Kind: "ServiceAccount", Name: peer(1)},
							{Kind: "ServiceAccount", Name: peer(2), Namespace: ns},
							{Kind: "ServiceAccount", Name: name, Namespace: nextNS},
						},
						Rules: rules,
					},
				})
			}
			if idx%splitEvery == 0 && len(s.TrafficSplits) < c.Splits {
				ts := splitv1alpha4.TrafficSplit{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-split", CreationTimestamp: created},
					Spec: splitv1alpha4.TrafficSplitSpec{
						Service:  name,
						Backends: []splitv1alpha4.TrafficSplitBackend{{Service: peer(1), Weight: 90}, {Service: peer(2), Weight: 10}},
					},
				}
				if i%2 == 0 {
					ts.Spec.Matches = []corev1.TypedLocalObjectReference{{Kind: "HTTPRouteGroup", Name: name + "-routes"}}
				}
				s.TrafficSplits = append(s.TrafficSplits, ts)
			}
		}
	}
	return s
}
