package policy

import (
	"github.com/meshward/meshward/mesh"
)

func ref(kind, ns, name string) mesh.ObjectRef {
	return mesh.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func id(ns, name string) mesh.Identity { return mesh.Identity{Namespace: ns, Name: name} }

// bookstore is the model of examples/bookstore, written out.
func bookstore() *mesh.Model {
	routes := ref("HTTPRouteGroup", "bookstore", "bookstore-service-routes")
	buyerMatches := []mesh.HTTPMatch{
		{Group: routes, Name: "books-bought", Methods: []string{"GET"}, PathRegex: "/books-bought"},
		{
			Group: routes, Name: "buy-a-book", Methods: []string{"GET"}, PathRegex: "/buy-a-book/new",
			Headers: []mesh.HeaderMatch{{Name: "user-agent", Regex: ".*bookbuyer.*"}},
		},
	}
	return &mesh.Model{
		Options:    mesh.DefaultOptions(),
		Namespaces: []string{"bookbuyer", "bookstore", "bookthief", "bookwarehouse"},
		Identities: []mesh.Identity{
			id("bookbuyer", "bookbuyer"), id("bookstore", "bookstore"), id("bookstore", "bookstore-v2"),
			id("bookthief", "bookthief"), id("bookwarehouse", "bookwarehouse"),
		},
		Access: []mesh.AccessRule{
			{
				Origin:      ref("TrafficTarget", "bookstore", "bookbuyer-access-bookstore"),
				Destination: id("bookstore", "bookstore"),
				Sources:     []mesh.Identity{id("bookbuyer", "bookbuyer")},
				HTTP:        buyerMatches,
			},
			{
				Origin:      ref("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v2"),
				Destination: id("bookstore", "bookstore-v2"),
				Sources:     []mesh.Identity{id("bookbuyer", "bookbuyer")},
				HTTP:        buyerMatches,
			},
			{
				Origin:      ref("TrafficTarget", "bookwarehouse", "bookstore-access-bookwarehouse"),
				Destination: id("bookwarehouse", "bookwarehouse"),
				Sources:     []mesh.Identity{id("bookstore", "bookstore"), id("bookstore", "bookstore-v2")},
				HTTP: []mesh.HTTPMatch{{
					Group: ref("HTTPRouteGroup", "bookwarehouse", "bookwarehouse-service-routes"),
					Name:  "restock-books", Methods: []string{"POST"}, PathRegex: "/restock-books",
				}},
				TCP: []mesh.PortMatch{{
					Route: ref("TCPRoute", "bookwarehouse", "bookwarehouse-tcp"),
					Name:  "bookwarehouse-port", Ports: []int32{14001},
				}},
			},
		},
	}
}
