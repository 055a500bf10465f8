package files

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// workloads.yaml: kinds meshward does not read, and a List.
const workloadsYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: bookstore-v1
  namespace: bookstore
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: bookstore
          image: bookstore:v1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: bookstore
data:
  level: debug
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: bookstore-v1
      namespace: bookstore
    spec:
      ports:
        - port: 14001
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: listed
      namespace: bookstore
  - apiVersion: v1
    kind: Service
    metadata:
      name: bookstore-v2
      namespace: bookstore
    spec:
      ports:
        - port: 14001
`

// A JSON manifest indented with tabs, in a subdirectory.
const splitJSON = "{\n\t\"apiVersion\": \"split.smi-spec.io/v1alpha4\",\n\t\"kind\": \"TrafficSplit\",\n" +
	"\t\"metadata\": {\"name\": \"json-split\", \"namespace\": \"bookbuyer\"},\n" +
	"\t\"spec\": {\n\t\t\"service\": \"books\",\n\t\t\"backends\": [{\"service\": \"books-v1\", \"weight\": 1}]\n\t}\n}\n"

// A typed list whose items name neither apiVersion nor kind.
const serviceListYAML = `apiVersion: v1
kind: ServiceList
items:
- metadata:
    name: bookwarehouse
    namespace: bookwarehouse
`

func bookstoreDir(t *testing.T) string {
	t.Helper()
	mesh, err := os.ReadFile(filepath.Join("testdata", "bookstore", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"mesh.yaml":               string(mesh),
		"workloads.yaml":          workloadsYAML,
		"bookbuyer/split.json":    splitJSON,
		"bookbuyer/more/list.yml": serviceListYAML,
		"policies/authz.rego":     "package envoy.authz\n",
		"a.rego":                  "package a\n",
		// Never read: hidden, editor files, other extensions.
		".git/config.yaml":   "broken: [",
		".hidden.yaml":       "broken: [",
		"mesh.yaml~":         "broken: [",
		"#mesh.yaml#":        "broken: [",
		"bookbuyer/.#x.yaml": "broken: [",
		"README.md":          "# not a manifest: [",
		"empty.yaml":         "# nothing here\n---\n",
	})
	return dir
}

func TestLoad(t *testing.T) {
	t.Parallel()
	res, err := Load(bookstoreDir(t), snapshot.NewDecoder())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s := res.Snapshot

	if got, want := res.Files, 5; got != want {
		t.Errorf("Files = %d, want %d", got, want)
	}
	wantPositions := map[mesh.ObjectRef]Position{
		ref("Namespace", "", "bookstore"):                           {"mesh.yaml", 2},
		ref("ServiceAccount", "bookstore", "bookstore"):             {"mesh.yaml", 7},
		ref("Service", "bookstore", "bookstore"):                    {"mesh.yaml", 15},
		ref("HTTPRouteGroup", "bookstore", "bookstore-routes"):      {"mesh.yaml", 30},
		ref("TrafficTarget", "bookstore", "bookbuyer-to-bookstore"): {"mesh.yaml", 49},
		ref("TrafficSplit", "bookstore", "old-split"):               {"mesh.yaml", 67},
		ref("TrafficSplit", "bookstore", "bookstore-split"):         {"mesh.yaml", 80},
		ref("Service", "bookstore", "bookstore-v1"):                 {"workloads.yaml", 25},
		ref("Service", "bookstore", "bookstore-v2"):                 {"workloads.yaml", 38},
		ref("TrafficSplit", "bookbuyer", "json-split"):              {"bookbuyer/split.json", 1},
		ref("Service", "bookwarehouse", "bookwarehouse"):            {"bookbuyer/more/list.yml", 4},
	}
	if !maps.Equal(res.Positions, wantPositions) {
		t.Errorf("Positions:\n got %v\nwant %v", res.Positions, wantPositions)
	}
	if got := (Position{"mesh.yaml", 80}).String(); got != "mesh.yaml:80" {
		t.Errorf("Position.String() = %q", got)
	}
	if got, want := s.Len(), len(wantPositions); got != want {
		t.Errorf("snapshot holds %d objects, want %d", got, want)
	}

	// Files in sorted order, documents in file order.
	var services []string
	for _, svc := range s.Services {
		services = append(services, svc.Namespace+"/"+svc.Name)
	}
	if want := []string{"bookwarehouse/bookwarehouse", "bookstore/bookstore", "bookstore/bookstore-v1", "bookstore/bookstore-v2"}; !slices.Equal(services, want) {
		t.Errorf("services = %v, want %v", services, want)
	}
	if len(s.Namespaces) != 1 || s.Namespaces[0].Name != "bookstore" {
		t.Errorf("namespaces = %v", s.Namespaces)
	}
	if len(s.ServiceAccounts) != 1 || s.ServiceAccounts[0].Namespace != "bookstore" {
		t.Errorf("service accounts = %v", s.ServiceAccounts)
	}
	if p := s.Services[1].Spec.Ports; len(p) != 1 || p[0].Port != 14001 || p[0].Name != "http" {
		t.Errorf("bookstore ports = %v", p)
	}

	if len(s.TrafficTargets) != 1 {
		t.Fatalf("traffic targets = %v", s.TrafficTargets)
	}
	tt := s.TrafficTargets[0].Spec
	if tt.Destination.Name != "bookstore" || len(tt.Sources) != 1 || tt.Sources[0].Namespace != "bookbuyer" ||
		len(tt.Rules) != 1 || !slices.Equal(tt.Rules[0].Matches, []string{"buy", "list"}) {
		t.Errorf("traffic target spec = %+v", tt)
	}

	if len(s.HTTPRouteGroups) != 1 || len(s.HTTPRouteGroups[0].Spec.Matches) != 2 {
		t.Fatalf("route groups = %+v", s.HTTPRouteGroups)
	}
	buy, list := s.HTTPRouteGroups[0].Spec.Matches[0], s.HTTPRouteGroups[0].Spec.Matches[1]
	if got, want := map[string]string(buy.Headers), map[string]string{"user-agent": ".*bookbuyer.*", "x-tenant": "a|b"}; !maps.Equal(got, want) {
		t.Errorf("headers of %q (list form) = %v, want %v", buy.Name, got, want)
	}
	if got, want := map[string]string(list.Headers), map[string]string{"accept": "application/json"}; !maps.Equal(got, want) {
		t.Errorf("headers of %q (map form) = %v, want %v", list.Name, got, want)
	}
	if list.PathRegex != "/books" || len(list.Methods) != 1 || list.Methods[0] != "GET" {
		t.Errorf("match %q = %+v", list.Name, list)
	}

	weights := map[string][]int{}
	for _, ts := range s.TrafficSplits {
		if ts.APIVersion != "" && ts.APIVersion != "split.smi-spec.io/v1alpha4" {
			t.Errorf("split %s has apiVersion %s", ts.Name, ts.APIVersion)
		}
		for _, b := range ts.Spec.Backends {
			weights[ts.Name] = append(weights[ts.Name], b.Weight)
		}
	}
	wantWeights := map[string][]int{"json-split": {1}, "old-split": {90, 10}, "bookstore-split": {50, 50}}
	if !reflect.DeepEqual(weights, wantWeights) {
		t.Errorf("split weights = %v, want %v", weights, wantWeights)
	}

	var skipped []string
	for _, sk := range res.Skipped {
		skipped = append(skipped, sk.Position.String()+" "+sk.Kind+" "+sk.Namespace+"/"+sk.Name)
	}
	wantSkipped := []string{
		"workloads.yaml:1 Deployment bookstore/bookstore-v1",
		"workloads.yaml:14 ConfigMap bookstore/settings",
		"workloads.yaml:33 ConfigMap bookstore/listed",
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped:\n got %q\nwant %q", skipped, wantSkipped)
	}

	if got := res.Policies; len(got) != 2 || got[0].Path != "a.rego" || got[1].Path != "policies/authz.rego" ||
		string(got[1].Source) != "package envoy.authz\n" {
		t.Errorf("policies = %+v", got)
	}
	if len(s.Findings) != 0 {
		t.Errorf("findings = %v", s.Findings)
	}
	if !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("digest = %q", res.Digest)
	}
}

func TestLoadDigest(t *testing.T) {
	t.Parallel()
	files := map[string]string{"a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"}
	first, err := loadDir(t, files)
	if err != nil {
		t.Fatal(err)
	}
	same, err := loadDir(t, files)
	if err != nil {
		t.Fatal(err)
	}
	files["p.rego"] = "package p\n"
	other, err := loadDir(t, files)
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest != same.Digest || first.Digest == other.Digest {
		t.Errorf("digests: %s, same input %s, with a policy %s", first.Digest, same.Digest, other.Digest)
	}
}

func TestLoadFindings(t *testing.T) {
	t.Parallel()
	res, err := loadDir(t, map[string]string{"routes.yaml": `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: r
spec:
  matches:
    - name: two-keys
      headers:
        - {a: x, b: y}
    - name: fine
      pathRegex: /
`})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Snapshot.Findings; len(f) != 1 || f[0].Reason != "InvalidHeaders" || f[0].Object != ref("HTTPRouteGroup", "default", "r") {
		t.Errorf("findings = %v", f)
	}
	if p := res.Positions[ref("HTTPRouteGroup", "default", "r")]; p.String() != "routes.yaml:1" {
		t.Errorf("position = %v", p)
	}
}

func TestLoadEmptyDir(t *testing.T) {
	t.Parallel()
	res, err := Load(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 0 || res.Snapshot.Len() != 0 || len(res.Positions) != 0 {
		t.Errorf("result = %+v", res)
	}
}

func TestLoadMissingDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nowhere")
	res, err := Load(dir, nil)
	if res != nil || err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load = %v, %v; want an error wrapping fs.ErrNotExist", res, err)
	}
	mustContain(t, err.Error(), dir)
	if pes := ParseErrors(err); len(pes) != 0 {
		t.Errorf("ParseErrors = %v, want none", pes)
	}
}

const goodSA = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: fine\n"

// TestLoadErrors checks that each broken input fails the whole load with
// the file and line of the problem.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		files map[string]string
		want  []string // substrings of the error, one *ParseError each
		is    error
	}{
		"bad indentation in the second document": {
			files: map[string]string{
				"broken.yaml": goodSA + "---\n" +
					"apiVersion: v1\n" + // 6
					"kind: Service\n" + // 7
					"metadata:\n" + // 8
					"  name: b\n" + // 9
					" namespace: x\n", // 10
			},
			want: []string{"broken.yaml:10: syntax error: did not find expected key"},
			is:   ErrSyntax,
		},
		"unclosed flow sequence": {
			files: map[string]string{
				"broken.yaml": "# a comment\n" + goodSA + "---\n" +
					"apiVersion: v1\n" + // 7
					"kind: Service\n" + // 8
					"metadata:\n" + // 9
					"  name: b\n" + // 10
					"  labels: [a, b\n" + // 11
					"spec: {}\n", // 12
			},
			want: []string{"broken.yaml:11: syntax error"},
			is:   ErrSyntax,
		},
		"list item inside a mapping": {
			files: map[string]string{"broken.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\nspec:\n  ports:\n  - port: 1\n  selector: {}\n  - port: 2\n"},
			want:  []string{"broken.yaml:9: syntax error"},
		},
		"tab indentation": {
			files: map[string]string{"broken.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n\tname: b\n"},
			want:  []string{"broken.yaml:4: syntax error"},
		},
		"mapping value on the first line": {
			files: map[string]string{"broken.yaml": "apiVersion: v1: x\n"},
			want:  []string{"broken.yaml:1: syntax error: mapping values are not allowed"},
		},
		"repeated key": {
			files: map[string]string{"broken.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  name: c\n"},
			want:  []string{`broken.yaml:5: syntax error: key "name" already defined at line 4`},
			is:    ErrSyntax,
		},
		"separator with content": {
			files: map[string]string{"broken.yaml": goodSA + "--- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n"},
			want:  []string{"broken.yaml:5: syntax error: a second document starts here"},
		},
		"not a mapping": {
			files: map[string]string{"broken.yaml": goodSA + "---\n- a\n- b\n"},
			want:  []string{"broken.yaml:6: a manifest must be a mapping (an object), not a list"},
		},
		"wrong type in a list: the line of the field": {
			files: map[string]string{
				"split.yaml": goodSA + "---\n" +
					"apiVersion: split.smi-spec.io/v1alpha4\n" + // 6
					"kind: TrafficSplit\n" +
					"metadata:\n" +
					"  name: s\n" +
					"spec:\n" +
					"  service: a\n" +
					"  backends:\n" +
					"  - service: b\n" +
					"    weight: 50\n" +
					"  - service: c\n" +
					"    weight: \"fifty\"\n", // 16
			},
			want: []string{"split.yaml:16: TrafficSplit default/s: json: cannot unmarshal string into Go struct field TrafficSplitBackend.spec.backends.weight of type int"},
		},
		"no kind: the line of the document": {
			files: map[string]string{"nokind.yaml": goodSA + "---\n# comment\napiVersion: v1\nmetadata:\n  name: x\n"},
			want:  []string{"nokind.yaml:7: object has no apiVersion or kind"},
		},
		"no name": {
			files: map[string]string{"noname.yaml": "apiVersion: v1\nkind: Service\nspec: {}\n"},
			want:  []string{"noname.yaml:1: Service: object has no metadata.name"},
			is:    ErrNoName,
		},
		"broken item of a list": {
			files: map[string]string{"list.yaml": `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: fine}
- apiVersion: v1
  kind: Service
  metadata: {name: x}
  spec:
    ports: [{port: http}]
`},
			want: []string{"list.yaml:11: Service default/x: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port"},
		},
		"JSON syntax error": {
			files: map[string]string{"split.json": "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Service\"\n  \"metadata\": {}\n}\n"},
			want:  []string{"split.json:4: syntax error: invalid character '\"' after object key:value pair"},
			is:    ErrSyntax,
		},
		"JSON truncated": {
			files: map[string]string{"split.json": "{\n  \"apiVersion\": \"v1\",\n"},
			want:  []string{"split.json:2: syntax error: unexpected end of JSON input"},
		},
		"JSON wrong type": {
			files: map[string]string{"svc.json": "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Service\",\n  \"metadata\": {\n    \"name\": \"x\",\n    \"labels\": [\"a\"]\n  }\n}\n"},
			want:  []string{"svc.json:6: Service default/x: json: cannot unmarshal array"},
		},
		"two broken files": {
			files: map[string]string{
				"a/broken.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: [b\n",
				"b.yaml":        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n  namespace: 7\n",
				"good.yaml":     goodSA,
			},
			want: []string{"a/broken.yaml:4: syntax error", "b.yaml:5: ServiceAccount default/b: json: cannot unmarshal number"},
		},
		"duplicate object": {
			files: map[string]string{
				"a.yaml":     "# first\n" + goodSA,
				"b/dup.yaml": goodSA + "---\n" + goodSA,
			},
			want: []string{
				"b/dup.yaml:1: duplicate object: ServiceAccount default/fine is already defined at a.yaml:2",
				"b/dup.yaml:6: duplicate object: ServiceAccount default/fine is already defined at a.yaml:2",
			},
			is: ErrDuplicate,
		},
		"duplicate across API versions": {
			files: map[string]string{"s.yaml": "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: a}\n---\n" +
				"apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: default}\nspec: {service: a, backends: []}\n"},
			want: []string{"s.yaml:6: duplicate object: TrafficSplit default/s is already defined at s.yaml:1"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := loadDir(t, tc.files)
			if err == nil || res != nil {
				t.Fatalf("Load = %v, %v; want an error", res, err)
			}
			pes := ParseErrors(err)
			var got []string
			for _, pe := range pes {
				got = append(got, pe.Error())
			}
			if len(pes) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d", strings.Join(got, "\n"), len(tc.want))
			}
			for i, w := range tc.want {
				mustContain(t, got[i], w)
				mustContain(t, err.Error(), w)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in   string
		want []document
	}{
		"one":                {"a: 1\n", []document{{1, []byte("a: 1\n")}}},
		"leading separator":  {"---\na: 1\n", []document{{1, []byte{}}, {2, []byte("a: 1\n")}}},
		"comment after":      {"a: 1\n--- # two\nb: 2", []document{{1, []byte("a: 1\n")}, {3, []byte("b: 2")}}},
		"CRLF":               {"a: 1\r\n---\r\nb: 2\r\n", []document{{1, []byte("a: 1\r\n")}, {3, []byte("b: 2\r\n")}}},
		"not separators":     {"a: |\n  ---x\n----\n--- a\n", []document{{1, []byte("a: |\n  ---x\n----\n--- a\n")}}},
		"trailing separator": {"a: 1\n---\n", []document{{1, []byte("a: 1\n")}, {3, []byte{}}}},
		"blank separator":    {"a: 1\n---   \t\nb: 2\n", []document{{1, []byte("a: 1\n")}, {3, []byte("b: 2\n")}}},
	} {
		t.Run(name, func(t *testing.T) {
			got := splitDocuments([]byte(tc.in))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d documents %+v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i].line != tc.want[i].line || string(got[i].data) != string(tc.want[i].data) {
					t.Errorf("document %d = %d %q, want %d %q", i, got[i].line, got[i].data, tc.want[i].line, tc.want[i].data)
				}
			}
		})
	}
}

func TestParseErrorFormat(t *testing.T) {
	t.Parallel()
	inner := errors.New("boom")
	for _, tc := range []struct {
		err  *ParseError
		want string
	}{
		{&ParseError{File: "a/b.yaml", Line: 3, Err: inner}, "a/b.yaml:3: boom"},
		{&ParseError{File: "a/b.yaml", Err: inner}, "a/b.yaml: boom"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.err, inner) {
			t.Errorf("%v does not wrap its error", tc.err)
		}
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ok.yaml": goodSA})
	if err := os.Symlink("missing.yaml", filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, nil)
	pes := ParseErrors(err)
	if len(pes) != 1 || pes[0].File != "dangling.yaml" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load error = %v", err)
	}
}

func TestLoadFollowsFileLinks(t *testing.T) {
	t.Parallel()
	// The layout Kubernetes gives a mounted ConfigMap.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"..2024_01_01/sa.yaml": goodSA})
	if err := os.Symlink("..2024_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/sa.yaml", filepath.Join(dir, "sa.yaml")); err != nil {
		t.Fatal(err)
	}
	// A link to a directory is not followed.
	if err := os.Symlink(".", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	res, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Positions[ref("ServiceAccount", "default", "fine")].String() != "sa.yaml:1" {
		t.Errorf("files %d, positions %v", res.Files, res.Positions)
	}
}

func TestLoadJSONListBOMAndCRLF(t *testing.T) {
	t.Parallel()
	res, err := loadDir(t, map[string]string{
		"list.json": "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"List\",\n\t\"items\": [\n" +
			"\t\t{\"apiVersion\": \"v1\", \"kind\": \"ServiceAccount\", \"metadata\": {\"name\": \"a\"}},\n" + // 5
			"\t\t{\n\t\t\t\"apiVersion\": \"v1\",\n\t\t\t\"kind\": \"ServiceAccount\",\n\t\t\t\"metadata\": {\"name\": \"b\"}\n\t\t}\n" + // 6
			"\t]\n}\n",
		"crlf.yaml": "\ufeff# BOM and CRLF\r\napiVersion: v1\r\nkind: ServiceAccount\r\nmetadata:\r\n  name: c\r\n---\r\n\r\napiVersion: v1\r\nkind: ServiceAccount\r\nmetadata:\r\n  name: d\r\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[mesh.ObjectRef]Position{
		ref("ServiceAccount", "default", "a"): {"list.json", 5},
		ref("ServiceAccount", "default", "b"): {"list.json", 6},
		ref("ServiceAccount", "default", "c"): {"crlf.yaml", 2},
		ref("ServiceAccount", "default", "d"): {"crlf.yaml", 8},
	}
	if !maps.Equal(res.Positions, want) {
		t.Errorf("Positions:\n got %v\nwant %v", res.Positions, want)
	}
}
