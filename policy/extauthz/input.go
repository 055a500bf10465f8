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

// inputFields fills f with the CheckRequest's attributes beyond those of
// r, so that policies written for opa-envoy-plugin find every field they
// read in the input. The engine places these fields as it builds each
// object of the input (policy.InputFields), so no object is built twice,
// and asks for them only when it builds the input.
func inputFields(f *policy.InputFields, req *authv3.CheckRequest, r policy.Request) {
	a := req.GetAttributes()
	// Peer details: addresses, certificates, labels, service.
	if p := a.GetSource(); p != nil {
		f.Source = new(policy.Peer)
		peer(f.Source, p)
	}
	if p := a.GetDestination(); p != nil {
		f.Destination = new(policy.Peer)
		peer(f.Destination, p)
	}
	f.Attributes = make([][2]*ast.Term, 0, 4)
	if len(a.GetContextExtensions()) > 0 {
		f.Attributes = append(f.Attributes, [2]*ast.Term{keyContextExtensions, stringMapTerm(a.GetContextExtensions())})
	}
	if a.GetMetadataContext() != nil {
		f.Attributes = append(f.Attributes, [2]*ast.Term{keyMetadataContext, protoTerm(a.GetMetadataContext())})
	}
	if a.GetRouteMetadataContext() != nil {
		f.Attributes = append(f.Attributes, [2]*ast.Term{keyRouteMetadataContext, protoTerm(a.GetRouteMetadataContext())})
	}
	if a.GetTlsSession() != nil {
		f.Attributes = append(f.Attributes, [2]*ast.Term{keyTLSSession, protoTerm(a.GetTlsSession())})
	}
	if h := a.GetRequest().GetHttp(); h != nil {
		if t := a.GetRequest().GetTime(); t != nil {
			f.Request = [][2]*ast.Term{{keyTime, ast.StringTerm(t.AsTime().UTC().Format("2006-01-02T15:04:05.999999999Z"))}}
		}
		f.HTTP = make([][2]*ast.Term, 0, 7)
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
				f.HTTP = append(f.HTTP, [2]*ast.Term{kv.key, ast.StringTerm(kv.value)})
			}
		}
		if h.GetSize() != 0 {
			f.HTTP = append(f.HTTP, [2]*ast.Term{keySize, ast.IntNumberTerm(int(h.GetSize()))})
		}

		// The body, parsed as opa-envoy-plugin does for JSON requests.
		body := h.GetBody()
		if body == "" && len(h.GetRawBody()) > 0 {
			body = string(h.GetRawBody())
		}
		if body != "" && strings.HasPrefix(strings.ToLower(headerValue(r.Headers, "content-type")), "application/json") {
			var parsed any
			if err := json.Unmarshal([]byte(body), &parsed); err == nil {
				if t, err := ast.InterfaceToValue(parsed); err == nil {
					f.ParsedBody = ast.NewTerm(t)
				}
			}
		}
		f.TruncatedBody = headerValue(r.Headers, "x-envoy-auth-partial-body") == "true"
	}
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

// Keys of the fields added to the input, built once.
var (
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

// peer reads a peer's address, service, labels and certificate into out,
// directly rather than through protojson: this runs on every check.
func peer(out *policy.Peer, p *authv3.AttributeContext_Peer) {
	if sa := p.GetAddress().GetSocketAddress(); sa != nil {
		out.Socket, out.Address, out.Port = true, sa.GetAddress(), sa.GetPortValue()
	}
	if p.GetService() != "" {
		out.Fields = append(out.Fields, [2]*ast.Term{keyService, ast.StringTerm(p.GetService())})
	}
	if len(p.GetLabels()) > 0 {
		out.Fields = append(out.Fields, [2]*ast.Term{keyLabels, stringMapTerm(p.GetLabels())})
	}
	if p.GetCertificate() != "" {
		out.Fields = append(out.Fields, [2]*ast.Term{keyCertificate, ast.StringTerm(p.GetCertificate())})
	}
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
