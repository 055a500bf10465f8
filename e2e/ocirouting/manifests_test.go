package ocirouting

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// The application: namespace shop, in the mesh. Service catalog is the
// root Service of VirtualService catalog and selects both versions' pods,
// as a Kubernetes Service of a Deployment per version does; Services
// catalog-v1 and catalog-v2 select one version each and are bound to
// VirtualDeployments catalog-v1 and catalog-v2. The client's pod is bound
// to VirtualDeployment client-v1 of VirtualService client, which an
// AccessPolicy allows to call catalog.
const (
	namespace = "shop"
	// rootTarget is what the client dials: the root Service's authority.
	rootTarget = "xds:///catalog.shop.svc.cluster.local:8080"
	v1Pod      = "catalog-v1-0"
	v2Pod      = "catalog-v2-0"
)

// params fill the manifests in.
type params struct {
	// V1, V2 are the pod addresses of catalog v1 and v2 as the
	// EndpointSlices list them; Port is where both serve.
	V1, V2 string
	Port   int
	// Deny sets VirtualService catalog's defaultRoutingPolicy to DENY;
	// otherwise it is left out (UNIFORM).
	Deny bool
	// FallbackPriority is the priority of route table a-fallback; route
	// table b-main has priority 10.
	FallbackPriority int
}

// manifestFiles name the manifests, each written to <name>.yaml in the
// directory the model is loaded from.
var manifestFiles = []string{"workloads", "mesh", "routes"}

// manifests returns the objects by manifest name.
func manifests(p params) map[string]string {
	out := map[string]string{}
	for name, text := range map[string]string{"workloads": workloadsYAML, "mesh": meshYAML, "routes": routesYAML} {
		var b bytes.Buffer
		if err := template.Must(template.New(name).Parse(text)).Execute(&b, p); err != nil {
			panic(fmt.Sprintf("manifest %s: %v", name, err))
		}
		out[name] = strings.TrimSpace(b.String()) + "\n"
	}
	return out
}

// workloadsYAML are the Kubernetes objects. Without a cluster nothing
// makes the EndpointSlices, so they are written out: catalog lists both
// pods, each version's Service its own pod. The client's pod only needs
// to exist (its binding gives it its identity); nothing calls it.
const workloadsYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    meshward.io/mesh: meshward
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: catalog-v1, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: catalog-v2, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: grpc, port: 8080, targetPort: grpc, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: catalog-v1, namespace: shop}
spec:
  selector: {app: catalog, version: v1}
  ports: [{name: grpc, port: 8080, targetPort: grpc, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: catalog-v2, namespace: shop}
spec:
  selector: {app: catalog, version: v2}
  ports: [{name: grpc, port: 8080, targetPort: grpc, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: shop}
spec:
  selector: {app: client}
  ports: [{name: grpc, port: 8080, targetPort: grpc, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata:
  name: catalog-v1-0
  namespace: shop
  labels: {app: catalog, version: v1}
spec:
  serviceAccountName: catalog-v1
  containers:
    - name: catalog
      image: example.invalid/catalog:v1
      ports: [{name: grpc, containerPort: {{ .Port }}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: catalog-v2-0
  namespace: shop
  labels: {app: catalog, version: v2}
spec:
  serviceAccountName: catalog-v2
  containers:
    - name: catalog
      image: example.invalid/catalog:v2
      ports: [{name: grpc, containerPort: {{ .Port }}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client-0
  namespace: shop
  labels: {app: client}
spec:
  serviceAccountName: client
  containers:
    - name: client
      image: example.invalid/client:v1
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: catalog-eps
  namespace: shop
  labels: {kubernetes.io/service-name: catalog}
addressType: IPv4
endpoints:
  - addresses: [{{ .V1 }}]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: catalog-v1-0, namespace: shop}
  - addresses: [{{ .V2 }}]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: catalog-v2-0, namespace: shop}
ports: [{name: grpc, port: {{ .Port }}, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: catalog-v1-eps
  namespace: shop
  labels: {kubernetes.io/service-name: catalog-v1}
addressType: IPv4
endpoints:
  - addresses: [{{ .V1 }}]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: catalog-v1-0, namespace: shop}
ports: [{name: grpc, port: {{ .Port }}, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: catalog-v2-eps
  namespace: shop
  labels: {kubernetes.io/service-name: catalog-v2}
addressType: IPv4
endpoints:
  - addresses: [{{ .V2 }}]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: catalog-v2-0, namespace: shop}
ports: [{name: grpc, port: {{ .Port }}, protocol: TCP}]
`

// meshYAML are the OCI objects but the route tables.
const meshYAML = `
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: Mesh
metadata: {name: shop-mesh, namespace: shop}
spec:
  compartmentId: ocid1.compartment.oc1..shop
  mtls: {minimum: STRICT}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  mesh: {ref: {name: shop-mesh}}
  hosts: [catalog.shop.svc.cluster.local]
  mtls: {mode: STRICT}
{{- if .Deny }}
  defaultRoutingPolicy: {type: DENY}
{{- end }}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeployment
metadata: {name: catalog-v1, namespace: shop}
spec:
  virtualService: {ref: {name: catalog}}
  listener: [{protocol: GRPC, port: 8080}]
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeployment
metadata: {name: catalog-v2, namespace: shop}
spec:
  virtualService: {ref: {name: catalog}}
  listener: [{protocol: GRPC, port: 8080}]
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeploymentBinding
metadata: {name: catalog-v1, namespace: shop}
spec:
  virtualDeployment: {ref: {name: catalog-v1}}
  target: {service: {ref: {name: catalog-v1}}}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeploymentBinding
metadata: {name: catalog-v2, namespace: shop}
spec:
  virtualDeployment: {ref: {name: catalog-v2}}
  target: {service: {ref: {name: catalog-v2}}}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualService
metadata: {name: client, namespace: shop}
spec:
  mesh: {ref: {name: shop-mesh}}
  hosts: [client.shop.svc.cluster.local]
  mtls: {mode: STRICT}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeployment
metadata: {name: client-v1, namespace: shop}
spec:
  virtualService: {ref: {name: client}}
  listener: [{protocol: GRPC, port: 8080}]
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualDeploymentBinding
metadata: {name: client-v1, namespace: shop}
spec:
  virtualDeployment: {ref: {name: client-v1}}
  target: {service: {ref: {name: client}}}
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: AccessPolicy
metadata: {name: client-to-catalog, namespace: shop}
spec:
  mesh: {ref: {name: shop-mesh}}
  rules:
    - action: ALLOW
      source: {virtualService: {ref: {name: client}}}
      destination: {virtualService: {ref: {name: catalog}}}
`

// routesYAML are the route tables of VirtualService catalog. Table
// a-fallback comes first by name and in the file, but b-main has the
// lower priority (10, while a-fallback has 20 until the test changes it):
// b-main's rules apply first. Prefixes are gRPC method paths
// (/package.Service/Method); the "." in them is a literal dot.
//
//	b-main[0] /shop.Catalog/Admin   -> v2
//	b-main[1] /shop.Catalog/        -> v1
//	b-main[2] /shop.Orders/         -> v2
//	b-main[3] /shop.Orders/Special  -> v1  (never: b-main[2] matches first)
//	b-main[4] /shop.Cart/ (gRPC)    -> v1 80, v2 20
//	b-main[5] /shop.Slow/           -> v1, at most 500 ms
//	a-fallback[0] /shop.            -> v2
//
// Anything else goes to the root Service catalog (both pods), or, with
// defaultRoutingPolicy DENY, nowhere.
const routesYAML = `
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualServiceRouteTable
metadata: {name: a-fallback, namespace: shop}
spec:
  priority: {{ .FallbackPriority }}
  virtualService: {ref: {name: catalog}}
  routeRules:
    - httpRoute:
        path: /shop.
        destinations: [{virtualDeployment: {ref: {name: catalog-v2}}, weight: 100}]
---
apiVersion: servicemesh.oci.oracle.com/v1beta1
kind: VirtualServiceRouteTable
metadata: {name: b-main, namespace: shop}
spec:
  priority: 10
  virtualService: {ref: {name: catalog}}
  routeRules:
    - httpRoute:
        path: /shop.Catalog/Admin
        destinations: [{virtualDeployment: {ref: {name: catalog-v2}}, weight: 100}]
    - httpRoute:
        path: /shop.Catalog/
        destinations: [{virtualDeployment: {ref: {name: catalog-v1}}, weight: 100}]
    - httpRoute:
        path: /shop.Orders/
        destinations: [{virtualDeployment: {ref: {name: catalog-v2}}, weight: 100}]
    - httpRoute:
        path: /shop.Orders/Special
        destinations: [{virtualDeployment: {ref: {name: catalog-v1}}, weight: 100}]
    - httpRoute:
        path: /shop.Cart/
        isGrpc: true
        destinations:
          - {virtualDeployment: {ref: {name: catalog-v1}}, weight: 80}
          - {virtualDeployment: {ref: {name: catalog-v2}}, weight: 20}
    - httpRoute:
        path: /shop.Slow/
        requestTimeoutInMs: 500
        destinations: [{virtualDeployment: {ref: {name: catalog-v1}}, weight: 100}]
`
