package decisionlog

import (
	"context"
	"encoding/json"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshward/meshward/policy"
)

// DefaultPath is the decision path logged when none is given: the default
// of the engine and of opa-envoy-plugin.
const DefaultPath = "envoy/authz/allow"

// ExtAuthzOptions configure Logger.ExtAuthz.
type ExtAuthzOptions struct {
	// Path is the decision path to log (default DefaultPath): the engine's
	// policy.Engine.DecisionPath().
	Path string
	// Input returns the input to log for a check. Nil logs the
	// CheckRequest itself (CheckRequestInput).
	Input func(*authv3.CheckRequest) (any, error)
	// Log receives the errors of logging (an input that cannot be built,
	// an event OPA refuses). The zero Logger discards them.
	Log logr.Logger
}

// ExtAuthz returns a function for extauthz.Options.OnDecision that logs
// every decision of the ext_authz server. The input is built only when
// decision logs are enabled.
func (l *Logger) ExtAuthz(opts ExtAuthzOptions) func(context.Context, policy.Decision, *authv3.CheckRequest, error) {
	path := opts.Path
	if path == "" {
		path = DefaultPath
	}
	input := opts.Input
	if input == nil {
		input = func(req *authv3.CheckRequest) (any, error) { return CheckRequestInput(req) }
	}
	return func(ctx context.Context, d policy.Decision, req *authv3.CheckRequest, derr error) {
		if !l.Enabled() {
			return
		}
		in, err := input(req)
		if err != nil {
			opts.Log.Error(err, "decision log: input not built; logging the decision without it", "id", d.ID)
			in = nil
		}
		if err := l.Log(ctx, d, in, path, derr); err != nil {
			opts.Log.Error(err, "decision not logged", "id", d.ID)
		}
	}
}

// CheckRequestInput returns a CheckRequest as OPA input: its protojson
// encoding (lowerCamelCase field names, as opa-envoy-plugin reads it), so
// the logged input has input.attributes.source.principal,
// input.attributes.request.http.headers and so on at the places a policy
// reads them. It lacks what the engine derives from the request
// (parsed_path, parsed_query, parsed_body, input.meshward).
func CheckRequestInput(req *authv3.CheckRequest) (ast.Value, error) {
	b, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(v)
}
