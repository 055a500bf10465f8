package snapshot_test

import (
	"errors"
	"testing"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"

	"github.com/meshward/meshward/snapshot"
)

func TestDecodeSkipsKindsNotRead(t *testing.T) {
	dec := snapshot.NewDecoder()
	for name, doc := range map[string]string{
		"ConfigMap":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
		"Secret":      "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
		"Deployment":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
		"ServiceList": "apiVersion: v1\nkind: ServiceList\nitems: []\n",
		"old access":  "apiVersion: access.smi-spec.io/v1alpha2\nkind: TrafficTarget\nmetadata: {name: x}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := dec.Decode([]byte(doc)); !errors.Is(err, snapshot.ErrUnknownKind) {
				t.Fatalf("want ErrUnknownKind, got %v", err)
			}
		})
	}
}

func TestDecodeHeadersBothForms(t *testing.T) {
	dec := snapshot.NewDecoder()
	for name, headers := range map[string]string{
		"list": "      headers:\n        - X-Canary: \"true\"\n        - user-agent: .*\n",
		"map":  "      headers:\n        X-Canary: \"true\"\n        user-agent: .*\n",
	} {
		t.Run(name, func(t *testing.T) {
			doc := "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: ns}\nspec:\n  matches:\n    - name: m\n" + headers
			obj, findings, err := dec.Decode([]byte(doc))
			if err != nil || len(findings) != 0 {
				t.Fatalf("err %v findings %v", err, findings)
			}
			g := obj.(*specsv1alpha4.HTTPRouteGroup)
			h := g.Spec.Matches[0].Headers
			if len(h) != 2 || h["X-Canary"] != "true" || h["user-agent"] != ".*" {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

func TestDecodeInvalidHeaderItemDropsMatch(t *testing.T) {
	doc := `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
    - name: bad
      headers:
        - {a: "1", b: "2"}
    - name: good
      pathRegex: /
`
	obj, findings, err := snapshot.NewDecoder().Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	g := obj.(*specsv1alpha4.HTTPRouteGroup)
	if len(g.Spec.Matches) != 1 || g.Spec.Matches[0].Name != "good" {
		t.Fatalf("matches %+v", g.Spec.Matches)
	}
	if len(findings) != 1 || findings[0].Field != "spec.matches[0].headers[0]" || findings[0].Reason != "InvalidHeaders" {
		t.Fatalf("findings %+v", findings)
	}
	if got := g.Annotations[snapshot.DroppedMatchesAnnotation]; got != `["bad"]` {
		t.Fatalf("annotation %s = %q, want the dropped match's name", snapshot.DroppedMatchesAnnotation, got)
	}
}

func TestDecodeConvertsSplitV1alpha2AndDefaultsNamespace(t *testing.T) {
	doc := "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s}\nspec:\n  service: root\n  backends:\n    - {service: v1, weight: 3}\n"
	obj, _, err := snapshot.NewDecoder().Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ts, ok := obj.(*splitv1alpha4.TrafficSplit)
	if !ok {
		t.Fatalf("decoded %T, want a v1alpha4 TrafficSplit", obj)
	}
	if ts.Namespace != snapshot.DefaultNamespace || ts.Spec.Service != "root" || ts.Spec.Backends[0].Weight != 3 {
		t.Fatalf("split %+v", ts)
	}
}

func TestDecodeUnknownFieldIsAWarning(t *testing.T) {
	doc := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: ns}\nsurprise: 1\n"
	obj, findings, err := snapshot.NewDecoder().Decode([]byte(doc))
	if err != nil || obj == nil {
		t.Fatalf("err %v", err)
	}
	if len(findings) != 1 || findings[0].Reason != "UnknownField" {
		t.Fatalf("findings %+v", findings)
	}
}
