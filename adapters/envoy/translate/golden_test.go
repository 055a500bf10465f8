package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	sources "github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/internal/golden"
	"github.com/meshward/meshward/mesh"
)

var update = flag.Bool("update", false, "rewrite testdata/<case>.<kind>.yaml from the translator's output and remove stale ones")

// outputKinds are the golden files of a case, one per resource type.
var outputKinds = []string{"listeners", "routes", "clusters", "endpoints"}

// goldenCase is one testdata/<case>.in.yaml with its options.
type goldenCase struct {
	name     string
	path     string
	model    *mesh.Model
	build    func() *mesh.Model // builds the model again from the input
	identity mesh.Identity
	opts     Options
}

// TestGolden translates every testdata/<case>.in.yaml for the identity
// and options of its first line, checks that every resource passes
// ValidateAll, and compares the resources with
// testdata/<case>.{listeners,routes,clusters,endpoints}.yaml.
func TestGolden(t *testing.T) {
	cases := loadCases(t)
	if *update {
		removeStaleOutputs(t, cases)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := ForIdentity(c.model, c.identity, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			eds := Endpoints(c.model, c.opts)
			if err := Validate(append(res.Messages(), messages(eds)...)...); err != nil {
				t.Errorf("invalid resources:\n%v", err)
			}
			outputs := map[string][]proto.Message{
				"listeners": messages(res.Listeners),
				"routes":    messages(res.Routes),
				"clusters":  messages(res.Clusters),
				"endpoints": messages(eds),
			}
			for _, kind := range outputKinds {
				golden.Check(t, strings.TrimSuffix(c.path, ".in.yaml")+"."+kind+".yaml", render(t, outputs[kind]), *update)
			}
		})
	}
}

// TestDeterministic builds the model of every case twice, from a fresh
// decoding of the input, translates each, and compares the deterministic
// wire encoding of the two results.
func TestDeterministic(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.name, func(t *testing.T) {
			encode := func() []byte {
				m := c.build()
				res, err := ForIdentity(m, c.identity, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				for _, r := range append(res.Messages(), messages(Endpoints(m, c.opts))...) {
					b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
					if err != nil {
						t.Fatal(err)
					}
					buf.Write(b)
				}
				return buf.Bytes()
			}
			if a, b := encode(), encode(); !bytes.Equal(a, b) {
				t.Error("two translations of the same model differ")
			}
		})
	}
}

func messages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// render writes resources as a YAML list: protojson, then YAML (which
// sorts keys, and so removes protojson's unstable spacing).
func render(t *testing.T, ms []proto.Message) []byte {
	t.Helper()
	list := make([]json.RawMessage, len(ms))
	for i, m := range ms {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		list[i] = b
	}
	js, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	ins := golden.Inputs(t)
	cases := make([]goldenCase, 0, len(ins))
	for _, in := range ins {
		c := goldenCase{name: golden.CaseName(in), path: in}
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		var meshOpts mesh.Options
		c.identity, c.opts, meshOpts, err = parseHeader(data)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		c.build = func() *mesh.Model {
			return sources.Build(golden.DecodeKnown(t, in, golden.WithIncludes(t, in, data)), meshOpts)
		}
		c.model = c.build()
		cases = append(cases, c)
	}
	return cases
}

func removeStaleOutputs(t *testing.T, cases []goldenCase) {
	t.Helper()
	outs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	for _, c := range cases {
		keep[c.path] = true
		for _, kind := range outputKinds {
			keep[strings.TrimSuffix(c.path, ".in.yaml")+"."+kind+".yaml"] = true
		}
	}
	for _, out := range outs {
		if !keep[out] {
			if err := os.Remove(out); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var headerField = regexp.MustCompile(`(\w+):\s*(\S+)`)

// parseHeader reads the first line, e.g.
//
//	# identity: ns/name  flavor: grpc  authz: rbac  pathMatch: full
//
// Keys: identity (required), flavor (required), authz, plaintext,
// extAuthzCluster, extAuthzAddress, clusterDomain, sdsCertName,
// sdsRootName, and the mesh options
// trustDomain, principalFormat, pathMatch, permissive, failOpen.
func parseHeader(data []byte) (mesh.Identity, Options, mesh.Options, error) {
	var id mesh.Identity
	var opts Options
	meshOpts := mesh.DefaultOptions()
	first, _, _ := strings.Cut(string(data), "\n")
	spec, ok := strings.CutPrefix(strings.TrimSpace(first), "#")
	if !ok {
		return id, opts, meshOpts, fmt.Errorf("first line is not an options comment")
	}
	for _, f := range headerField.FindAllStringSubmatch(spec, -1) {
		k, v := f[1], f[2]
		var err error
		switch k {
		case "identity":
			ns, name, ok := strings.Cut(v, "/")
			if !ok {
				return id, opts, meshOpts, fmt.Errorf("identity %q is not ns/name", v)
			}
			id = mesh.Identity{Namespace: ns, Name: name}
		case "flavor":
			opts.Flavor = Flavor(v)
		case "authz":
			opts.Authz = AuthzMode(v)
		case "plaintext":
			opts.Plaintext, err = strconv.ParseBool(v)
		case "extAuthzCluster":
			opts.ExtAuthzCluster = v
		case "extAuthzAddress":
			opts.ExtAuthzAddress = v
		case "clusterDomain":
			opts.ClusterDomain = v
		case "sdsCertName":
			opts.SDSCertName = v
		case "sdsRootName":
			opts.SDSRootName = v
		case "trustDomain":
			meshOpts.TrustDomain = v
		case "principalFormat":
			meshOpts.PrincipalFormat = mesh.PrincipalFormat(v)
		case "pathMatch":
			meshOpts.PathMatch = mesh.PathMatch(v)
		case "permissive":
			meshOpts.Permissive, err = strconv.ParseBool(v)
		case "failOpen":
			meshOpts.FailOpen, err = strconv.ParseBool(v)
		default:
			return id, opts, meshOpts, fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return id, opts, meshOpts, fmt.Errorf("option %s: %w", k, err)
		}
	}
	if id.IsZero() || opts.Flavor == "" {
		return id, opts, meshOpts, fmt.Errorf("the options comment must give identity and flavor")
	}
	return id, opts, meshOpts, meshOpts.Validate()
}
