package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshward/meshward/internal/pathnorm"
)

// Protocol is what a request is checked as.
type Protocol string

const (
	// ProtocolHTTP checks an HTTP request against HTTPRouteGroup rules.
	ProtocolHTTP Protocol = "http"
	// ProtocolTCP checks a TCP connection against TCPRoute rules.
	ProtocolTCP Protocol = "tcp"
	// ProtocolUDP checks UDP traffic against UDPRoute rules.
	ProtocolUDP Protocol = "udp"
)

// ErrInvalidRequest is wrapped by the errors of Engine.Input for a request
// that cannot be checked, such as a path that fails normalisation (then
// the error also wraps the pathnorm error). DecideRequest turns it into a
// deny with the error as reason.
var ErrInvalidRequest = errors.New("invalid request")

// Request is a request to decide, independent of how it arrived.
type Request struct {
	// Source and Destination are principals (SPIFFE or DNS form) or
	// identities written "namespace/name".
	Source, Destination string
	// Port is the destination port; 0 when unknown.
	Port uint32
	// Protocol is http (the default), tcp or udp.
	Protocol Protocol
	// Method, Path and Host describe an HTTP request. Path is the request
	// target ("/path?query"); it is normalised before matching.
	Method, Path, Host string
	// Headers are the request headers; names in any case.
	Headers map[string]string
	// Ingress, when set, makes this an ingress request: checked against
	// IngressBackends; Source and Destination are then not used.
	Ingress *Ingress
	// Egress, when set, makes this a request leaving the mesh: checked
	// against egress rules; Destination is then not used.
	Egress *Egress
}

// Keys and constant values of the input document, built once and shared
// by every input (evaluation never modifies input terms).
var (
	keyAttributes      = ast.StringTerm("attributes")
	keySource          = ast.StringTerm("source")
	keyDestination     = ast.StringTerm("destination")
	keyPrincipal       = ast.StringTerm("principal")
	keyAddress         = ast.StringTerm("address")
	keySocketAddress   = ast.StringTerm("socketAddress")
	keyPortValue       = ast.StringTerm("portValue")
	keyRequest         = ast.StringTerm("request")
	keyHTTP            = ast.StringTerm("http")
	keyMethod          = ast.StringTerm("method")
	keyPath            = ast.StringTerm("path")
	keyHost            = ast.StringTerm("host")
	keyHeaders         = ast.StringTerm("headers")
	keyParsedPath      = ast.StringTerm("parsed_path")
	keyParsedQuery     = ast.StringTerm("parsed_query")
	keyParsedBody      = ast.StringTerm("parsed_body")
	keyTruncatedBody   = ast.StringTerm("truncated_body")
	keyVersion         = ast.StringTerm("version")
	keySourcePrincipal = ast.StringTerm("source_principal")
	keyMeshward        = ast.StringTerm("meshward")
	keyProtocol        = ast.StringTerm("protocol")
	keyPort            = ast.StringTerm("port")
	keyRawPath         = ast.StringTerm("raw_path")
	keyPseudoMethod    = ast.StringTerm(":method")
	keyPseudoPath      = ast.StringTerm(":path")
	keyPseudoAuthority = ast.StringTerm(":authority")

	versionV3 = ast.ObjectTerm(
		[2]*ast.Term{ast.StringTerm("ext_authz"), ast.StringTerm("v3")},
		[2]*ast.Term{ast.StringTerm("encoding"), ast.StringTerm("protojson")},
	)
	protocolTerms = map[Protocol]*ast.Term{
		ProtocolHTTP: ast.StringTerm(string(ProtocolHTTP)),
		ProtocolTCP:  ast.StringTerm(string(ProtocolTCP)),
		ProtocolUDP:  ast.StringTerm(string(ProtocolUDP)),
	}
	rootPathTerm    = ast.ArrayTerm(ast.StringTerm(""))
	nullTerm        = ast.NullTerm()
	falseTerm       = ast.BooleanTerm(false)
	trueTerm        = ast.BooleanTerm(true)
	rootStringTerm  = ast.StringTerm("/")
	emptyObjectTerm = ast.ObjectTerm()
)

// buildInput builds the ext_authz input document of a request: the fields
// of opa-envoy-plugin's input (attributes, parsed_path, parsed_query,
// parsed_body, truncated_body, version, source_principal) and meshward's
// own under "meshward" (source and destination identities when the mesh
// knows them, protocol, port, normalised path).
//
// f, when not nil, holds the fields a front end adds (see InputFields):
// each is placed as the object that holds it is built, so that no object
// is built twice.
//
// lean leaves out what the built-in policy never reads, for an evaluation
// without user modules: the input holds only input.meshward and
// input.attributes with the peers' principals, the request's method and
// a headers object of the headers the model's matches name.
func buildInput(x *identityIndex, ports *portCache, r Request, f *InputFields, lean bool) (ast.Value, error) {
	if f == nil {
		f = &noFields
	}
	proto := r.Protocol
	if proto == "" {
		proto = ProtocolHTTP
	}
	protoTerm, ok := protocolTerms[proto]
	if !ok {
		return nil, fmt.Errorf("%w: protocol %q is not http, tcp or udp", ErrInvalidRequest, r.Protocol)
	}
	srcP, srcID := x.resolve(r.Source)
	dstP, dstID := x.resolve(r.Destination)
	var egress *ast.Term
	if r.Egress != nil {
		var err error
		if egress, err = egressTerm(r.Egress); err != nil {
			return nil, err
		}
		dstP, dstID = nil, nil
	}

	var port *portTerms
	if r.Port != 0 {
		port = ports.get(r.Port)
	}

	mw := make([][2]*ast.Term, 0, 7)
	mw = append(mw, [2]*ast.Term{keyProtocol, protoTerm})
	if srcID != nil {
		mw = append(mw, [2]*ast.Term{keySource, srcID.name})
	}
	if dstID != nil {
		mw = append(mw, [2]*ast.Term{keyDestination, dstID.name})
	}
	if r.Ingress != nil {
		mw = append(mw, [2]*ast.Term{keyIngress, ingressTerm(r.Ingress)})
	}
	if egress != nil {
		mw = append(mw, [2]*ast.Term{keyEgress, egress})
	}
	if port != nil {
		mw = append(mw, [2]*ast.Term{keyPort, port.number})
	}

	var attrsBuf [8][2]*ast.Term
	attrs := attrsBuf[:0]
	var srcAddress *ast.Term
	if srcP == nil && r.Ingress != nil && r.Ingress.Address != "" {
		srcAddress = ast.StringTerm(r.Ingress.Address)
	}
	switch {
	case lean:
		// The built-in policy reads only the peers' principals.
		if srcP != nil {
			attrs = append(attrs, [2]*ast.Term{keySource, ports.peer(srcP, nil, nil)})
		}
		if dstP != nil {
			attrs = append(attrs, [2]*ast.Term{keyDestination, ports.peer(dstP, nil, nil)})
		}
	default:
		if src := peerTerm(srcP, srcAddress, nil, f.Source); src != nil {
			attrs = append(attrs, [2]*ast.Term{keySource, src})
		}
		if dst := ports.peer(dstP, port, f.Destination); dst != nil {
			attrs = append(attrs, [2]*ast.Term{keyDestination, dst})
		}
	}
	attrs = append(attrs, f.Attributes...)

	parsedPath, parsedQuery := rootPathTerm, (*ast.Term)(nil)
	if proto == ProtocolHTTP {
		target := r.Path
		if target == "" {
			target = "/"
		}
		norm, err := normalize(target, lean)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		pathTerm := rootStringTerm
		if norm.Path != "/" {
			pathTerm = ast.StringTerm(norm.Path)
		}
		mw = append(mw, [2]*ast.Term{keyPath, pathTerm})
		fullPath := pathTerm
		if norm.RawQuery != "" && (!lean || readsPath(x.headers)) {
			fullPath = ast.StringTerm(norm.Path + "?" + norm.RawQuery)
		}
		// raw_path: the target as received, when normalisation changed it
		// (the built-in policy does not read it).
		if !lean && string(fullPath.Value.(ast.String)) != target {
			mw = append(mw, [2]*ast.Term{keyRawPath, ast.StringTerm(target)})
		}
		method := r.Method
		if method == "" {
			method = "GET"
		}
		methodTerm := methodTerms[method]
		if methodTerm == nil {
			methodTerm = ast.StringTerm(method)
		}
		var hostTerm *ast.Term
		if host := hostOf(r); host != "" {
			hostTerm = ast.StringTerm(host)
		}
		headers := headersTerm(r, methodTerm, fullPath, hostTerm, lean, x.headers)
		if req := leanRequests[method]; lean && req != nil && headers == emptyObjectTerm {
			// The common lean request, built once: a method and no headers.
			attrs = append(attrs, [2]*ast.Term{keyRequest, req})
		} else {
			var httpBuf [12][2]*ast.Term
			httpObj := httpBuf[:0]
			httpObj = append(httpObj,
				[2]*ast.Term{keyMethod, methodTerm},
				[2]*ast.Term{keyHeaders, headers},
			)
			if !lean {
				httpObj = append(httpObj, [2]*ast.Term{keyPath, fullPath})
				if hostTerm != nil {
					httpObj = append(httpObj, [2]*ast.Term{keyHost, hostTerm})
				}
			}
			httpObj = append(httpObj, f.HTTP...)
			var reqBuf [2][2]*ast.Term
			reqObj := reqBuf[:0]
			reqObj = append(reqObj, [2]*ast.Term{keyHTTP, ast.ObjectTerm(httpObj...)})
			reqObj = append(reqObj, f.Request...)
			attrs = append(attrs, [2]*ast.Term{keyRequest, ast.ObjectTerm(reqObj...)})
		}
		if !lean {
			if norm.Path != "/" {
				parsedPath = segmentsTerm(norm.Path)
			}
			parsedQuery = queryTerm(norm.Query)
		}
	}
	if parsedQuery == nil {
		parsedQuery = emptyObjectTerm
	}

	parsedBody, truncated := nullTerm, falseTerm
	if proto == ProtocolHTTP && f.ParsedBody != nil {
		parsedBody = f.ParsedBody
	}
	if proto == ProtocolHTTP && f.TruncatedBody {
		truncated = trueTerm
	}
	if lean {
		return ast.NewObject(
			[2]*ast.Term{keyAttributes, ast.ObjectTerm(attrs...)},
			[2]*ast.Term{keyMeshward, ast.ObjectTerm(mw...)},
		), nil
	}
	root := make([][2]*ast.Term, 0, 8)
	root = append(root,
		[2]*ast.Term{keyAttributes, ast.ObjectTerm(attrs...)},
		[2]*ast.Term{keyParsedPath, parsedPath},
		[2]*ast.Term{keyParsedQuery, parsedQuery},
		[2]*ast.Term{keyParsedBody, parsedBody},
		[2]*ast.Term{keyTruncatedBody, truncated},
		[2]*ast.Term{keyVersion, versionV3},
		[2]*ast.Term{keyMeshward, ast.ObjectTerm(mw...)},
	)
	if srcP != nil {
		root = append(root, [2]*ast.Term{keySourcePrincipal, srcP})
	}
	return ast.NewObject(root...), nil
}

// normalize normalises a request target. lean leaves the query unparsed
// (Result.Query nil) when it is valid: only parsed_query reads it, and the
// lean input has none. An invalid query is refused all the same.
func normalize(target string, lean bool) (pathnorm.Result, error) {
	if !lean {
		return pathnorm.Normalize(target)
	}
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	if !pathnorm.ValidQuery(rawQuery) {
		return pathnorm.Normalize(target)
	}
	p, err := pathnorm.Path(rawPath)
	if err != nil {
		// The error of the whole target, as Normalize reports it.
		return pathnorm.Normalize(target)
	}
	return pathnorm.Result{Path: p, RawQuery: rawQuery}, nil
}

// methodTerms are the common methods, built once.
var methodTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

// leanRequests are the lean input's input.attributes.request for the
// common methods and no headers, built once.
var leanRequests = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for name, t := range methodTerms {
		m[name] = ast.ObjectTerm([2]*ast.Term{keyHTTP, ast.ObjectTerm(
			[2]*ast.Term{keyMethod, t},
			[2]*ast.Term{keyHeaders, emptyObjectTerm},
		)})
	}
	return m
}()

func hostOf(r Request) string {
	if r.Host != "" {
		return r.Host
	}
	for k, v := range r.Headers {
		if strings.EqualFold(k, "host") || k == ":authority" {
			return v
		}
	}
	return ""
}

// headersTerm builds the headers object: lower-case names, as Envoy sends
// them, with the pseudo-headers :method, :path and :authority. With
// filter, it holds only the headers named in only (sorted), pseudo-headers
// included.
func headersTerm(r Request, method, path, host *ast.Term, filter bool, only []string) *ast.Term {
	if filter && len(only) == 0 {
		return emptyObjectTerm
	}
	keep := func(name string) bool {
		if !filter {
			return true
		}
		_, ok := slices.BinarySearch(only, name)
		return ok
	}
	kv := make([][2]*ast.Term, 0, len(r.Headers)+3)
	if keep(":method") {
		kv = append(kv, [2]*ast.Term{keyPseudoMethod, method})
	}
	if keep(":path") {
		kv = append(kv, [2]*ast.Term{keyPseudoPath, path})
	}
	if host != nil && keep(":authority") {
		kv = append(kv, [2]*ast.Term{keyPseudoAuthority, host})
	}
	for k, v := range r.Headers {
		k = strings.ToLower(k)
		if strings.HasPrefix(k, ":") || k == "host" || !keep(k) {
			continue
		}
		name := headerNames[k]
		if name == nil {
			name = ast.StringTerm(k)
		}
		kv = append(kv, [2]*ast.Term{name, ast.StringTerm(v)})
	}
	if len(kv) == 0 {
		return emptyObjectTerm
	}
	return ast.ObjectTerm(kv...)
}

// readsPath reports whether the model's matches read the :path header
// (sorted header names, see matchedHeaders): only then does the lean
// input need the path with its query.
func readsPath(headers []string) bool {
	_, ok := slices.BinarySearch(headers, ":path")
	return ok
}

// headerNames are the terms of common header names, built once.
var headerNames = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{
		"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"content-length", "content-type", "cookie", "origin", "referer", "user-agent",
		"x-b3-parentspanid", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid",
		"x-envoy-expected-rq-timeout-ms", "x-envoy-internal", "x-forwarded-client-cert",
		"x-forwarded-for", "x-forwarded-proto", "x-request-id", "traceparent", "tracestate",
	} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

func segmentsTerm(p string) *ast.Term {
	segs := pathnorm.Segments(p)
	terms := make([]*ast.Term, len(segs))
	for i, s := range segs {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

func queryTerm(q map[string][]string) *ast.Term {
	if len(q) == 0 {
		return nil
	}
	kv := make([][2]*ast.Term, 0, len(q))
	for k, vs := range q {
		terms := make([]*ast.Term, len(vs))
		for i, v := range vs {
			terms[i] = ast.StringTerm(v)
		}
		kv = append(kv, [2]*ast.Term{ast.StringTerm(k), ast.ArrayTerm(terms...)})
	}
	return ast.ObjectTerm(kv...)
}

// portTerms are the input terms of a destination port: the number and
// attributes.destination.address.
type portTerms struct {
	number, address *ast.Term
}

// portCache keeps the terms of the ports seen, up to maxCachedPorts: a
// mesh uses few ports, and a request for another one builds its terms.
// It also keeps the input objects of destinations (principal and socket
// address), up to maxCachedPeers: a sidecar's requests all go to its own
// address, so its destination object is built once, while a source's
// address changes with every connection.
type portCache struct {
	m sync.Map // uint32 -> *portTerms
	n atomic.Int32

	mu    sync.RWMutex
	peers map[peerKey]*ast.Term
}

// peerKey is what a destination object holds.
type peerKey struct {
	principal, address string
	port               uint32
	socket             bool
}

const maxCachedPeers = 1024

// peer returns input.attributes.destination (see peerTerm), or a peer
// object with a principal alone, from the cache when the peer has no
// other fields.
func (c *portCache) peer(principal *ast.Term, port *portTerms, p *Peer) *ast.Term {
	if p != nil && len(p.Fields) > 0 {
		return peerTerm(principal, nil, port, p)
	}
	var k peerKey
	if principal != nil {
		k.principal = string(principal.Value.(ast.String))
	}
	if port != nil {
		n, _ := port.number.Value.(ast.Number).Int()
		k.port = uint32(n)
	}
	if p != nil && p.Socket {
		k.socket, k.address = true, p.Address
		if k.port == 0 {
			k.port = p.Port
		}
	}
	c.mu.RLock()
	t, ok := c.peers[k]
	c.mu.RUnlock()
	if ok {
		return t
	}
	t = peerTerm(principal, nil, port, p)
	c.mu.Lock()
	if c.peers == nil {
		c.peers = map[peerKey]*ast.Term{}
	}
	if len(c.peers) < maxCachedPeers {
		c.peers[k] = t
	}
	c.mu.Unlock()
	return t
}

const maxCachedPorts = 1024

func (c *portCache) get(port uint32) *portTerms {
	if v, ok := c.m.Load(port); ok {
		return v.(*portTerms)
	}
	n := ast.UIntNumberTerm(uint64(port))
	p := &portTerms{
		number: n,
		address: ast.ObjectTerm([2]*ast.Term{
			keySocketAddress,
			ast.ObjectTerm([2]*ast.Term{keyPortValue, n}),
		}),
	}
	if c.n.Load() < maxCachedPorts {
		if _, loaded := c.m.LoadOrStore(port, p); !loaded {
			c.n.Add(1)
		}
	}
	return p
}

// InputFields are fields that a front end adds to the input document of a
// request, beyond what a Request carries: opa-envoy-plugin's input has
// every attribute of the CheckRequest. Engine.InputWith places each field
// as it builds the object that holds it. Fields must not repeat the keys
// the engine sets itself (see docs/policy.md).
type InputFields struct {
	// Source and Destination, when not nil, complete
	// input.attributes.source and .destination; the object is then
	// present even when the engine puts nothing in it.
	Source, Destination *Peer
	// Attributes are added to input.attributes.
	Attributes [][2]*ast.Term
	// Request and HTTP are added to input.attributes.request and
	// input.attributes.request.http; HTTP requests only.
	Request, HTTP [][2]*ast.Term
	// ParsedBody, when not nil, is input.parsed_body (null otherwise),
	// and TruncatedBody sets input.truncated_body; HTTP requests only.
	ParsedBody    *ast.Term
	TruncatedBody bool
}

// Peer is what a front end knows of a peer besides its principal.
type Peer struct {
	// Socket is true when the peer has a socket address: the peer's object
	// then has address.socketAddress, with Address and Port when given
	// ("" and 0 when not) unless the engine set them already.
	Socket  bool
	Address string
	Port    uint32
	// Fields are the peer object's other fields (service, labels,
	// certificate, ...).
	Fields [][2]*ast.Term
}

// noFields stands for no InputFields.
var noFields InputFields

// InputWith builds the input document of a request, as Input does, with
// the fields f adds (see InputFields). The error wraps ErrInvalidRequest.
func (e *Engine) InputWith(r Request, f *InputFields) (ast.Value, error) {
	return buildInput(e.model.Load(), &e.ports, r, f, false)
}

// peerTerm builds input.attributes.source or .destination: the principal
// and the socket address the engine knows (address, or the destination
// port's terms) completed by p. It returns nil when the object would be
// absent.
func peerTerm(principal, address *ast.Term, port *portTerms, p *Peer) *ast.Term {
	var extra [][2]*ast.Term
	if p != nil {
		extra = p.Fields
	}
	var buf [6][2]*ast.Term // on the stack unless the peer has many fields
	fields := buf[:0]
	if principal != nil {
		fields = append(fields, [2]*ast.Term{keyPrincipal, principal})
	}
	socket := p != nil && p.Socket
	if socket && address == nil && p.Address != "" {
		address = ast.StringTerm(p.Address)
	}
	var portNumber *ast.Term
	switch {
	case port != nil:
		portNumber = port.number
	case socket && p.Port != 0:
		portNumber = ast.UIntNumberTerm(uint64(p.Port))
	}
	switch {
	case address == nil && port != nil:
		fields = append(fields, [2]*ast.Term{keyAddress, port.address})
	case address != nil || portNumber != nil || socket:
		sock := make([][2]*ast.Term, 0, 2)
		if address != nil {
			sock = append(sock, [2]*ast.Term{keyAddress, address})
		}
		if portNumber != nil {
			sock = append(sock, [2]*ast.Term{keyPortValue, portNumber})
		}
		fields = append(fields, [2]*ast.Term{keyAddress, ast.ObjectTerm([2]*ast.Term{keySocketAddress, ast.ObjectTerm(sock...)})})
	}
	fields = append(fields, extra...)
	if len(fields) == 0 && p == nil {
		return nil
	}
	return ast.ObjectTerm(fields...)
}
