package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	servicemeshv1beta1 "github.com/meshward/meshward/api/servicemesh/v1beta1"
	"github.com/meshward/meshward/mesh"
)

// ErrUnknownKind is returned (wrapped) by Decode for objects whose
// apiVersion and kind meshward does not read.
var ErrUnknownKind = errors.New("kind not read by meshward")

// DefaultNamespace is given to namespaced objects that name no namespace,
// as kubectl does.
const DefaultNamespace = "default"

// NewScheme returns a scheme holding every type a Snapshot holds (core and
// discovery objects, SMI, OSM IngressBackend, the OCI-style
// servicemesh.oci.oracle.com kinds), plus the SMI TrafficSplit
// v1alpha2 that Decode converts to v1alpha4.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		discoveryv1.AddToScheme,
		accessv1alpha3.AddToScheme,
		specsv1alpha4.AddToScheme,
		splitv1alpha4.AddToScheme,
		splitv1alpha2.AddToScheme,
		addUDPRoute,
		policyv1alpha1.AddToScheme,
		servicemeshv1beta1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("building scheme: %v", err))
		}
	}
	return s
}

// addUDPRoute registers UDPRoute, which the SMI SDK's specs/v1alpha4 scheme
// omits although it defines the type.
func addUDPRoute(s *runtime.Scheme) error {
	s.AddKnownTypes(specsv1alpha4.SchemeGroupVersion, &specsv1alpha4.UDPRoute{}, &specsv1alpha4.UDPRouteList{})
	return nil
}

// Decoder decodes single objects from YAML or JSON.
type Decoder struct {
	scheme  *runtime.Scheme
	decoder runtime.Decoder
	// readable holds the kinds a Snapshot holds (and TrafficSplit v1alpha2,
	// converted); the scheme also knows kinds meshward does not read, such
	// as ConfigMap.
	readable map[schema.GroupVersionKind]bool
}

// NewDecoder returns a strict decoder over NewScheme.
func NewDecoder() *Decoder {
	s := NewScheme()
	readable := map[schema.GroupVersionKind]bool{
		splitv1alpha2.SchemeGroupVersion.WithKind("TrafficSplit"): true,
	}
	for gvk := range s.AllKnownTypes() {
		obj, err := s.New(gvk)
		if err == nil && (&Snapshot{}).Add(obj) == nil {
			readable[gvk] = true
		}
	}
	return &Decoder{
		scheme:   s,
		decoder:  serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		readable: readable,
	}
}

// Scheme returns the decoder's scheme.
func (d *Decoder) Scheme() *runtime.Scheme { return d.scheme }

// Decode decodes one object. It accepts both wire forms of HTTPRouteGroup
// headers, converts TrafficSplit v1alpha2 to v1alpha4 and defaults the
// namespace of namespaced objects. Problems that leave the object usable
// (unknown fields, an invalid header match that is dropped) are returned as
// findings; problems that make it unusable are returned as an error.
// Objects of other kinds give an error wrapping ErrUnknownKind.
func (d *Decoder) Decode(data []byte) (runtime.Object, []mesh.Finding, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, nil, fmt.Errorf("an object must be a mapping: %w", err)
	}
	apiVersion, _ := raw["apiVersion"].(string)
	kind, _ := raw["kind"].(string)
	if apiVersion == "" || kind == "" {
		return nil, nil, errors.New("object has no apiVersion or kind")
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	gvk := gv.WithKind(kind)
	if !d.readable[gvk] {
		return nil, nil, fmt.Errorf("%s %s: %w", apiVersion, kind, ErrUnknownKind)
	}
	ref := refOf(raw, kind)
	var findings []mesh.Finding
	if gvk == specsv1alpha4.SchemeGroupVersion.WithKind("HTTPRouteGroup") {
		findings = normalizeHeaders(raw, ref)
		if js, err = json.Marshal(raw); err != nil {
			return nil, nil, err
		}
	}
	obj, _, err := d.decoder.Decode(js, nil, nil)
	if err != nil {
		if obj == nil || !runtime.IsStrictDecodingError(err) {
			return nil, nil, fmt.Errorf("%s: %w", ref, err)
		}
		if strict, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strict.Errors() {
				findings = append(findings, mesh.Finding{
					Object: ref, Severity: mesh.SeverityWarning, Reason: "UnknownField",
					Message: e.Error() + " (ignored)",
				})
			}
		}
	}
	if old, ok := obj.(*splitv1alpha2.TrafficSplit); ok {
		obj = convertSplit(old)
	}
	if m, ok := obj.(metav1.Object); ok && kind != "Namespace" && m.GetNamespace() == "" {
		m.SetNamespace(DefaultNamespace)
	}
	return obj, findings, nil
}

func refOf(raw map[string]any, kind string) mesh.ObjectRef {
	ref := mesh.ObjectRef{Kind: kind}
	if md, ok := raw["metadata"].(map[string]any); ok {
		ref.Name, _ = md["name"].(string)
		ref.Namespace, _ = md["namespace"].(string)
	}
	if ref.Namespace == "" && kind != "Namespace" {
		ref.Namespace = DefaultNamespace
	}
	return ref
}

// normalizeHeaders rewrites spec.matches[*].headers into the CRD's list of
// single-key maps, accepting a plain map as well. A match whose headers are
// malformed is removed (so it matches nothing) and reported.
func normalizeHeaders(raw map[string]any, ref mesh.ObjectRef) []mesh.Finding {
	spec, _ := raw["spec"].(map[string]any)
	matches, _ := spec["matches"].([]any)
	if matches == nil {
		return nil
	}
	var findings []mesh.Finding
	var dropped []string
	kept := matches[:0]
	for i, m := range matches {
		match, ok := m.(map[string]any)
		if !ok {
			kept = append(kept, m)
			continue
		}
		h, present := match["headers"]
		if !present || h == nil {
			kept = append(kept, m)
			continue
		}
		field := fmt.Sprintf("spec.matches[%d].headers", i)
		list, problem := headerList(h, field)
		if problem != nil {
			name, _ := match["name"].(string)
			findings = append(findings, mesh.Finding{
				Object: ref, Field: problem.field, Severity: mesh.SeverityError,
				Reason:  "InvalidHeaders",
				Message: fmt.Sprintf("%s; match %q is ignored and matches nothing", problem.message, name),
			})
			if name != "" {
				dropped = append(dropped, name)
			}
			continue
		}
		match["headers"] = list
		kept = append(kept, match)
	}
	spec["matches"] = kept
	if len(dropped) > 0 {
		// The translators find the match gone; the annotation tells them
		// it was there and is reported already, so that a rule naming it
		// is not reported again as naming an unknown match.
		md, _ := raw["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			raw["metadata"] = md
		}
		ann, _ := md["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
			md["annotations"] = ann
		}
		b, _ := json.Marshal(dropped)
		ann[DroppedMatchesAnnotation] = string(b)
	}
	return findings
}

// DroppedMatchesAnnotation is set by the decoder on an HTTPRouteGroup whose
// malformed matches it removed (reported as InvalidHeaders): a JSON list
// of their names. It lives only in the decoded object.
const DroppedMatchesAnnotation = "meshward.io/dropped-matches"

type fieldProblem struct{ field, message string }

func problemf(field, format string, args ...any) *fieldProblem {
	return &fieldProblem{field: field, message: fmt.Sprintf(format, args...)}
}

// headerList converts either wire form to a list of single-key maps.
func headerList(h any, field string) ([]any, *fieldProblem) {
	switch v := h.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, 0, len(keys))
		for _, k := range keys {
			s, ok := v[k].(string)
			if !ok {
				return nil, problemf(field+"."+k, "header value must be a string, got %s", describe(v[k]))
			}
			out = append(out, map[string]any{k: s})
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(v))
		for j, item := range v {
			m, ok := item.(map[string]any)
			if !ok || len(m) != 1 {
				n := 0
				if ok {
					n = len(m)
				}
				return nil, problemf(fmt.Sprintf("%s[%d]", field, j), "each list item must be a map with exactly one header name, got %d keys", n)
			}
			for k, val := range m {
				if _, ok := val.(string); !ok {
					return nil, problemf(fmt.Sprintf("%s[%d].%s", field, j, k), "header value must be a string, got %s", describe(val))
				}
			}
			out = append(out, m)
		}
		return out, nil
	default:
		return nil, problemf(field, "must be a list of single-key maps or a map of header names to regular expressions, got %s", describe(h))
	}
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

func convertSplit(old *splitv1alpha2.TrafficSplit) *splitv1alpha4.TrafficSplit {
	out := &splitv1alpha4.TrafficSplit{
		TypeMeta:   metav1.TypeMeta{APIVersion: splitv1alpha4.SchemeGroupVersion.String(), Kind: "TrafficSplit"},
		ObjectMeta: *old.ObjectMeta.DeepCopy(),
		Spec:       splitv1alpha4.TrafficSplitSpec{Service: old.Spec.Service},
	}
	for _, b := range old.Spec.Backends {
		out.Spec.Backends = append(out.Spec.Backends, splitv1alpha4.TrafficSplitBackend{Service: b.Service, Weight: b.Weight})
	}
	return out
}
