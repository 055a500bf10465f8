package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/meshward/meshward/internal/cli"
)

const (
	buyer     = "bookbuyer/bookbuyer"
	thief     = "bookthief/bookthief"
	store     = "bookstore/bookstore"
	storeV2   = "bookstore/bookstore-v2"
	warehouse = "bookwarehouse/bookwarehouse"
	nobody    = "nowhere/nobody"
	port      = 14001
)

// row is one request of the parity table and its expected answer.
type row struct {
	name     string
	src, dst string
	// tcp makes the request a TCP connection to port; otherwise it is an
	// HTTP request (method, path with query, headers) to port.
	tcp     bool
	port    uint32
	method  string
	path    string
	headers map[string]string
	// permissive runs the request against a mesh in permissive mode.
	permissive bool

	allowed bool
	// why is a part of the reason every path must give.
	why string
}

func get(name, src, dst, path string, allowed bool, why string) row {
	return row{name: name, src: src, dst: dst, port: port, method: "GET", path: path, allowed: allowed, why: why}
}

func post(name, src, dst, path string, allowed bool, why string) row {
	return row{name: name, src: src, dst: dst, port: port, method: "POST", path: path, allowed: allowed, why: why}
}

func tcp(name, src, dst string, p uint32, allowed bool, why string) row {
	return row{name: name, src: src, dst: dst, tcp: true, port: p, allowed: allowed, why: why}
}

func (r row) with(headers map[string]string) row {
	r.headers = headers
	return r
}

func (r row) inPermissiveMode() row {
	r.permissive = true
	return r
}

const (
	booksBought = "HTTPRouteGroup bookstore/bookstore-service-routes match books-bought"
	buyABook    = "HTTPRouteGroup bookstore/bookstore-service-routes match buy-a-book"
	restock     = "HTTPRouteGroup bookwarehouse/bookwarehouse-service-routes match restock-books"
	noMatch     = "no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore allows"
	thiefDenied = "no TrafficTarget allows bookthief/bookthief to call"
	notInMesh   = `is not in the mesh`
	permissive  = "permissive mode allows"
)

var (
	uaBuyer = map[string]string{"User-Agent": "bookbuyer/1.0"}
	uaCurl  = map[string]string{"User-Agent": "curl/8.0"}
)

// parityTable is examples/bookstore's expected decisions (rows 1-14 of its
// README) and variations on them.
func parityTable() []row {
	return []row{
		// The README's table.
		get("01 books-bought", buyer, store, "/books-bought", true, booksBought),
		get("02 query string", buyer, store, "/books-bought?limit=10", true, booksBought),
		get("03 buy-a-book with the header", buyer, store, "/buy-a-book/new", true, buyABook).with(uaBuyer),
		get("04 buy-a-book, other user agent", buyer, store, "/buy-a-book/new", false, noMatch+" GET /buy-a-book/new").with(uaCurl),
		post("05 POST books-bought", buyer, store, "/books-bought", false, noMatch+" POST /books-bought"),
		post("06 update-books-bought", buyer, store, "/update-books-bought", false, noMatch+" POST /update-books-bought"),
		get("07 bookthief", thief, store, "/books-bought", false, thiefDenied+" bookstore/bookstore"),
		get("08 bookthief with the header", thief, store, "/buy-a-book/new", false, thiefDenied+" bookstore/bookstore").with(uaBuyer),
		post("09 restock", store, warehouse, "/restock-books", true, restock),
		post("10 restock from v2", storeV2, warehouse, "/restock-books", true, restock),
		tcp("11 TCP to the warehouse", store, warehouse, port, true, "TCPRoute bookwarehouse/bookwarehouse-tcp"),
		post("12 bookbuyer restocks", buyer, warehouse, "/restock-books", false, "no TrafficTarget allows bookbuyer/bookbuyer to call bookwarehouse/bookwarehouse"),
		tcp("13 bookthief TCP", thief, warehouse, port, false, thiefDenied+" bookwarehouse/bookwarehouse"),
		tcp("14 HTTP rules do not open TCP", buyer, store, port, false, "HTTP rules do not allow TCP"),

		// The other bookstore identity has the same rules.
		get("15 books-bought from v2", buyer, storeV2, "/books-bought", true, "bookbuyer-access-bookstore-v2"),
		post("16 update-books-bought on v2", buyer, storeV2, "/update-books-bought", false, "no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore-v2"),
		// pathRegex is anchored at the start only.
		get("17 prefix match", buyer, store, "/books-bought/2024", true, booksBought),

		// Dot segments are removed before matching.
		get("18 dot-dot segment", buyer, store, "/public/../books-bought", true, booksBought),
		get("19 dot segment", buyer, store, "/./books-bought", true, booksBought),
		get("20 dot-dot above the root", buyer, store, "/../../books-bought", true, booksBought),
		get("21 dot-dot into a denied path", buyer, store, "/books-bought/../update-books-bought", false, noMatch+" GET /update-books-bought"),
		get("22 dot-dot out of a denied path", buyer, store, "/update-books-bought/../books-bought", true, booksBought),
		// Repeated slashes are merged.
		get("23 leading double slash", buyer, store, "//books-bought", true, booksBought),
		get("24 inner double slash", buyer, store, "/buy-a-book//new", true, buyABook).with(uaBuyer),
		get("25 trailing slashes and a query", buyer, store, "/books-bought///?limit=1", true, booksBought),
		// Percent-encoded unreserved characters are decoded.
		get("26 encoded letter", buyer, store, "/%62ooks-bought", true, booksBought),
		get("27 encoded hyphen", buyer, store, "/books%2Dbought", true, booksBought),
		get("28 encoded segment, lower-case hex", buyer, store, "/buy-a-book/%6e%65%77", true, buyABook).with(uaBuyer),
		// Encoded slashes, backslashes and dot segments are refused.
		get("29 encoded slash", buyer, store, "/buy-a-book%2Fnew", false, "encoded slash").with(uaBuyer),
		get("30 encoded slash, lower case", buyer, store, "/books-bought%2f2024", false, "encoded slash"),
		get("31 encoded backslash", buyer, store, "/books-bought%5Cx", false, "invalid request"),
		get("32 encoded dot-dot segment", buyer, store, "/x/%2e%2e/books-bought", false, "invalid request"),
		// Paths are case-sensitive.
		get("33 capitalised path", buyer, store, "/Books-Bought", false, noMatch+" GET /Books-Bought"),
		get("34 upper-case path", buyer, store, "/BOOKS-BOUGHT", false, noMatch+" GET /BOOKS-BOUGHT"),
		get("35 upper-case last segment", buyer, store, "/buy-a-book/NEW", false, noMatch).with(uaBuyer),
		// The query string never takes part in path matching.
		get("36 allowed path in the query", buyer, store, "/update-books-bought?next=/books-bought", false, noMatch+" GET /update-books-bought"),
		get("37 dot segments in the query", buyer, store, "/books-bought?path=/../admin&x=%2F", true, booksBought),
		// Header names are case-insensitive, values are not.
		get("38 header name in upper case", buyer, store, "/buy-a-book/new", true, buyABook).with(map[string]string{"USER-AGENT": "bookbuyer/1.0"}),
		get("39 header value in another case", buyer, store, "/buy-a-book/new", false, noMatch).with(map[string]string{"User-Agent": "BookBuyer/1.0"}),
		get("40 buy-a-book without the header", buyer, store, "/buy-a-book/new", false, noMatch),
		// TCP checks are per port.
		tcp("41 TCP to another port", store, warehouse, 8080, false, "no TCPRoute of TrafficTarget bookwarehouse/bookstore-access-bookwarehouse allows port 8080"),
		tcp("42 TCP from v2", storeV2, warehouse, port, true, "TCPRoute bookwarehouse/bookwarehouse-tcp"),
		tcp("43 TCP to the bookstore, other port", buyer, store, 8080, false, "HTTP rules do not allow TCP"),
		// Identities the mesh does not know.
		get("44 unknown source", nobody, store, "/books-bought", false, notInMesh),
		get("45 unknown destination", buyer, nobody, "/books-bought", false, notInMesh),
		tcp("46 unknown source, TCP", nobody, warehouse, port, false, notInMesh),

		// Permissive mode allows every pair of identities the mesh knows.
		get("47 permissive: bookthief", thief, store, "/books-bought", true, permissive).inPermissiveMode(),
		post("48 permissive: any route", buyer, store, "/update-books-bought", true, permissive).inPermissiveMode(),
		tcp("49 permissive: TCP", thief, warehouse, port, true, permissive).inPermissiveMode(),
		get("50 permissive: unknown source", nobody, store, "/books-bought", false, notInMesh).inPermissiveMode(),
		get("51 permissive: unknown destination", thief, nobody, "/books-bought", false, notInMesh).inPermissiveMode(),
		get("52 permissive: encoded slash", buyer, store, "/buy-a-book%2Fnew", false, "encoded slash").inPermissiveMode(),
	}
}

// verdict is one path's answer to a row.
type verdict struct {
	path    string
	allowed bool
	reason  string
}

// TestParity asks each request of the table through the three decision
// paths: the ext_authz server over gRPC, the nginx auth endpoint over
// HTTP (with X-Original-URL as a path and as nginx's full URL), and
// `meshward check`. Every path must give the table's answer, with the same
// reason.
func TestParity(t *testing.T) {
	dir := exampleDir(t)
	servers := map[bool]*meshward{
		false: serve(t, dir),
		true:  serve(t, dir, "--permissive"),
	}
	table := parityTable()
	names := map[string]bool{}
	for _, r := range table {
		if names[r.name] {
			t.Fatalf("row %q twice", r.name)
		}
		names[r.name] = true
	}
	for _, r := range table {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			m := servers[r.permissive]
			got := []verdict{viaExtAuthz(t, m, r)}
			if !r.tcp {
				got = append(got, viaNginxEndpoint(t, m, r, false), viaNginxEndpoint(t, m, r, true))
			}
			got = append(got, viaCheck(t, r))
			for _, v := range got {
				if v.allowed != r.allowed {
					t.Errorf("%s: allowed=%v, want %v; reason: %s", v.path, v.allowed, r.allowed, v.reason)
				}
				if !strings.Contains(v.reason, r.why) {
					t.Errorf("%s: reason %q lacks %q", v.path, v.reason, r.why)
				}
				if v.reason != got[0].reason {
					t.Errorf("reasons differ:\n%s: %s\n%s: %s", got[0].path, got[0].reason, v.path, v.reason)
				}
			}
		})
	}
}

// viaExtAuthz asks the ext_authz server as Envoy does: the principals of
// the verified certificates, the destination port, and for HTTP the
// request attributes with lower-case header names and pseudo-headers.
func viaExtAuthz(t *testing.T, m *meshward, r row) verdict {
	t.Helper()
	attrs := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Principal: principal(r.src),
			Address:   socketAddress("10.1.1.10", 43210),
		},
		Destination: &authv3.AttributeContext_Peer{
			Principal: principal(r.dst),
			Address:   socketAddress("10.1.3.10", r.port),
		},
	}
	if !r.tcp {
		host := fmt.Sprintf("%s:%d", serviceHost(r.dst), r.port)
		headers := map[string]string{":method": r.method, ":path": r.path, ":authority": host, ":scheme": "http"}
		for k, v := range r.headers {
			headers[k] = v
		}
		attrs.Request = &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: r.method, Path: r.path, Host: host, Scheme: "http", Protocol: "HTTP/1.1",
			Headers: headers,
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.authz.Check(ctx, &authv3.CheckRequest{Attributes: attrs})
	if err != nil {
		t.Fatalf("ext_authz: %v", err)
	}
	v := verdict{path: "ext_authz", allowed: resp.GetStatus().GetCode() == int32(code.Code_OK)}
	v.reason = resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
	switch {
	case v.allowed && resp.GetOkResponse() == nil:
		t.Errorf("ext_authz: allowed without an OkHttpResponse: %v", resp)
	case !v.allowed && resp.GetStatus().GetCode() != int32(code.Code_PERMISSION_DENIED):
		t.Errorf("ext_authz: status %v, want OK or PERMISSION_DENIED", resp.GetStatus())
	case !v.allowed && resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden:
		t.Errorf("ext_authz: denied with HTTP status %v, want 403", resp.GetDeniedResponse().GetStatus())
	}
	if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() == "" {
		t.Errorf("ext_authz: no decision id in the dynamic metadata")
	}
	return v
}

func socketAddress(ip string, p uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
	}}}
}

// serviceHost is a host name for the Service of an identity.
func serviceHost(identity string) string {
	ns, sa, _ := strings.Cut(identity, "/")
	return sa + "." + ns
}

// viaNginxEndpoint asks the nginx auth endpoint as an nginx subrequest
// does: the original request's headers, X-Original-URL (as a path, or as
// nginx's $scheme://$http_host$request_uri), X-Original-Method and the
// verified client principal. The test runs on loopback, a trusted proxy.
func viaNginxEndpoint(t *testing.T, m *meshward, r row, fullURL bool) verdict {
	t.Helper()
	ns, sa, _ := strings.Cut(r.dst, "/")
	endpoint := fmt.Sprintf("http://%s/v1/mesh/%s/%s?port=%d", m.nginxAddr, url.PathEscape(ns), url.PathEscape(sa), r.port)
	original := r.path
	name := "nginx endpoint (X-Original-URL path)"
	if fullURL {
		original = fmt.Sprintf("http://%s:%d%s", serviceHost(r.dst), r.port, r.path)
		name = "nginx endpoint (X-Original-URL full URL)"
	}
	req := newRequest(t, "GET", endpoint, r.headers)
	req.Header.Set("X-Original-URL", original)
	req.Header.Set("X-Original-Method", r.method)
	req.Header.Set("X-Client-Principal", principal(r.src))
	a := do(t, req)
	switch a.code {
	case 200, 403:
	default:
		t.Errorf("%s: status %d, want 200 or 403; body: %s", name, a.code, a.body)
	}
	if a.header.Get("X-Meshward-Decision-Id") == "" {
		t.Errorf("%s: no decision id header", name)
	}
	return verdict{path: name, allowed: a.code == 200, reason: a.reason}
}

// checkOutput is the part of `meshward check -o json` the test reads.
type checkOutput struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	ID      string `json:"id"`
}

// viaCheck runs `meshward check -o json` on the example.
func viaCheck(t *testing.T, r row) verdict {
	t.Helper()
	args := []string{
		"check", "--dir", exampleDir(t), "--source", r.src, "--destination", r.dst,
		"--port", fmt.Sprint(r.port), "-o", "json",
	}
	if !r.tcp {
		args = append(args, "--method", r.method, "--path", r.path)
		for _, k := range slices.Sorted(maps.Keys(r.headers)) {
			args = append(args, "--header", k+"="+r.headers[k])
		}
	}
	if r.permissive {
		args = append(args, "--permissive")
	}
	var stdout, stderr bytes.Buffer
	exit := cli.Run(context.Background(), args, &stdout, &stderr)
	var out checkOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("meshward check: output is not JSON (exit %d): %v\n%s\n%s", exit, err, stdout.String(), stderr.String())
	}
	want := cli.ExitError
	if out.Allowed {
		want = cli.ExitOK
	}
	if exit != want {
		t.Errorf("meshward check: exit %d with allowed=%v, want %d", exit, out.Allowed, want)
	}
	if out.ID == "" {
		t.Errorf("meshward check: no decision id")
	}
	return verdict{path: "meshward check", allowed: exit == cli.ExitOK, reason: out.Reason}
}
