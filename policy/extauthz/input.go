package extauthz

import (
	"encoding/json"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/meshward/meshward/policy"
)

// DestinationExtension is the context extension that names the callee
// ("namespace/serviceaccount" or a principal) when the destination
// principal is not available, e.g. for a plaintext listener.
const DestinationExtension = "meshward.io/destination"

// request reads what meshward decides on from a CheckRequest. Identities
// come only from the principals Envoy took from verified certificates (and
// the destination from the configured context extension): never from
// request headers.
func request(req *authv3.CheckRequest) policy.Request {
	a := req.GetAttributes()
	r := policy.Request{
		Source:      a.GetSource().GetPrincipal(),
		Destination: a.GetDestination().GetPrincipal(),
		Port:        a.GetDestination().GetAddress().GetSocketAddress().GetPortValue(),
		Protocol:    policy.ProtocolTCP,
	}
	if r.Destination == "" {
		r.Destination = a.GetContextExtensions()[DestinationExtension]
	}
	if h := a.GetRequest().GetHttp(); h != nil {
		r.Protocol = policy.ProtocolHTTP
		r.Method, r.Path, r.Host = h.GetMethod(), h.GetPath(), h.GetHost()
		r.Headers = h.GetHeaders()
	}
	return r
}

// Keys of the parts of opa-envoy-plugin's input that policy.Request does
// not carry. opa-envoy-plugin encodes the CheckRequest with protojson, so
// these names are protojson's (lowerCamelCase).
var (
	keyAttributes = ast.StringTerm("attributes")
	keyRequest    = ast.StringTerm("request")
	keyHTTP       = ast.StringTerm("http")
	keySource     = ast.StringTerm("source")
	keyDest       = ast.StringTerm("destination")
	keyParsedBody = ast.StringTerm("parsed_body")
	keyTruncated  = ast.StringTerm("truncated_body")
)

// input builds the input document: the engine's (identities, normalised
// path, parsed path and query) completed with the CheckRequest's other
// attributes, so policies written for opa-envoy-plugin find every field
// they read there.
func input(e *policy.Engine, req *authv3.CheckRequest) (ast.Value, error) {
	v, err := e.Input(request(req))
	if err != nil {
		return nil, err
	}
	root, ok := v.(ast.Object)
	if !ok {
		return v, nil
	}
	a := req.GetAttributes()
	attrs := objectAt(root, keyAttributes)
	// Peer details: addresses, certificates, labels, service.
	if src := a.GetSource(); src != nil {
		peer(objectAt(attrs, keySource), src)
	}
	if dst := a.GetDestination(); dst != nil {
		peer(objectAt(attrs, keyDest), dst)
	}
	if len(a.GetContextExtensions()) > 0 {
		attrs.Insert(ast.StringTerm("contextExtensions"), termOf(a.GetContextExtensions()))
	}
	if a.GetMetadataContext() != nil {
		attrs.Insert(ast.StringTerm("metadataContext"), protoTerm(a.GetMetadataContext()))
	}
	if a.GetRouteMetadataContext() != nil {
		attrs.Insert(ast.StringTerm("routeMetadataContext"), protoTerm(a.GetRouteMetadataContext()))
	}
	if a.GetTlsSession() != nil {
		attrs.Insert(ast.StringTerm("tlsSession"), protoTerm(a.GetTlsSession()))
	}
	h := a.GetRequest().GetHttp()
	if h == nil {
		return root, nil
	}
	if t := a.GetRequest().GetTime(); t != nil {
		objectAt(attrs, keyRequest).Insert(ast.StringTerm("time"), ast.StringTerm(t.AsTime().UTC().Format("2006-01-02T15:04:05.999999999Z")))
	}
	httpObj := objectAt(objectAt(attrs, keyRequest), keyHTTP)
	for k, val := range map[string]string{
		"id": h.GetId(), "scheme": h.GetScheme(), "protocol": h.GetProtocol(),
		"query": h.GetQuery(), "fragment": h.GetFragment(), "body": h.GetBody(),
	} {
		if val != "" {
			httpObj.Insert(ast.StringTerm(k), ast.StringTerm(val))
		}
	}
	if h.GetSize() != 0 {
		httpObj.Insert(ast.StringTerm("size"), ast.IntNumberTerm(int(h.GetSize())))
	}
	// The body, parsed as opa-envoy-plugin does for JSON requests.
	body := h.GetBody()
	if body == "" && len(h.GetRawBody()) > 0 {
		body = string(h.GetRawBody())
	}
	if body != "" && strings.HasPrefix(strings.ToLower(h.GetHeaders()["content-type"]), "application/json") {
		var parsed any
		if err := json.Unmarshal([]byte(body), &parsed); err == nil {
			if t, err := ast.InterfaceToValue(parsed); err == nil {
				root.Insert(keyParsedBody, ast.NewTerm(t))
			}
		}
	}
	if h.GetHeaders()["x-envoy-auth-partial-body"] == "true" {
		root.Insert(keyTruncated, ast.BooleanTerm(true))
	}
	return root, nil
}

// objectAt returns the object under key, creating it when missing.
func objectAt(o ast.Object, key *ast.Term) ast.Object {
	if t := o.Get(key); t != nil {
		if obj, ok := t.Value.(ast.Object); ok {
			return obj
		}
	}
	obj := ast.NewObject()
	o.Insert(key, ast.NewTerm(obj))
	return obj
}

var (
	keyAddress       = ast.StringTerm("address")
	keySocketAddress = ast.StringTerm("socketAddress")
	keyPortValue     = ast.StringTerm("portValue")
	keyService       = ast.StringTerm("service")
	keyLabels        = ast.StringTerm("labels")
	keyCertificate   = ast.StringTerm("certificate")
)

// peer adds a peer's address, service, labels and certificate to o, built
// directly rather than through protojson: this runs on every check.
func peer(o ast.Object, p *authv3.AttributeContext_Peer) {
	if sa := p.GetAddress().GetSocketAddress(); sa != nil {
		s := objectAt(objectAt(o, keyAddress), keySocketAddress)
		if sa.GetAddress() != "" && s.Get(keyAddress) == nil {
			s.Insert(keyAddress, ast.StringTerm(sa.GetAddress()))
		}
		if sa.GetPortValue() != 0 && s.Get(keyPortValue) == nil {
			s.Insert(keyPortValue, ast.UIntNumberTerm(uint64(sa.GetPortValue())))
		}
	}
	if p.GetService() != "" {
		o.Insert(keyService, ast.StringTerm(p.GetService()))
	}
	if len(p.GetLabels()) > 0 {
		kv := make([][2]*ast.Term, 0, len(p.GetLabels()))
		for k, v := range p.GetLabels() {
			kv = append(kv, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
		}
		o.Insert(keyLabels, ast.ObjectTerm(kv...))
	}
	if p.GetCertificate() != "" {
		o.Insert(keyCertificate, ast.StringTerm(p.GetCertificate()))
	}
}

func protoTerm(m proto.Message) *ast.Term {
	b, err := protojson.Marshal(m)
	if err != nil {
		return ast.NullTerm()
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return ast.NullTerm()
	}
	return termOf(v)
}

func termOf(v any) *ast.Term {
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return ast.NullTerm()
	}
	return ast.NewTerm(val)
}
