package xds

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// The scenario's namespaces, identities and services. Clients dial
// xds:///<service>.bookstore.svc.cluster.local:14001; the two bookstore
// pods serve the test service on podPort at their own addresses.
const (
	servicePort = 14001
	rootTarget  = "xds:///bookstore.bookstore.svc.cluster.local:14001"
	canaryTgt   = "xds:///bookstore-canary.bookstore.svc.cluster.local:14001"
	v1Pod       = "bookstore-v1-0"
	v2Pod       = "bookstore-v2-0"
)

// params fill the manifests in.
type params struct {
	// V1, V2 are the pod addresses of bookstore v1 and v2 as the
	// EndpointSlices list them.
	V1, V2 string
	// Port is where both pods serve.
	Port int
	// V1Weight, V2Weight are the weights of the TrafficSplit bookstore.
	V1Weight, V2Weight int
	// Sources are the ServiceAccounts (in namespaces of the same name)
	// that the TrafficTargets to both bookstore identities allow.
	Sources []string
}

// manifestFiles name the scenario's manifests, in the order they are
// applied: workloads (namespaces, identities, services, pods, endpoints,
// the route group of the test service), split (the 80/20 TrafficSplit),
// canary (the header-matched TrafficSplit) and access (the
// TrafficTargets). In a directory each is <name>.yaml.
var manifestFiles = []string{"workloads", "split", "canary", "access"}

// manifests returns the scenario's objects by manifest name (see
// manifestFiles).
func manifests(p params) map[string]string {
	out := map[string]string{}
	for name, tmpl := range map[string]string{"workloads": workloadsYAML, "split": splitYAML, "canary": canaryYAML, "access": accessYAML} {
		var b bytes.Buffer
		t := template.Must(template.New(name).Funcs(funcs).Parse(tmpl))
		if err := t.Execute(&b, p); err != nil {
			panic(fmt.Sprintf("manifest %s: %v", name, err))
		}
		out[name] = strings.TrimSpace(b.String()) + "\n"
	}
	return out
}

// endpoint is one endpoint of an EndpointSlice.
type endpoint struct{ Address, Pod string }

// slice is the EndpointSlice of a service.
type slice struct {
	Service   string
	Endpoints []endpoint
}

var funcs = template.FuncMap{
	"list":     func(s ...string) []string { return s },
	"services": func() []string { return []string{"bookstore", "bookstore-v1", "bookstore-v2", "bookstore-canary"} },
	// slices gives every service its endpoints: the root service both
	// pods, each version its own, and bookstore-canary v1 only.
	"slices": func(v1, v2 string) []slice {
		e1, e2 := endpoint{v1, v1Pod}, endpoint{v2, v2Pod}
		return []slice{
			{"bookstore", []endpoint{e1, e2}},
			{"bookstore-v1", []endpoint{e1}},
			{"bookstore-v2", []endpoint{e2}},
			{"bookstore-canary", []endpoint{e1}},
		}
	},
}

const workloadsYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: bookstore
  labels:
    meshward.io/mesh: meshward
---
apiVersion: v1
kind: Namespace
metadata:
  name: bookbuyer
  labels:
    meshward.io/mesh: meshward
---
apiVersion: v1
kind: Namespace
metadata:
  name: bookthief
  labels:
    meshward.io/mesh: meshward
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookstore
  namespace: bookstore
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookstore-v2
  namespace: bookstore
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookbuyer
  namespace: bookbuyer
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookthief
  namespace: bookthief
{{- range $svc := services }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $svc }}
  namespace: bookstore
spec:
  ports:
    - name: grpc
      port: 14001
      targetPort: grpc
      protocol: TCP
{{- end }}
---
apiVersion: v1
kind: Pod
metadata:
  name: bookstore-v1-0
  namespace: bookstore
  labels:
    app: bookstore
    version: v1
spec:
  serviceAccountName: bookstore
  containers:
    - name: bookstore
      image: example.invalid/bookstore:v1
      ports:
        - name: grpc
          containerPort: {{ .Port }}
---
apiVersion: v1
kind: Pod
metadata:
  name: bookstore-v2-0
  namespace: bookstore
  labels:
    app: bookstore
    version: v2
spec:
  serviceAccountName: bookstore-v2
  containers:
    - name: bookstore
      image: example.invalid/bookstore:v2
      ports:
        - name: grpc
          containerPort: {{ .Port }}
{{- range $slice := slices $.V1 $.V2 }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {{ $slice.Service }}-eps
  namespace: bookstore
  labels:
    kubernetes.io/service-name: {{ $slice.Service }}
addressType: IPv4
endpoints:
{{- range $slice.Endpoints }}
  - addresses:
      - {{ .Address }}
    conditions:
      ready: true
    targetRef:
      kind: Pod
      name: {{ .Pod }}
      namespace: bookstore
{{- end }}
ports:
  - name: grpc
    port: {{ $.Port }}
    protocol: TCP
{{- end }}
---
# What the test service serves: every method of grpc.testing.TestService.
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: test-service
  namespace: bookstore
spec:
  matches:
    - name: all-methods
      pathRegex: /grpc\.testing\.TestService/.*
`

const splitYAML = `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: bookstore
  namespace: bookstore
spec:
  service: bookstore
  backends:
    - service: bookstore-v1
      weight: {{ .V1Weight }}
    - service: bookstore-v2
      weight: {{ .V2Weight }}
`

const canaryYAML = `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: canary-users
  namespace: bookstore
spec:
  matches:
    - name: canary
      headers:
        - x-canary: "true"
---
# Calls to bookstore-canary carrying x-canary: true go to v2; the others go
# to bookstore-canary itself, whose only endpoint is v1.
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: bookstore-canary
  namespace: bookstore
spec:
  service: bookstore-canary
  matches:
    - kind: HTTPRouteGroup
      name: canary-users
      apiGroup: specs.smi-spec.io
  backends:
    - service: bookstore-v2
      weight: 100
`

const accessYAML = `
{{- range $dest := list "bookstore" "bookstore-v2" }}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: {{ $dest }}
  namespace: bookstore
spec:
  destination:
    kind: ServiceAccount
    name: {{ $dest }}
    namespace: bookstore
  rules:
    - kind: HTTPRouteGroup
      name: test-service
  sources:
{{- range $.Sources }}
    - kind: ServiceAccount
      name: {{ . }}
      namespace: {{ . }}
{{- end }}
{{- end }}
`
