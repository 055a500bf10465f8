package extauthz

import (
	"encoding/json"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

// EgressExtension is the context extension that marks a listener's
// requests as leaving the mesh ("true"): they are checked against egress
// rules (OCI AccessPolicies with an externalService destination) by the
// HTTP Host, the TLS server name and the destination address, and the
// destination principal is not used. Only the control plane's
// configuration sets it; a request cannot.
const EgressExtension = "meshward.io/egress"

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
		if len(r.Headers) == 0 && len(h.GetHeaderMap().GetHeaders()) > 0 {
			r.Headers = rawHeaders(h.GetHeaderMap())
		}
	}
	if a.GetContextExtensions()[EgressExtension] == "true" {
		r.Egress = &policy.Egress{
			Host:    r.Host,
			SNI:     a.GetTlsSession().GetSni(),
			Address: a.GetDestination().GetAddress().GetSocketAddress().GetAddress(),
		}
	}
	return r
}

// rawHeaders reads the header_map that Envoy sends instead of headers when
// its encode_raw_headers option is set: raw values, and one entry per
// header line. Lines with the same name are merged into one value,
// comma-separated, as Envoy merges them in headers.
func rawHeaders(m *corev3.HeaderMap) map[string]string {
	out := make(map[string]string, len(m.GetHeaders()))
	for _, h := range m.GetHeaders() {
		k := strings.ToLower(h.GetKey())
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if prev, ok := out[k]; ok {
			v = prev + "," + v
		}
		out[k] = v
	}
	return out
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

// input builds the input document of req, read as r: the engine's
// (identities, normalised path, parsed path and query) completed with the
// CheckRequest's other attributes, so policies written for
// opa-envoy-plugin find every field they read there.
//
// The engine's input shares terms with other inputs (those of ports, for
// one), so its objects are never changed in place: an object that gains
// fields is built anew, with all its fields, before it is put in its
// parent, so that every object's hash is the one of its final content.
func input(e *policy.Engine, req *authv3.CheckRequest, r policy.Request) (ast.Value, error) {
	v, err := e.Input(r)
	if err != nil {
		return nil, err
	}
	root, ok := v.(ast.Object)
	if !ok {
		return v, nil
	}
	a := req.GetAttributes()
	attrs := fieldsOf(root.Get(keyAttributes), 4)
	// Peer details: addresses, certificates, labels, service.
	if src := a.GetSource(); src != nil {
		attrs = with(attrs, keySource, peer(field(attrs, keySource), src))
	}
	if dst := a.GetDestination(); dst != nil {
		attrs = with(attrs, keyDest, peer(field(attrs, keyDest), dst))
	}
	if len(a.GetContextExtensions()) > 0 {
		attrs = with(attrs, keyContextExtensions, stringMapTerm(a.GetContextExtensions()))
	}
	if a.GetMetadataContext() != nil {
		attrs = with(attrs, keyMetadataContext, protoTerm(a.GetMetadataContext()))
	}
	if a.GetRouteMetadataContext() != nil {
		attrs = with(attrs, keyRouteMetadataContext, protoTerm(a.GetRouteMetadataContext()))
	}
	if a.GetTlsSession() != nil {
		attrs = with(attrs, keyTLSSession, protoTerm(a.GetTlsSession()))
	}
	if h := a.GetRequest().GetHttp(); h != nil {
		reqFields := fieldsOf(field(attrs, keyRequest), 1)
		if t := a.GetRequest().GetTime(); t != nil {
			reqFields = with(reqFields, keyTime, ast.StringTerm(t.AsTime().UTC().Format("2006-01-02T15:04:05.999999999Z")))
		}
		httpFields := fieldsOf(field(reqFields, keyHTTP), 4)
		for _, kv := range [...]struct {
			key   *ast.Term
			value string
		}{
			{keyID, h.GetId()},
			{keyScheme, h.GetScheme()},
			{keyProtocol, h.GetProtocol()},
			{keyQuery, h.GetQuery()},
			{keyFragment, h.GetFragment()},
			{keyBody, h.GetBody()},
		} {
			if kv.value != "" {
				httpFields = with(httpFields, kv.key, ast.StringTerm(kv.value))
			}
		}
		if h.GetSize() != 0 {
			httpFields = with(httpFields, keySize, ast.IntNumberTerm(int(h.GetSize())))
		}
		reqFields = with(reqFields, keyHTTP, ast.ObjectTerm(httpFields...))
		attrs = with(attrs, keyRequest, ast.ObjectTerm(reqFields...))

		// The body, parsed as opa-envoy-plugin does for JSON requests.
		body := h.GetBody()
		if body == "" && len(h.GetRawBody()) > 0 {
			body = string(h.GetRawBody())
		}
		if body != "" && strings.HasPrefix(strings.ToLower(headerValue(r.Headers, "content-type")), "application/json") {
			var parsed any
			if err := json.Unmarshal([]byte(body), &parsed); err == nil {
				if t, err := ast.InterfaceToValue(parsed); err == nil {
					root.Insert(keyParsedBody, ast.NewTerm(t))
				}
			}
		}
		if headerValue(r.Headers, "x-envoy-auth-partial-body") == "true" {
			root.Insert(keyTruncated, ast.BooleanTerm(true))
		}
	}
	root.Insert(keyAttributes, ast.ObjectTerm(attrs...))
	return root, nil
}

// headerValue returns the value of a header; Envoy sends lower-case names.
func headerValue(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// fieldsOf returns the fields of the object t holds (none when t is nil
// or not an object), with room for extra more.
func fieldsOf(t *ast.Term, extra int) [][2]*ast.Term {
	o, _ := termValue(t).(ast.Object)
	if o == nil {
		return make([][2]*ast.Term, 0, extra)
	}
	kv := make([][2]*ast.Term, 0, o.Len()+extra)
	o.Foreach(func(k, v *ast.Term) { kv = append(kv, [2]*ast.Term{k, v}) })
	return kv
}

func termValue(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}

// field returns the value of key in fields, nil when there is none.
func field(fields [][2]*ast.Term, key *ast.Term) *ast.Term {
	for _, kv := range fields {
		if kv[0].Value.Compare(key.Value) == 0 {
			return kv[1]
		}
	}
	return nil
}

// with sets key to value in fields.
func with(fields [][2]*ast.Term, key, value *ast.Term) [][2]*ast.Term {
	for i, kv := range fields {
		if kv[0].Value.Compare(key.Value) == 0 {
			fields[i][1] = value
			return fields
		}
	}
	return append(fields, [2]*ast.Term{key, value})
}

// Keys of the fields added to the input, built once.
var (
	keyAddress              = ast.StringTerm("address")
	keySocketAddress        = ast.StringTerm("socketAddress")
	keyPortValue            = ast.StringTerm("portValue")
	keyService              = ast.StringTerm("service")
	keyLabels               = ast.StringTerm("labels")
	keyCertificate          = ast.StringTerm("certificate")
	keyContextExtensions    = ast.StringTerm("contextExtensions")
	keyMetadataContext      = ast.StringTerm("metadataContext")
	keyRouteMetadataContext = ast.StringTerm("routeMetadataContext")
	keyTLSSession           = ast.StringTerm("tlsSession")
	keyTime                 = ast.StringTerm("time")
	keyID                   = ast.StringTerm("id")
	keyScheme               = ast.StringTerm("scheme")
	keyProtocol             = ast.StringTerm("protocol")
	keyQuery                = ast.StringTerm("query")
	keyFragment             = ast.StringTerm("fragment")
	keyBody                 = ast.StringTerm("body")
	keySize                 = ast.StringTerm("size")
)

// peer returns the input object of a peer: base (what the engine put
// there, e.g. the principal) with the peer's address, service, labels and
// certificate added, built directly rather than through protojson: this
// runs on every check. Fields of base are kept.
func peer(base *ast.Term, p *authv3.AttributeContext_Peer) *ast.Term {
	fields := fieldsOf(base, 2)
	if sa := p.GetAddress().GetSocketAddress(); sa != nil {
		addr := fieldsOf(field(fields, keyAddress), 1)
		s := fieldsOf(field(addr, keySocketAddress), 2)
		if sa.GetAddress() != "" && field(s, keyAddress) == nil {
			s = append(s, [2]*ast.Term{keyAddress, ast.StringTerm(sa.GetAddress())})
		}
		if sa.GetPortValue() != 0 && field(s, keyPortValue) == nil {
			s = append(s, [2]*ast.Term{keyPortValue, ast.UIntNumberTerm(uint64(sa.GetPortValue()))})
		}
		addr = with(addr, keySocketAddress, ast.ObjectTerm(s...))
		fields = with(fields, keyAddress, ast.ObjectTerm(addr...))
	}
	if p.GetService() != "" {
		fields = with(fields, keyService, ast.StringTerm(p.GetService()))
	}
	if len(p.GetLabels()) > 0 {
		fields = with(fields, keyLabels, stringMapTerm(p.GetLabels()))
	}
	if p.GetCertificate() != "" {
		fields = with(fields, keyCertificate, ast.StringTerm(p.GetCertificate()))
	}
	return ast.ObjectTerm(fields...)
}

func stringMapTerm(m map[string]string) *ast.Term {
	kv := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		kv = append(kv, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
	}
	return ast.ObjectTerm(kv...)
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
