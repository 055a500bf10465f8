package extauthz

import (
	"net/http"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshward/meshward/policy"
)

// Metadata keys meshward adds to every response's dynamic metadata.
const (
	MetadataDecisionID = "decision_id"
	MetadataReason     = "reason"
)

// response builds the CheckResponse of a decision the way opa-envoy-plugin
// does: OK with the headers to add and remove when allowed; PERMISSION_DENIED
// with the status (403 unless the policy says otherwise), headers and body
// when denied. The decision id and reason always go in the dynamic
// metadata, and in the decision header when one is configured.
func response(d policy.Decision, decisionHeader string) *authv3.CheckResponse {
	md := ownMetadata(d)
	if len(d.DynamicMetadata) > 0 {
		meta := make(map[string]any, len(d.DynamicMetadata)+2)
		for k, v := range d.DynamicMetadata {
			meta[k] = v
		}
		meta[MetadataDecisionID] = d.ID
		meta[MetadataReason] = d.Reason
		// A policy's metadata that has no protobuf form is left out; ours
		// stays.
		if withPolicy, err := structpb.NewStruct(meta); err == nil {
			md = withPolicy
		}
	}
	resp := &authv3.CheckResponse{DynamicMetadata: md}
	if d.Allowed {
		resp.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		ok := &authv3.OkHttpResponse{
			Headers:              headerOptions(d.Headers, ""),
			HeadersToRemove:      slices.Clone(d.RequestHeadersToRemove),
			ResponseHeadersToAdd: headerOptions(d.ResponseHeadersToAdd, ""),
		}
		if decisionHeader != "" {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, header(decisionHeader, d.ID))
		}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
		return resp
	}
	status := d.HTTPStatus
	if status == 0 {
		status = http.StatusForbidden
	}
	resp.Status = &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED), Message: d.Reason}
	denied := &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: headerOptions(d.Headers, decisionHeader),
		Body:    d.Body,
	}
	if decisionHeader != "" {
		denied.Headers = append(denied.Headers, header(decisionHeader, d.ID))
	}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied}
	return resp
}

// ownMetadata is the dynamic metadata meshward adds to every response:
// the decision id and reason.
func ownMetadata(d policy.Decision) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		MetadataDecisionID: structpb.NewStringValue(d.ID),
		MetadataReason:     structpb.NewStringValue(d.Reason),
	}}
}

// headerOptions turns a header map into Envoy header options, sorted by
// name so responses are deterministic. A name equal to skip is left out.
func headerOptions(h map[string][]string, skip string) []*corev3.HeaderValueOption {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for k := range h {
		if k != skip {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []*corev3.HeaderValueOption
	for _, k := range names {
		for i, v := range h[k] {
			o := header(k, v)
			if i > 0 {
				o.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
			out = append(out, o)
		}
	}
	return out
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
