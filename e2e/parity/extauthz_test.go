package parity

import (
	"maps"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshward/meshward/mesh"
)

// kind is what a row of the ext_authz table varies.
type kind string

const (
	kindPath   kind = "HTTP path"
	kindMethod kind = "HTTP method"
	kindHeader kind = "HTTP header"
	kindTCP    kind = "TCP port"
	kindCaller kind = "caller"
)

// authzRow is one request of the ext_authz table and its expected
// decisions.
type authzRow struct {
	name string
	kind kind
	// src and dst are the principals of the peers' certificates; src is
	// empty when the caller presented none.
	src, dst string
	// host is the Service of the destination, as the client named it.
	host string
	// tcp makes the row a TCP connection to port; otherwise it is an
	// HTTP request.
	tcp     bool
	port    uint32
	method  string
	path    string
	headers map[string]string
	// smi is the decision of examples/bookstore; oci that of
	// examples/bookstore-oci, and so of the SMI form of its policy.
	smi, oci bool
}

func httpRow(name string, src, dst mesh.Identity, method, path string) authzRow {
	return authzRow{
		name: name, src: principal(src), dst: principal(dst), port: servicePort, method: method, path: path,
		host: serviceHost(mesh.ServiceKey(dst)),
	}
}

func tcpRow(name string, src, dst mesh.Identity, port uint32) authzRow {
	return authzRow{name: name, src: principal(src), dst: principal(dst), tcp: true, port: port}
}

// from replaces the caller's principal.
func (r authzRow) from(src string) authzRow {
	r.src = src
	return r
}

func (r authzRow) with(name, value string) authzRow {
	r.headers = maps.Clone(r.headers)
	if r.headers == nil {
		r.headers = map[string]string{}
	}
	r.headers[name] = value
	return r
}

func (r authzRow) want(smi, oci bool) authzRow {
	r.smi, r.oci = smi, oci
	return r
}

func (r authzRow) request() *authv3.CheckRequest {
	if r.tcp {
		return checkRequest(r.src, r.dst, r.port, nil)
	}
	return checkRequest(r.src, r.dst, r.port, &httpRequest{
		method: r.method, path: r.path, host: r.host, protocol: "HTTP/1.1", headers: r.headers,
	})
}

// uaBuyer is the user agent that the buy-a-book match asks for.
const uaBuyer = "bookbuyer/1.0"

// authzTable is the ext_authz table: requests between the bookstore's
// identities that vary one thing each, with the decisions of the SMI
// example and of the OCI example. The OCI form allows everything between
// the pairs its AccessPolicies name (bookbuyer to both bookstores, both
// bookstores to the bookwarehouse), so it allows every request the SMI
// example's match rules deny between those pairs, and nothing else.
func authzTable() []authzRow {
	var table []authzRow
	add := func(k kind, rows ...authzRow) {
		for _, r := range rows {
			r.kind = k
			table = append(table, r)
		}
	}
	add(kindPath,
		httpRow("books-bought", buyer, storeV1, "GET", "/books-bought").want(true, true),
		httpRow("query string", buyer, storeV1, "GET", "/books-bought?limit=10").want(true, true),
		httpRow("pathRegex is a prefix", buyer, storeV2, "GET", "/books-bought/2024").want(true, true),
		httpRow("dot segments removed", buyer, storeV1, "GET", "/public/../books-bought").want(true, true),
		httpRow("slashes merged", storeV2, warehouse, "POST", "//restock-books").want(true, true),
		httpRow("restock-books", storeV1, warehouse, "POST", "/restock-books").want(true, true),
		httpRow("restock-books, longer path", storeV1, warehouse, "POST", "/restock-books/42").want(true, true),
		httpRow("path of a match not granted", buyer, storeV1, "GET", "/update-books-bought").want(false, true),
		httpRow("paths are case-sensitive", buyer, storeV1, "GET", "/Books-Bought").want(false, true),
		httpRow("dot-dot into another path", buyer, storeV1, "GET", "/books-bought/../update-books-bought").want(false, true),
		httpRow("path no route names", storeV1, warehouse, "POST", "/audit").want(false, true),
		httpRow("granted path only in the query", buyer, storeV2, "GET", "/admin?next=/books-bought").want(false, true),
		httpRow("encoded slash", buyer, storeV1, "GET", "/buy-a-book%2Fnew").with("user-agent", uaBuyer).want(false, false),
		httpRow("encoded backslash", storeV1, warehouse, "POST", "/restock-books%5Cx").want(false, false),
		httpRow("encoded dot-dot", buyer, storeV1, "GET", "/x/%2e%2e/books-bought").want(false, false),
		httpRow("granted path, pair without access", buyer, warehouse, "POST", "/restock-books").want(false, false),
		httpRow("granted path, reverse direction", warehouse, storeV1, "GET", "/books-bought").want(false, false),
	)
	add(kindMethod,
		httpRow("GET buy-a-book on v2", buyer, storeV2, "GET", "/buy-a-book/new").with("user-agent", uaBuyer).want(true, true),
		httpRow("POST restock-books from v2", storeV2, warehouse, "POST", "/restock-books").want(true, true),
		httpRow("POST books-bought", buyer, storeV1, "POST", "/books-bought").want(false, true),
		httpRow("HEAD books-bought", buyer, storeV1, "HEAD", "/books-bought").want(false, true),
		httpRow("DELETE books-bought", buyer, storeV2, "DELETE", "/books-bought").want(false, true),
		httpRow("methods are case-sensitive", buyer, storeV1, "get", "/books-bought").want(false, true),
		httpRow("OPTIONS buy-a-book", buyer, storeV1, "OPTIONS", "/buy-a-book/new").with("user-agent", uaBuyer).want(false, true),
		httpRow("GET restock-books", storeV1, warehouse, "GET", "/restock-books").want(false, true),
		httpRow("PUT restock-books", storeV2, warehouse, "PUT", "/restock-books").want(false, true),
		httpRow("granted method, pair without access", buyer, warehouse, "POST", "/restock-books").want(false, false),
		httpRow("POST update-books-bought by bookthief", thief, storeV1, "POST", "/update-books-bought").want(false, false),
		httpRow("DELETE, pair without access", warehouse, storeV2, "DELETE", "/books-bought").want(false, false),
	)
	add(kindHeader,
		httpRow("buy-a-book, user agent", buyer, storeV1, "GET", "/buy-a-book/new").with("user-agent", uaBuyer).want(true, true),
		httpRow("buy-a-book, user agent anywhere in the value", buyer, storeV2, "GET", "/buy-a-book/new").with("user-agent", "Mozilla/5.0 (bookbuyer)").want(true, true),
		httpRow("buy-a-book, other headers too", buyer, storeV1, "GET", "/buy-a-book/new").with("user-agent", uaBuyer).with("x-canary", "true").want(true, true),
		httpRow("restock-books, header no rule names", storeV1, warehouse, "POST", "/restock-books").with("user-agent", uaBuyer).want(true, true),
		httpRow("buy-a-book, other user agent", buyer, storeV1, "GET", "/buy-a-book/new").with("user-agent", "curl/8.0").want(false, true),
		httpRow("buy-a-book, no user agent", buyer, storeV1, "GET", "/buy-a-book/new").want(false, true),
		httpRow("header values are case-sensitive", buyer, storeV2, "GET", "/buy-a-book/new").with("user-agent", "BookBuyer/1.0").want(false, true),
		httpRow("user agent, caller without access", thief, storeV1, "GET", "/buy-a-book/new").with("user-agent", uaBuyer).want(false, false),
		httpRow("headers never name the caller", thief, storeV1, "GET", "/books-bought").
			with("x-forwarded-client-cert", "URI="+principal(buyer)).with("x-meshward-source", buyer.String()).want(false, false),
		httpRow("user agent, bookstore to bookstore", storeV1, storeV2, "GET", "/buy-a-book/new").with("user-agent", uaBuyer).want(false, false),
	)
	add(kindTCP,
		tcpRow("bookstore to the bookwarehouse", storeV1, warehouse, servicePort).want(true, true),
		tcpRow("bookstore v2 to the bookwarehouse", storeV2, warehouse, servicePort).want(true, true),
		tcpRow("port the TCPRoute does not list", storeV1, warehouse, 8080).want(false, true),
		tcpRow("another port the TCPRoute does not list", storeV2, warehouse, 443).want(false, true),
		tcpRow("HTTP rules do not open TCP", buyer, storeV1, servicePort).want(false, true),
		tcpRow("HTTP rules do not open TCP, v2", buyer, storeV2, servicePort).want(false, true),
		tcpRow("bookthief to the bookwarehouse", thief, warehouse, servicePort).want(false, false),
		tcpRow("bookbuyer to the bookwarehouse", buyer, warehouse, servicePort).want(false, false),
		tcpRow("bookwarehouse to the bookstore", warehouse, storeV1, servicePort).want(false, false),
		tcpRow("bookstore to the bookbuyer", storeV1, buyer, servicePort).want(false, false),
	)
	add(kindCaller,
		httpRow("bookbuyer", buyer, storeV2, "GET", "/books-bought").want(true, true),
		httpRow("bookstore", storeV1, warehouse, "POST", "/restock-books?from=v1").want(true, true),
		httpRow("bookthief", thief, storeV1, "GET", "/books-bought").want(false, false),
		httpRow("bookthief restocks", thief, warehouse, "POST", "/restock-books").want(false, false),
		httpRow("identity the mesh does not know", nobody, storeV1, "GET", "/books-bought").want(false, false),
		tcpRow("identity the mesh does not know, TCP", nobody, warehouse, servicePort).want(false, false),
		httpRow("no client certificate", buyer, storeV1, "GET", "/books-bought").from("").want(false, false),
		httpRow("another trust domain", buyer, storeV1, "GET", "/books-bought").from("spiffe://example.org/ns/bookbuyer/sa/bookbuyer").want(false, false),
		httpRow("caller's name in another namespace", buyer, storeV1, "GET", "/books-bought").from("spiffe://cluster.local/ns/bookstore/sa/bookbuyer").want(false, false),
		httpRow("principal with a suffix", buyer, storeV1, "GET", "/books-bought").from(principal(buyer)+"/x").want(false, false),
		httpRow("destination the mesh does not know", buyer, nobody, "GET", "/books-bought").want(false, false),
	)
	return table
}

// coarserReasons are the reasons the SMI example gives for denying a
// request between a pair it allows something: its match rules. The OCI
// form has none, and allows those requests.
var coarserReasons = []string{
	"no HTTPRouteGroup match of TrafficTarget",
	"no TCPRoute of TrafficTarget",
	"HTTP rules do not allow TCP",
}

// TestExtAuthzParity starts meshward's ext_authz server on each form of
// the bookstore and sends the table's requests to each as Envoy sends
// them, over gRPC. The OCI form and the SMI form of the same policy
// decide every row alike (and answer denied requests with the same HTTP
// status); the SMI example decides as the table says, which differs from
// the OCI form only where the example's match rules deny a request
// between a pair the OCI form allows everything.
func TestExtAuthzParity(t *testing.T) {
	table := authzTable()
	checkTable(t, table)
	clients := map[string]authv3.AuthorizationClient{}
	for _, f := range forms {
		clients[f.name] = startExtAuthz(t, f.load(t, f.write(t, nil)))
	}
	same, coarser := 0, 0
	for _, r := range table {
		if r.smi == r.oci {
			same++
		} else {
			coarser++
		}
		t.Run(string(r.kind)+"/"+r.name, func(t *testing.T) {
			got := map[string]verdict{}
			for _, f := range forms {
				got[f.name] = check(t, clients[f.name], r.request())
			}
			smi, oci, pairs := got[smiForm.name], got[ociForm.name], got[pairsForm.name]
			if smi.allowed != r.smi {
				t.Errorf("%s: %s, want allowed=%v", smiForm.name, smi, r.smi)
			}
			if oci.allowed != r.oci {
				t.Errorf("%s: %s, want allowed=%v", ociForm.name, oci, r.oci)
			}
			if pairs.allowed != oci.allowed || pairs.status != oci.status {
				t.Errorf("the OCI form and the SMI form of its policy disagree:\n%s: %s\n%s: %s", ociForm.name, oci, pairsForm.name, pairs)
			}
			for _, v := range got {
				if want := map[bool]int{true: 200, false: 403}[v.allowed]; v.status != want {
					t.Errorf("%s: HTTP status %d, want %d", v, v.status, want)
				}
			}
			if oci.allowed && !strings.Contains(oci.reason, "AccessPolicy ") {
				t.Errorf("%s: allowed because %q, want an AccessPolicy", ociForm.name, oci.reason)
			}
			if r.smi != r.oci && !slices.ContainsFunc(coarserReasons, func(s string) bool { return strings.Contains(smi.reason, s) }) {
				t.Errorf("%s denies a request the OCI form allows because %q, want one of its match rules (%q)", smiForm.name, smi.reason, coarserReasons)
			}
		})
	}
	t.Logf("%d requests: %d decided alike by all three forms, %d denied by the SMI example's match rules and allowed by the OCI form; all %d alike in the OCI form and the SMI form of its policy",
		len(table), same, coarser, len(table))
}

// checkTable checks that the table is what the parity requirement asks
// for: at least 50 requests, unique names, and both decisions of every
// kind in each form. Only the SMI example may deny more than the OCI
// form.
func checkTable(t *testing.T, table []authzRow) {
	t.Helper()
	if len(table) < 50 {
		t.Fatalf("%d requests, want at least 50", len(table))
	}
	names := map[string]bool{}
	type outcome struct {
		kind    kind
		form    string
		allowed bool
	}
	seen := map[outcome]bool{}
	for _, r := range table {
		name := string(r.kind) + "/" + r.name
		if names[name] {
			t.Fatalf("row %q twice", name)
		}
		names[name] = true
		if r.smi && !r.oci {
			t.Fatalf("row %q: the SMI example allows what the OCI form denies: the table is wrong", name)
		}
		seen[outcome{r.kind, smiForm.name, r.smi}] = true
		seen[outcome{r.kind, ociForm.name, r.oci}] = true
	}
	for _, k := range []kind{kindPath, kindMethod, kindHeader, kindTCP, kindCaller} {
		for _, f := range []string{smiForm.name, ociForm.name} {
			for _, allowed := range []bool{true, false} {
				if !seen[outcome{k, f, allowed}] {
					t.Errorf("no %s row that the %s form decides allowed=%v", k, f, allowed)
				}
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
