package decisionlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/meshward/meshward/policy"
)

// Options configure a Logger built by New.
type Options struct {
	// ID identifies this instance in every event (labels.id); a random id
	// when empty.
	ID string
	// Log receives the messages of OPA's plugin manager and decision log
	// plugin (uploads, retries, errors). The zero Logger discards them.
	Log logr.Logger
	// Console receives the console decision logs (decision_logs.console).
	// Nil writes them to standard error, one JSON object a line.
	Console logging.Logger
	// Policies are Rego modules (name -> source) loaded into the logger's
	// own store, for OPA's decision log mask and drop policies
	// (data.system.log.mask, data.system.log.drop).
	Policies map[string]string
}

// Logger writes decision log events through OPA's decision log plugin.
// Its methods are safe for concurrent use.
type Logger struct {
	manager *plugins.Manager
	// own is true when the manager was built by New and is stopped by Stop.
	own bool
}

// New starts an OPA plugin manager configured by raw (OPA's configuration
// format, as LoadConfig returns it) with OPA's decision log plugin, and
// returns a Logger writing to it. raw must enable decision logs
// (decision_logs.console, decision_logs.service, or both) and may define
// services, labels and keys; a section that loads policy (bundles,
// discovery, plugins, status) is refused, as is an unknown option. Stop
// the Logger to stop the manager.
func New(ctx context.Context, raw []byte, opts Options) (*Logger, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty: decision_logs must set console: true or service: <name>", ErrConfig)
	}
	id := opts.ID
	if id == "" {
		id = randomID()
	}
	opaLog := logging.NewLoggerFromSlogHandler(logr.ToSlogHandler(opts.Log), logging.Info)
	console := opts.Console
	if console == nil {
		console = logging.NewLoggerFromSlogHandler(slog.NewJSONHandler(os.Stderr, nil), logging.Info)
	}
	m, err := plugins.New(raw, id, inmem.New(),
		plugins.Logger(opaLog), plugins.ConsoleLogger(console),
		plugins.GracefulShutdownPeriod(10))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(m.Config.Warnings) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(m.Config.Warnings, "; "))
	}
	if s := presentSections(m); len(s) > 0 {
		return nil, fmt.Errorf("%w: %s not read here: meshward decides with its own policy and uses only services, labels, keys and decision_logs; to use OPA's bundles and plugins, run meshward's ext_authz server inside OPA (plugin meshward_ext_authz)",
			ErrConfig, strings.Join(s, ", "))
	}
	cfg, err := logs.NewConfigBuilder().WithBytes(m.Config.DecisionLogs).
		WithServices(m.Services()).WithLogger(opaLog).Parse()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: decision_logs: %w", ErrConfig, err)
	case cfg == nil:
		return nil, fmt.Errorf("%w: decision_logs must set console: true or service: <name>", ErrConfig)
	case cfg.Plugin != nil:
		return nil, fmt.Errorf("%w: decision_logs.plugin %q: no plugins run here; use console or service", ErrConfig, *cfg.Plugin)
	}
	modules, err := parsePolicies(opts.Policies)
	if err != nil {
		return nil, err
	}
	m.Register(logs.Name, logs.New(cfg, m))
	if err := m.Start(ctx); err != nil {
		m.Stop(ctx)
		return nil, fmt.Errorf("decision logs not started: %w", err)
	}
	if len(modules) > 0 {
		// Writing the modules fires the manager's compiler trigger, which
		// compiles them and has the plugin prepare its mask and drop
		// queries again.
		err := storage.Txn(ctx, m.Store, storage.WriteParams, func(txn storage.Transaction) error {
			for _, name := range slices.Sorted(maps.Keys(modules)) {
				if err := m.Store.UpsertPolicy(ctx, txn, name, []byte(modules[name])); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			m.Stop(ctx)
			return nil, fmt.Errorf("decision log policies not loaded: %w", err)
		}
	}
	return &Logger{manager: m, own: true}, nil
}

// presentSections lists the sections of m's configuration that New
// refuses.
func presentSections(m *plugins.Manager) []string {
	c := m.Config
	var out []string
	for _, s := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"bundle", c.Bundle},
		{"bundles", c.Bundles},
		{"discovery", c.Discovery},
		{"status", c.Status},
	} {
		if v := strings.TrimSpace(string(s.raw)); v != "" && v != "null" {
			out = append(out, s.name)
		}
	}
	if len(c.Plugins) > 0 {
		out = append(out, "plugins")
	}
	return out
}

// parsePolicies checks that mask and drop modules compile, so that a
// mistake is an error here rather than events silently not logged.
func parsePolicies(src map[string]string) (map[string]string, error) {
	if len(src) == 0 {
		return nil, nil
	}
	modules := make(map[string]*ast.Module, len(src))
	for name, s := range src {
		m, err := ast.ParseModuleWithOpts(name, s, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("%w: decision log policy: %w", ErrConfig, err)
		}
		modules[name] = m
	}
	c := ast.NewCompiler()
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("%w: decision log policy: %w", ErrConfig, c.Errors)
	}
	return src, nil
}

// FromManager returns a Logger that writes through the decision log plugin
// of m, as configured in m's decision_logs section: how meshward logs when
// it runs inside OPA. When m has no decision log plugin, Log does nothing.
// Stop leaves m alone.
func FromManager(m *plugins.Manager) *Logger {
	return &Logger{manager: m}
}

// Manager returns the OPA plugin manager the Logger writes through.
func (l *Logger) Manager() *plugins.Manager { return l.manager }

// Enabled reports whether events are logged: the manager has a decision
// log plugin.
func (l *Logger) Enabled() bool {
	return l != nil && l.manager != nil && logs.Lookup(l.manager) != nil
}

// Log records one decision: its id (the event's decision_id), the decision
// path, the input (an ast.Value, or anything that encodes as JSON) and the
// result, an object with allowed, reason and matched, dry_run in dry-run
// mode, and the result fields the policy set (http_status, headers, ...).
// err is the engine's error for a decision that could not be made; it is
// logged as the event's error, with a code saying which kind it is.
func (l *Logger) Log(ctx context.Context, d policy.Decision, input any, path string, err error) error {
	if l == nil || l.manager == nil {
		return nil
	}
	p := logs.Lookup(l.manager)
	if p == nil {
		return nil
	}
	info := &server.Info{
		DecisionID: d.ID,
		Path:       strings.Trim(path, "/"),
		Timestamp:  time.Now().UTC(),
		Results:    ptr(any(result(d))),
	}
	switch in := input.(type) {
	case nil:
	case ast.Value:
		v, jerr := ast.JSON(in)
		if jerr != nil {
			return fmt.Errorf("decision %s: input not logged: %w", d.ID, jerr)
		}
		info.Input, info.InputAST = &v, in
	default:
		info.Input = &in
	}
	if err != nil {
		info.Error = newEventError(err)
	}
	return p.Log(ctx, info)
}

// result is the event's result: the decision without its id, which is
// the event's decision_id.
func result(d policy.Decision) map[string]any {
	r := map[string]any{
		"allowed": d.Allowed,
		"reason":  d.Reason,
		"matched": stringsAny(d.Matched),
	}
	if d.DryRun {
		r["dry_run"] = true
	}
	if d.Memoised {
		r["memoised"] = true
	}
	if d.HTTPStatus != 0 {
		r["http_status"] = d.HTTPStatus
	}
	if len(d.Headers) > 0 {
		r["headers"] = headersAny(d.Headers)
	}
	if len(d.ResponseHeadersToAdd) > 0 {
		r["response_headers_to_add"] = headersAny(d.ResponseHeadersToAdd)
	}
	if len(d.RequestHeadersToRemove) > 0 {
		r["request_headers_to_remove"] = stringsAny(d.RequestHeadersToRemove)
	}
	if d.Body != "" {
		r["body"] = d.Body
	}
	if len(d.DynamicMetadata) > 0 {
		r["dynamic_metadata"] = d.DynamicMetadata
	}
	return r
}

func stringsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func headersAny(h map[string][]string) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = stringsAny(v)
	}
	return out
}

// Trigger uploads the buffered events now, when decision logs go to a
// service: the way to upload with reporting.trigger: manual.
func (l *Logger) Trigger(ctx context.Context) error {
	p := logs.Lookup(l.manager)
	if p == nil {
		return nil
	}
	return p.Trigger(ctx)
}

// Stop stops the manager New built. In the periodic and immediate trigger
// modes OPA's plugin first uploads what is buffered, trying for at most 10
// seconds. It does nothing for a Logger from FromManager.
func (l *Logger) Stop(ctx context.Context) {
	if l.own {
		l.manager.Stop(ctx)
	}
}

// eventError is how an error appears in an event: OPA encodes the event's
// error as JSON, so it needs fields.
type eventError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *eventError) Error() string { return e.Message }

// Codes of eventError, by the engine's errors.
const (
	CodeUndefinedDecision = "meshward_undefined_decision"
	CodeInvalidDecision   = "meshward_invalid_decision"
	CodeEvaluation        = "meshward_evaluation_error"
	CodeInternal          = "meshward_internal_error"
)

func newEventError(err error) *eventError {
	code := CodeInternal
	switch {
	case errors.Is(err, policy.ErrUndefinedDecision):
		code = CodeUndefinedDecision
	case errors.Is(err, policy.ErrInvalidDecision):
		code = CodeInvalidDecision
	case errors.Is(err, policy.ErrEvaluation):
		code = CodeEvaluation
	}
	return &eventError{Code: code, Message: err.Error()}
}

func ptr[T any](v T) *T { return &v }

// randomID returns 16 random bytes in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
