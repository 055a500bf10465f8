package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy/policytest"
)

// modes is a model exercising the options and the corners of the data
// document: permissive, full path match, DNS principals, a custom trust
// domain, fail-open, unnamed matches, empty methods and paths, headers,
// TCP routes without ports, UDP routes, a target without sources, two
// targets for the same pair, and a ServiceAccount name with dots.
func modes() *mesh.Model {
	opts := mesh.Options{
		MeshName:        "meshward",
		TrustDomain:     "example.org",
		PrincipalFormat: mesh.PrincipalDNS,
		PathMatch:       mesh.PathMatchFull,
		Permissive:      true,
		FailOpen:        true,
	}
	group := ref("HTTPRouteGroup", "shop", "routes")
	return &mesh.Model{
		Options:    opts,
		Identities: []mesh.Identity{id("shop", "api"), id("shop", "web.v1"), id("tools", "debug")},
		Access: []mesh.AccessRule{
			{
				Origin:      ref("TrafficTarget", "shop", "a-web-to-api"),
				Destination: id("shop", "api"),
				Sources:     []mesh.Identity{id("shop", "web.v1")},
				HTTP: []mesh.HTTPMatch{
					{Group: group, Name: "any"},
					{
						Group: group, Methods: []string{"GET", "HEAD"}, PathRegex: "/items/[0-9]+",
						Headers: []mesh.HeaderMatch{{Name: "x-tenant", Regex: "acme|globex"}},
					},
				},
				UDP: []mesh.PortMatch{{Route: ref("UDPRoute", "shop", "dns"), Name: "dns", Ports: []int32{53}}},
			},
			{
				Origin:      ref("TrafficTarget", "shop", "b-everyone-tcp"),
				Destination: id("shop", "api"),
				Sources:     []mesh.Identity{id("shop", "web.v1"), id("tools", "debug")},
				TCP:         []mesh.PortMatch{{Route: ref("TCPRoute", "shop", "all-ports"), Name: "all"}},
			},
			{
				Origin:      ref("TrafficTarget", "shop", "c-nobody"),
				Destination: id("shop", "api"),
				HTTP:        []mesh.HTTPMatch{{Group: group, Name: "any"}},
			},
		},
	}
}

func TestData(t *testing.T) {
	g := newGoldenDir(t, "data")
	for name, m := range map[string]*mesh.Model{
		"empty":     nil,
		"bookstore": bookstore(),
		"modes":     modes(),
	} {
		t.Run(name, func(t *testing.T) {
			g.check(t, name, Data(m))
		})
	}
}

// TestDataValue checks that the AST the engine stores is the document of
// Data.
func TestDataValue(t *testing.T) {
	for name, m := range map[string]*mesh.Model{
		"empty":     nil,
		"bookstore": bookstore(),
		"modes":     modes(),
		"generated": policytest.Generated(50),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := ast.InterfaceToValue(Data(m))
			if err != nil {
				t.Fatal(err)
			}
			if got := dataValue(m); ast.Compare(got, want) != 0 {
				t.Fatalf("dataValue differs from Data:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestAnchoring(t *testing.T) {
	tests := map[string]struct {
		got, want string
	}{
		"prefix":        {AnchorPath("/api", mesh.PathMatchPrefix), "^(?:/api)"},
		"full":          {AnchorPath("/api", mesh.PathMatchFull), "^(?:/api)$"},
		"alternation":   {AnchorPath("/a|/b", mesh.PathMatchPrefix), "^(?:/a|/b)"},
		"empty is any":  {AnchorPath("", mesh.PathMatchFull), ""},
		"header":        {FullMatch(".*bookbuyer.*"), "^(?:.*bookbuyer.*)$"},
		"methods":       {MethodRegex([]string{"GET", "POST"}), "^(?:GET|POST)$"},
		"method quoted": {MethodRegex([]string{"M.*"}), `^(?:M\.\*)$`},
		"no methods":    {MethodRegex(nil), ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
