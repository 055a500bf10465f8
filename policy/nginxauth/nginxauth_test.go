package nginxauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/nginxauth"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestMeshRequests checks requests between mesh workloads, as an nginx
// sidecar asks about them: the caller's verified principal in
// X-Client-Principal, the callee in the endpoint path.
func TestMeshRequests(t *testing.T) {
	base := serveHTTP(t, newHandler(t, newEngine(t, policy.Options{}, nil), nginxauth.Options{}))
	const endpoint = "/v1/mesh/bookstore/bookstore?port=14001"
	for name, tc := range map[string]struct {
		endpoint string
		headers  map[string]string
		code     int
		reason   string
	}{
		"allowed": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    200, reason: "bookbuyer/bookbuyer may call bookstore/bookstore: TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought",
		},
		"full URL with a query": {
			headers: map[string]string{"X-Original-URL": "https://bookstore.example.com/books-bought?limit=10", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    200, reason: "match books-bought",
		},
		"DNS-form principal in a SPIFFE mesh": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": "bookbuyer.bookbuyer.cluster.local"},
			code:    403, reason: `source principal "bookbuyer.bookbuyer.cluster.local" is not in the mesh`,
		},
		"original headers take part": {
			headers: map[string]string{"X-Original-URL": "/buy-a-book/new", "X-Original-Method": "GET", "X-Client-Principal": buyer, "User-Agent": "bookbuyer/1.0"},
			code:    200, reason: "match buy-a-book",
		},
		"header mismatch": {
			headers: map[string]string{"X-Original-URL": "/buy-a-book/new", "X-Original-Method": "GET", "X-Client-Principal": buyer, "User-Agent": "curl/8.0"},
			code:    403, reason: "no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore allows GET /buy-a-book/new",
		},
		"method": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "POST", "X-Client-Principal": buyer},
			code:    403, reason: "allows POST /books-bought",
		},
		"unlisted caller": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": thief},
			code:    403, reason: "no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore",
		},
		"normalised path": {
			headers: map[string]string{"X-Original-URL": "http://bookstore//x/../%62ooks-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    200, reason: "match books-bought",
		},
		"encoded slash": {
			headers: map[string]string{"X-Original-URL": "http://bookstore/books-bought%2Fx", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    403, reason: "encoded slash",
		},
		"case-sensitive": {
			headers: map[string]string{"X-Original-URL": "/BOOKS-BOUGHT", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    403, reason: "allows GET /BOOKS-BOUGHT",
		},
		"without a port": {
			endpoint: "/v1/mesh/bookstore/bookstore",
			headers:  map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:     200, reason: "match books-bought",
		},
		"no principal": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET"},
			code:    401, reason: "no X-Client-Principal header: the caller presented no verified identity",
		},
		"no X-Original-URL": {
			headers: map[string]string{"X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    403, reason: "no X-Original-URL header: configure nginx to send the original request URI",
		},
		"no X-Original-Method": {
			headers: map[string]string{"X-Original-URL": "/books-bought", "X-Client-Principal": buyer},
			code:    403, reason: "no X-Original-Method header",
		},
		"relative X-Original-URL": {
			headers: map[string]string{"X-Original-URL": "books-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:    403, reason: `X-Original-URL "books-bought" is neither a path nor an absolute URL`,
		},
		"bad port": {
			endpoint: "/v1/mesh/bookstore/bookstore?port=http",
			headers:  map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:     403, reason: `port "http" is not a port number`,
		},
		"unknown endpoint": {
			endpoint: "/v1/mesh/bookstore",
			headers:  map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Client-Principal": buyer},
			code:     403, reason: "unknown auth endpoint /v1/mesh/bookstore",
		},
	} {
		t.Run(name, func(t *testing.T) {
			ep := endpoint
			if tc.endpoint != "" {
				ep = tc.endpoint
			}
			a := ask(t, base, "GET", ep, tc.headers)
			if a.code != tc.code {
				t.Errorf("status %d, want %d; reason %q", a.code, tc.code, a.reason)
			}
			if !strings.Contains(a.reason, tc.reason) {
				t.Errorf("reason %q lacks %q", a.reason, tc.reason)
			}
			if a.body != a.reason+"\n" {
				t.Errorf("body %q, want the reason", a.body)
			}
			if decided := a.code == 200 || strings.Contains(a.reason, "TrafficTarget") || strings.Contains(a.reason, "slash"); decided && !hexID.MatchString(a.id) {
				t.Errorf("decision id %q", a.id)
			}
		})
	}
}

// TestIngressRequests checks ingress to backends: the client address is
// X-Real-IP, else the last X-Forwarded-For entry, from a trusted proxy.
func TestIngressRequests(t *testing.T) {
	base := serveHTTP(t, newHandler(t, newEngine(t, policy.Options{}, nil), nginxauth.Options{}))
	original := map[string]string{"X-Original-URL": "http://shop.example.com/books-bought", "X-Original-Method": "GET"}
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range original {
			h[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	const (
		store     = "/v1/ingress/bookstore/bookstore-v1/14001"
		tls       = "/v1/ingress/bookstore/bookstore-v1/14443"
		warehouse = "/v1/ingress/bookwarehouse/bookwarehouse/14001"
	)
	for name, tc := range map[string]struct {
		endpoint string
		headers  map[string]string
		code     int
		reason   string
	}{
		"peer address":                     {store, original, 200, "IngressBackend bookstore/from-loopback"},
		"peer address not admitted":        {warehouse, original, 403, "no IngressBackend for bookwarehouse/bookwarehouse port 14001 admits client 127.0.0.1"},
		"X-Real-IP":                        {warehouse, with("X-Real-IP", "10.1.2.3"), 200, "IngressBackend bookwarehouse/from-the-cluster"},
		"X-Real-IP before X-Forwarded-For": {warehouse, with("X-Real-IP", "192.0.2.1", "X-Forwarded-For", "10.1.2.3"), 403, "admits client 192.0.2.1"},
		"last X-Forwarded-For entry":       {warehouse, with("X-Forwarded-For", "192.0.2.1, 10.1.2.3"), 200, "from-the-cluster"},
		"first X-Forwarded-For entry":      {warehouse, with("X-Forwarded-For", "10.1.2.3, 192.0.2.1"), 403, "admits client 192.0.2.1"},
		"bad X-Real-IP":                    {warehouse, with("X-Real-IP", "10.1.2.3.4", "X-Forwarded-For", "10.1.2.3"), 200, "from-the-cluster"},
		"IPv4-mapped IPv6":                 {warehouse, with("X-Real-IP", "::ffff:10.1.2.3"), 200, "from-the-cluster"},
		"bad X-Forwarded-For":              {warehouse, with("X-Forwarded-For", "10.1.2.3, nonsense"), 403, "admits client 127.0.0.1"},
		"client certificate":               {tls, with("X-Client-Principal", "ingress-nginx.ingress-nginx.cluster.local"), 200, "IngressBackend bookstore/with-certificate"},
		"no client certificate":            {tls, original, 403, "no IngressBackend for bookstore/bookstore-v1 port 14443 admits client 127.0.0.1"},
		"other certificate":                {tls, with("X-Client-Principal", "evil.example"), 403, `with principal "evil.example"`},
		"no IngressBackend":                {"/v1/ingress/bookstore/bookstore-v2/14001", original, 403, "no IngressBackend admits ingress to bookstore/bookstore-v2 port 14001"},
		"encoded slash":                    {store, with("X-Original-URL", "http://shop.example.com/a%2fb"), 403, "encoded slash"},
		"port 0":                           {"/v1/ingress/bookstore/bookstore-v1/0", original, 403, `target port "0" in the endpoint path is not a port number`},
		"port too large":                   {"/v1/ingress/bookstore/bookstore-v1/65536", original, 403, "is not a port number"},
		"named port":                       {"/v1/ingress/bookstore/bookstore-v1/http", original, 403, "is not a port number"},
		"mesh principal is no ingress":     {warehouse, with("X-Client-Principal", buyer), 403, "admits client 127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			a := ask(t, base, "GET", tc.endpoint, tc.headers)
			if a.code != tc.code || !strings.Contains(a.reason, tc.reason) {
				t.Errorf("status %d, reason %q; want %d with %q", a.code, a.reason, tc.code, tc.reason)
			}
		})
	}

	// Several X-Forwarded-For lines: the last line's last entry.
	req, err := http.NewRequest("GET", base+warehouse, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range original {
		req.Header.Set(k, v)
	}
	req.Header.Add("X-Forwarded-For", "10.1.2.3")
	req.Header.Add("X-Forwarded-For", "192.0.2.7")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get(nginxauth.HeaderReason), "admits client 192.0.2.7") {
		t.Errorf("two X-Forwarded-For lines: %d %q", resp.StatusCode, resp.Header.Get(nginxauth.HeaderReason))
	}
}

// TestUntrustedPeer: when the subrequest does not come from a trusted
// proxy, its address and principal headers are ignored: the peer is the
// client, and no caller is identified.
func TestUntrustedPeer(t *testing.T) {
	base := serveHTTP(t, newHandler(t, newEngine(t, policy.Options{}, nil), nginxauth.Options{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}))
	original := map[string]string{"X-Original-URL": "/books-bought", "X-Original-Method": "GET"}
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range original {
			h[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	for name, tc := range map[string]struct {
		endpoint string
		headers  map[string]string
		code     int
		reason   string
	}{
		"mesh request":                {"/v1/mesh/bookstore/bookstore", with("X-Client-Principal", buyer), 401, "only read from a trusted proxy; 127.0.0.1:"},
		"spoofed X-Real-IP":           {"/v1/ingress/bookwarehouse/bookwarehouse/14001", with("X-Real-IP", "10.1.2.3"), 403, "admits client 127.0.0.1"},
		"spoofed X-Forwarded-For":     {"/v1/ingress/bookwarehouse/bookwarehouse/14001", with("X-Forwarded-For", "10.1.2.3"), 403, "admits client 127.0.0.1"},
		"spoofed addresses, admitted": {"/v1/ingress/bookstore/bookstore-v1/14001", with("X-Real-IP", "192.0.2.1"), 200, "IngressBackend bookstore/from-loopback"},
		"spoofed certificate":         {"/v1/ingress/bookstore/bookstore-v1/14443", with("X-Client-Principal", "ingress-nginx.ingress-nginx.cluster.local"), 403, "admits client 127.0.0.1 (no client certificate)"},
	} {
		t.Run(name, func(t *testing.T) {
			a := ask(t, base, "GET", tc.endpoint, tc.headers)
			if a.code != tc.code || !strings.Contains(a.reason, tc.reason) {
				t.Errorf("status %d, reason %q; want %d with %q", a.code, a.reason, tc.code, tc.reason)
			}
		})
	}
}

// echo is a policy that allows everything and puts the parts of the
// input the endpoint builds in its reason, as JSON.
const echo = `package envoy.authz

allow := {"allowed": true, "reason": json.marshal({
	"method": input.attributes.request.http.method,
	"path": input.attributes.request.http.path,
	"host": object.get(input.attributes.request.http, "host", null),
	"headers": input.attributes.request.http.headers,
	"source": object.get(input.meshward, "source", null),
	"destination": object.get(input.meshward, "destination", null),
	"port": object.get(input.meshward, "port", null),
	"ingress": object.get(input.meshward, "ingress", null),
})}
`

// TestInputFromHeaders checks what the policy sees of an nginx subrequest.
func TestInputFromHeaders(t *testing.T) {
	base := serveHTTP(t, newHandler(t, newEngine(t, policy.Options{}, map[string]string{"echo.rego": echo}), nginxauth.Options{}))
	seen := func(t *testing.T, endpoint string, headers map[string]string) map[string]any {
		t.Helper()
		a := ask(t, base, "GET", endpoint, headers)
		js, _, ok := strings.Cut(a.reason, "} (")
		if a.code != 200 || !ok {
			t.Fatalf("status %d, reason %q", a.code, a.reason)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(js+"}"), &out); err != nil {
			t.Fatalf("reason %q: %v", a.reason, err)
		}
		return out
	}
	got := seen(t, "/v1/mesh/bookstore/bookstore?port=14001", map[string]string{
		"X-Original-URL":     "http://bookstore.bookstore:14001//a/./b?x=1",
		"X-Original-Method":  "PUT",
		"X-Client-Principal": buyer,
		"User-Agent":         "bookbuyer/1.0",
		"X-Request-Id":       "r-1",
	})
	for k, want := range map[string]any{
		"method": "PUT", "path": "/a/b?x=1", "host": "bookstore.bookstore:14001",
		"source": "bookbuyer/bookbuyer", "destination": "bookstore/bookstore", "port": 14001.0, "ingress": nil,
	} {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	h, _ := got["headers"].(map[string]any)
	for k, want := range map[string]any{
		"user-agent": "bookbuyer/1.0", "x-request-id": "r-1", ":method": "PUT", ":path": "/a/b?x=1",
		":authority": "bookstore.bookstore:14001",
	} {
		if h[k] != want {
			t.Errorf("header %s = %#v, want %#v", k, h[k], want)
		}
	}
	for _, k := range []string{"x-original-url", "x-original-method", "x-client-principal"} {
		if _, ok := h[k]; ok {
			t.Errorf("header %s is in the input: %v", k, h)
		}
	}

	got = seen(t, "/v1/ingress/bookstore/bookstore-v1/14001", map[string]string{
		"X-Original-URL": "/books-bought", "X-Original-Method": "GET", "X-Real-IP": "10.1.2.3",
		"X-Forwarded-Host": "shop.example.com",
	})
	if want := map[string]any{"backend": "bookstore/bookstore-v1", "port": "14001", "address": "10.1.2.3", "principal": ""}; !reflect.DeepEqual(got["ingress"], want) {
		t.Errorf("ingress = %#v, want %#v", got["ingress"], want)
	}
	if got["host"] != "shop.example.com" || got["source"] != nil {
		t.Errorf("host %v, source %v", got["host"], got["source"])
	}
}

// TestOnlyAnswers200401403 sends odd subrequests: the endpoint answers
// only 200, 401 or 403 (ingress-nginx turns anything else into a 500),
// always with a one-line printable reason.
func TestOnlyAnswers200401403(t *testing.T) {
	h := newHandler(t, newEngine(t, policy.Options{}, nil), nginxauth.Options{})
	base := serveHTTP(t, h)
	for _, s := range seeds() {
		if !sendable(s) {
			continue // only in FuzzServeHTTP: HTTP clients refuse to send it
		}
		req, err := http.NewRequest(s.method, base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = s.path, "", s.query
		req.Header.Set("User-Agent", "")
		for k, v := range s.headers() {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		resp.Body.Close()
		checkAnswer(t, s, resp.StatusCode, resp.Header.Get(nginxauth.HeaderReason))
	}
}

// sendable reports whether a subrequest's header values are valid, so an
// HTTP client sends them.
func sendable(s subrequest) bool {
	for _, v := range s.headers() {
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return false
		}
	}
	return true
}

// subrequest is one odd subrequest.
type subrequest struct {
	method, path, query                                       string
	originalURL, originalMethod, principal, realIP, forwarded string
}

func (s subrequest) headers() map[string]string {
	h := map[string]string{}
	for k, v := range map[string]string{
		nginxauth.HeaderOriginalURL: s.originalURL, nginxauth.HeaderOriginalMethod: s.originalMethod,
		nginxauth.HeaderClientPrincipal: s.principal, nginxauth.HeaderRealIP: s.realIP, nginxauth.HeaderForwardedFor: s.forwarded,
	} {
		if v != "" {
			h[k] = v
		}
	}
	return h
}

func seeds() []subrequest {
	long := strings.Repeat("a/", 4096)
	good := subrequest{method: "GET", path: "/v1/mesh/bookstore/bookstore", query: "port=14001", originalURL: "/books-bought", originalMethod: "GET", principal: buyer}
	vary := func(f func(*subrequest)) subrequest {
		s := good
		f(&s)
		return s
	}
	return []subrequest{
		good,
		vary(func(s *subrequest) { s.principal = "" }),
		vary(func(s *subrequest) { s.originalURL = "" }),
		vary(func(s *subrequest) { s.originalMethod = "" }),
		vary(func(s *subrequest) { s.method = "POST" }),
		vary(func(s *subrequest) { s.method = "DELETE" }),
		vary(func(s *subrequest) { s.path = "/" }),
		vary(func(s *subrequest) { s.path = "/v1/mesh/\x00/\x7f" }),
		vary(func(s *subrequest) { s.path = "/v1/mesh/bookstore/bookstore/\x01\x1b[31m" }),
		vary(func(s *subrequest) { s.path = "/v1/mesh/" + long }),
		vary(func(s *subrequest) { s.path = "/v1/ingress/a/b/99999999999999999999" }),
		vary(func(s *subrequest) { s.path = "/v1/ingress/a/b/14001"; s.realIP = "garbage" }),
		vary(func(s *subrequest) { s.path = "/v1/ingress/a/b/14001"; s.forwarded = ",,," }),
		vary(func(s *subrequest) { s.path = "/v1/ingress/a/b/14001"; s.realIP = "fe80::1%eth0" }),
		vary(func(s *subrequest) { s.query = "port=99999" }),
		vary(func(s *subrequest) { s.query = "port=%zz" }),
		vary(func(s *subrequest) { s.query = "port=-1&port=2" }),
		vary(func(s *subrequest) { s.originalURL = "http://[::1" }),
		vary(func(s *subrequest) { s.originalURL = "::::" }),
		vary(func(s *subrequest) { s.originalURL = "/%zz" }),
		vary(func(s *subrequest) { s.originalURL = "/a%00b" }),
		vary(func(s *subrequest) { s.originalURL = "/" + long }),
		vary(func(s *subrequest) { s.originalURL = "http://h/%C0%AE%C0%AE/" }),
		vary(func(s *subrequest) { s.originalURL = "*" }),
		vary(func(s *subrequest) { s.originalMethod = "G\tE T" }),
		vary(func(s *subrequest) { s.principal = "spiffe://" }),
		vary(func(s *subrequest) { s.principal = "ÿ\x01" }),
	}
}

// checkAnswer fails the test unless the status is 200, 401 or 403 and the
// reason is one printable line.
func checkAnswer(t testing.TB, s subrequest, code int, reason string) {
	t.Helper()
	if code != http.StatusOK && code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("%+v: status %d, reason %q", s, code, reason)
	}
	if reason == "" {
		t.Errorf("%+v: status %d without a reason", s, code)
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("%+v: reason %q has a control character", s, reason)
		}
	}
}

// FuzzServeHTTP: whatever the subrequest, the endpoint answers 200, 401 or
// 403 with a one-line printable reason.
func FuzzServeHTTP(f *testing.F) {
	h := newHandler(f, newEngine(f, policy.Options{}, nil), nginxauth.Options{})
	for _, s := range seeds() {
		f.Add(s.method, s.path, s.query, s.originalURL, s.originalMethod, s.principal, s.realIP, s.forwarded, "127.0.0.1:4000")
	}
	f.Add("GET", "/v1/ingress/bookstore/bookstore-v1/14001", "", "/books-bought", "GET", "", "", "", "10.0.0.1:4000")
	f.Fuzz(func(t *testing.T, method, path, query, originalURL, originalMethod, principal, realIP, forwarded, remote string) {
		s := subrequest{method, path, query, originalURL, originalMethod, principal, realIP, forwarded}
		req := &http.Request{
			Method: method, URL: &url.URL{Path: path, RawQuery: query}, RequestURI: path,
			Header: http.Header{}, RemoteAddr: remote, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		for k, v := range s.headers() {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, s, rec.Code, rec.Header().Get(nginxauth.HeaderReason))
	})
}

// TestLongReason: nginx answers 500 when the auth response's headers do
// not fit its buffer (4 KiB by default), and reasons quote the client's
// path; the reason header is bounded, keeping its start and its end, and
// the body has the whole reason.
func TestLongReason(t *testing.T) {
	base := serveHTTP(t, newHandler(t, newEngine(t, policy.Options{}, nil), nginxauth.Options{}))
	for name, path := range map[string]string{
		"ascii":     "/" + strings.Repeat("a", 8000) + "%2F",
		"multibyte": "/" + strings.Repeat("é", 4000) + "%2F",
	} {
		t.Run(name, func(t *testing.T) {
			a := ask(t, base, "GET", "/v1/mesh/bookstore/bookstore", map[string]string{
				"X-Original-URL": path, "X-Original-Method": "GET", "X-Client-Principal": buyer,
			})
			if a.code != 403 {
				t.Fatalf("status %d", a.code)
			}
			if len(a.reason) > 1024 || !utf8.ValidString(a.reason) {
				t.Errorf("reason header of %d bytes (valid UTF-8: %v)", len(a.reason), utf8.ValidString(a.reason))
			}
			if !strings.HasPrefix(a.reason, `invalid request: "/`) || !strings.Contains(a.reason, "...") || !strings.HasSuffix(a.reason, "path contains an encoded slash (%2F) (at byte "+fmt.Sprint(len(path)-3)+")") {
				t.Errorf("reason header %q", a.reason)
			}
			if !strings.Contains(a.body, path) {
				t.Errorf("the body lacks the whole reason")
			}
		})
	}
}
