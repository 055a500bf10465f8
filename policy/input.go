package policy

import (
	"errors"
	"fmt"
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
	rootStringTerm  = ast.StringTerm("/")
	emptyObjectTerm = ast.ObjectTerm()
)

// buildInput builds the ext_authz input document of a request: the fields
// of opa-envoy-plugin's input (attributes, parsed_path, parsed_query,
// parsed_body, truncated_body, version, source_principal) and meshward's
// own under "meshward" (source and destination identities when the mesh
// knows them, protocol, port, normalised path).
func buildInput(x *identityIndex, ports *portCache, r Request) (ast.Value, error) {
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

	attrs := make([][2]*ast.Term, 0, 3)
	switch {
	case srcP != nil:
		attrs = append(attrs, [2]*ast.Term{keySource, ast.ObjectTerm([2]*ast.Term{keyPrincipal, srcP})})
	case r.Ingress != nil && r.Ingress.Address != "":
		attrs = append(attrs, [2]*ast.Term{keySource, ast.ObjectTerm([2]*ast.Term{keyAddress, ast.ObjectTerm(
			[2]*ast.Term{keySocketAddress, ast.ObjectTerm([2]*ast.Term{keyAddress, ast.StringTerm(r.Ingress.Address)})})})})
	}
	dst := make([][2]*ast.Term, 0, 2)
	if dstP != nil {
		dst = append(dst, [2]*ast.Term{keyPrincipal, dstP})
	}
	if port != nil {
		dst = append(dst, [2]*ast.Term{keyAddress, port.address})
	}
	if len(dst) > 0 {
		attrs = append(attrs, [2]*ast.Term{keyDestination, ast.ObjectTerm(dst...)})
	}

	parsedPath, parsedQuery := rootPathTerm, (*ast.Term)(nil)
	if proto == ProtocolHTTP {
		target := r.Path
		if target == "" {
			target = "/"
		}
		norm, err := pathnorm.Normalize(target)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		pathTerm := rootStringTerm
		if norm.Path != "/" {
			pathTerm = ast.StringTerm(norm.Path)
		}
		mw = append(mw, [2]*ast.Term{keyPath, pathTerm})
		fullPath := pathTerm
		if norm.RawQuery != "" {
			fullPath = ast.StringTerm(norm.Path + "?" + norm.RawQuery)
		}
		if string(fullPath.Value.(ast.String)) != target {
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
		httpObj := make([][2]*ast.Term, 0, 4)
		httpObj = append(httpObj,
			[2]*ast.Term{keyMethod, methodTerm},
			[2]*ast.Term{keyPath, fullPath},
			[2]*ast.Term{keyHeaders, headersTerm(r, methodTerm, fullPath, hostTerm)},
		)
		if hostTerm != nil {
			httpObj = append(httpObj, [2]*ast.Term{keyHost, hostTerm})
		}
		attrs = append(attrs, [2]*ast.Term{keyRequest, ast.ObjectTerm([2]*ast.Term{keyHTTP, ast.ObjectTerm(httpObj...)})})
		if norm.Path != "/" {
			parsedPath = segmentsTerm(norm.Path)
		}
		parsedQuery = queryTerm(norm.Query)
	}
	if parsedQuery == nil {
		parsedQuery = emptyObjectTerm
	}

	root := make([][2]*ast.Term, 0, 8)
	root = append(root,
		[2]*ast.Term{keyAttributes, ast.ObjectTerm(attrs...)},
		[2]*ast.Term{keyParsedPath, parsedPath},
		[2]*ast.Term{keyParsedQuery, parsedQuery},
		[2]*ast.Term{keyParsedBody, nullTerm},
		[2]*ast.Term{keyTruncatedBody, falseTerm},
		[2]*ast.Term{keyVersion, versionV3},
		[2]*ast.Term{keyMeshward, ast.ObjectTerm(mw...)},
	)
	if srcP != nil {
		root = append(root, [2]*ast.Term{keySourcePrincipal, srcP})
	}
	return ast.NewObject(root...), nil
}

// methodTerms are the common methods, built once.
var methodTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		m[s] = ast.StringTerm(s)
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
// them, with the pseudo-headers :method, :path and :authority.
func headersTerm(r Request, method, path, host *ast.Term) *ast.Term {
	kv := make([][2]*ast.Term, 0, len(r.Headers)+3)
	kv = append(kv, [2]*ast.Term{keyPseudoMethod, method}, [2]*ast.Term{keyPseudoPath, path})
	if host != nil {
		kv = append(kv, [2]*ast.Term{keyPseudoAuthority, host})
	}
	for k, v := range r.Headers {
		k = strings.ToLower(k)
		if strings.HasPrefix(k, ":") || k == "host" {
			continue
		}
		kv = append(kv, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
	}
	return ast.ObjectTerm(kv...)
}

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
type portCache struct {
	m sync.Map // uint32 -> *portTerms
	n atomic.Int32
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
