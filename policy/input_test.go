package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/mesh"
)

func TestInput(t *testing.T) {
	e := newEngine(t, Options{}, bookstore(), nil)
	g := newGoldenDir(t, "input")
	tests := map[string]Request{
		"http": {
			Source: buyer, Destination: "spiffe://cluster.local/ns/bookstore/sa/bookstore", Port: 14001,
			Method: "GET", Path: "/books-bought?limit=10&tag=a&tag=b", Host: "bookstore.bookstore:14001",
			Headers: map[string]string{"User-Agent": "bookbuyer/1.0", "Accept": "*/*"},
		},
		"http-normalised-path": {Source: buyer, Destination: store, Method: "POST", Path: "/a/./b/../c%7e/%3a"},
		"http-defaults":        {Source: buyer, Destination: store},
		"host-from-header":     {Source: buyer, Destination: store, Path: "/", Headers: map[string]string{"Host": "example"}},
		"tcp":                  {Source: store, Destination: warehouse, Protocol: ProtocolTCP, Port: 14001},
		"unknown-source":       {Source: "spiffe://cluster.local/ns/x/sa/y", Destination: store, Path: "/"},
		"no-source":            {Destination: store, Protocol: ProtocolUDP, Port: 53},
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			in, err := e.Input(r)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := ast.JSON(in)
			if err != nil {
				t.Fatal(err)
			}
			g.check(t, name, doc)
		})
	}
}

func TestResolve(t *testing.T) {
	m := &mesh.Model{
		Options:    mesh.DefaultOptions(),
		Identities: []mesh.Identity{id("shop", "web.v1"), id("shop", "api")},
	}
	dns := *m
	dns.Options.PrincipalFormat = mesh.PrincipalDNS
	tests := map[string]struct {
		model     *mesh.Model
		in        string
		principal string
		identity  string // "" when unknown
	}{
		"spiffe":               {m, "spiffe://cluster.local/ns/shop/sa/web.v1", "spiffe://cluster.local/ns/shop/sa/web.v1", "shop/web.v1"},
		"dns in a spiffe mesh": {m, "web.v1.shop.cluster.local", "web.v1.shop.cluster.local", ""},
		"dns in a dns mesh":    {&dns, "web.v1.shop.cluster.local", "web.v1.shop.cluster.local", "shop/web.v1"},
		"spiffe in a dns mesh": {&dns, "spiffe://cluster.local/ns/shop/sa/web.v1", "spiffe://cluster.local/ns/shop/sa/web.v1", ""},
		"name":                 {m, "shop/api", "spiffe://cluster.local/ns/shop/sa/api", "shop/api"},
		"name in dns mesh":     {&dns, "shop/api", "api.shop.cluster.local", "shop/api"},
		"dotted name":          {&dns, "shop/web.v1", "web.v1.shop.cluster.local", "shop/web.v1"},
		"unknown name":         {m, "shop/db", "spiffe://cluster.local/ns/shop/sa/db", ""},
		"unknown principal":    {m, "spiffe://cluster.local/ns/shop/sa/db", "spiffe://cluster.local/ns/shop/sa/db", ""},
		"other trust domain":   {m, "spiffe://other/ns/shop/sa/api", "spiffe://other/ns/shop/sa/api", ""},
		"not split on dots":    {&dns, "v1.shop.cluster.local", "v1.shop.cluster.local", ""},
		"trailing dot":         {&dns, "web.v1.shop.cluster.local.", "web.v1.shop.cluster.local.", ""},
		"three parts":          {m, "a/b/c", "a/b/c", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, e := newIdentityIndex(tc.model).resolve(tc.in)
			if got := string(p.Value.(ast.String)); got != tc.principal {
				t.Errorf("principal %q, want %q", got, tc.principal)
			}
			got := ""
			if e != nil {
				got = string(e.name.Value.(ast.String))
			}
			if got != tc.identity {
				t.Errorf("identity %q, want %q", got, tc.identity)
			}
		})
	}
}

func TestPrincipalClash(t *testing.T) {
	// shop/web.v1 and v1.shop/web would both be web.v1.shop.cluster.local
	// in DNS form (namespaces cannot contain dots, but the model does not
	// enforce it): the principal identifies nobody.
	m := &mesh.Model{Options: mesh.DefaultOptions(), Identities: []mesh.Identity{id("shop", "web.v1"), id("v1.shop", "web")}}
	m.Options.PrincipalFormat = mesh.PrincipalDNS
	if _, e := newIdentityIndex(m).resolve("web.v1.shop.cluster.local"); e != nil {
		t.Fatalf("clashing principal resolved to %v", e.name)
	}
	if _, ok := Data(m)["identities"].(map[string]any)["web.v1.shop.cluster.local"]; ok {
		t.Fatal("clashing principal in the data document")
	}
}

func TestParseIdentity(t *testing.T) {
	tests := map[string]struct {
		in string
		ok bool
	}{
		"identity":  {"ns/name", true},
		"dots":      {"ns/a.b.c", true},
		"no slash":  {"name", false},
		"empty ns":  {"/name", false},
		"empty":     {"ns/", false},
		"principal": {"spiffe://td/ns/a/sa/b", false},
		"two":       {"a/b/c", false},
		"space":     {"a/b c", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, ok := ParseIdentity(tc.in); ok != tc.ok {
				t.Fatalf("ParseIdentity(%q) ok = %v", tc.in, ok)
			}
		})
	}
}
