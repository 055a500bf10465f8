package opaplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/policy"
)

// Defaults of the configuration, those of opa-envoy-plugin.
const (
	DefaultAddr = ":9191"
	DefaultPath = "envoy/authz/allow"
)

// ErrConfig is wrapped by every configuration error; the message names the
// option and says what is wrong with it.
var ErrConfig = errors.New("invalid configuration")

// Config is the plugin's configuration, the value of
// plugins.meshward_ext_authz in an OPA configuration file. Option names
// follow opa-envoy-plugin's where they mean the same.
type Config struct {
	// Addr is where the gRPC server listens: host:port, or unix:///path
	// for a Unix socket (default :9191).
	Addr string `json:"addr,omitempty"`
	// Path is the decision rule, "/"-separated under data (default
	// envoy/authz/allow).
	Path string `json:"path,omitempty"`
	// DryRun allows every request; the real decision is logged.
	DryRun bool `json:"dry-run,omitempty"`
	// MeshDir is the directory of mesh manifests (SMI objects, Namespaces,
	// ServiceAccounts, Services, ...) and .rego files, watched for changes.
	MeshDir string `json:"mesh-dir"`
	// DecisionHeader names a response header carrying the decision id;
	// none when empty.
	DecisionHeader string `json:"decision-header,omitempty"`
	// DecisionCacheSize is how many decisions of the built-in policy to
	// memoise (policy.Options.CacheSize: 0 is the default size, negative
	// turns memoisation off).
	DecisionCacheSize int `json:"decision-cache-size,omitempty"`
	// RegexCacheSize is how many compiled regular expressions the engine
	// keeps (policy.Options.RegexCacheSize: 0 is the default size,
	// negative leaves them to OPA's process-wide cache).
	RegexCacheSize int `json:"regex-cache-size,omitempty"`
	// Evaluator is policy.Options.Evaluator ("plan" when empty, or "opa").
	Evaluator string `json:"evaluator,omitempty"`
	// GRPCMaxRecvMsgSize and GRPCMaxSendMsgSize bound gRPC messages in
	// bytes (gRPC's defaults when zero).
	GRPCMaxRecvMsgSize int `json:"grpc-max-recv-msg-size,omitempty"`
	GRPCMaxSendMsgSize int `json:"grpc-max-send-msg-size,omitempty"`

	// The mesh options, as meshward's flags of the same names.
	MeshName        string `json:"mesh-name,omitempty"`
	TrustDomain     string `json:"trust-domain,omitempty"`
	PrincipalFormat string `json:"principal-format,omitempty"`
	PathMatch       string `json:"path-match,omitempty"`
	Permissive      bool   `json:"permissive,omitempty"`
	FailOpen        bool   `json:"fail-open,omitempty"`
}

// parseConfig reads and checks the plugin's configuration and fills in the
// defaults. Errors name the option as plugins.<name>.<option>.
func parseConfig(name string, raw []byte) (*Config, error) {
	prefix := "plugins." + name
	bad := func(option, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrConfig, prefix, option, fmt.Sprintf(format, args...))
	}
	c := &Config{}
	if s := bytes.TrimSpace(raw); len(s) > 0 && !bytes.Equal(s, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, decodeError(prefix, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: more than one value", ErrConfig, prefix)
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if path, ok := strings.CutPrefix(c.Addr, "unix://"); ok {
		if path == "" {
			return nil, bad("addr", "%q names no socket file", c.Addr)
		}
	} else if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return nil, bad("addr", "%q is not host:port (e.g. :9191) or unix:///path/to/socket", c.Addr)
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	c.Path = strings.Trim(c.Path, "/")
	for seg := range strings.SplitSeq(c.Path, "/") {
		if seg == "" || strings.ContainsAny(seg, " \t") {
			return nil, bad("path", "%q is not a decision path like envoy/authz/allow", c.Path)
		}
	}
	if c.MeshDir == "" {
		return nil, bad("mesh-dir", "required: the directory of mesh manifests (SMI objects, Namespaces, ServiceAccounts, Services) to decide with")
	}
	if st, err := os.Stat(c.MeshDir); err != nil {
		return nil, bad("mesh-dir", "%v", err)
	} else if !st.IsDir() {
		return nil, bad("mesh-dir", "%s is not a directory", c.MeshDir)
	}
	switch c.Evaluator {
	case "", policy.EvaluatorPlan, policy.EvaluatorOPA:
	default:
		return nil, bad("evaluator", "%q is neither %q nor %q", c.Evaluator, policy.EvaluatorPlan, policy.EvaluatorOPA)
	}
	if c.GRPCMaxRecvMsgSize < 0 {
		return nil, bad("grpc-max-recv-msg-size", "%d is negative", c.GRPCMaxRecvMsgSize)
	}
	if c.GRPCMaxSendMsgSize < 0 {
		return nil, bad("grpc-max-send-msg-size", "%d is negative", c.GRPCMaxSendMsgSize)
	}
	// The defaults are valid, so an option that makes them invalid on its
	// own is the one to name.
	for _, o := range []struct {
		option, value string
		set           func(*mesh.Options)
	}{
		{"mesh-name", c.MeshName, func(o *mesh.Options) { o.MeshName = c.MeshName }},
		{"trust-domain", c.TrustDomain, func(o *mesh.Options) { o.TrustDomain = c.TrustDomain }},
		{"principal-format", c.PrincipalFormat, func(o *mesh.Options) { o.PrincipalFormat = mesh.PrincipalFormat(c.PrincipalFormat) }},
		{"path-match", c.PathMatch, func(o *mesh.Options) { o.PathMatch = mesh.PathMatch(c.PathMatch) }},
	} {
		opts := mesh.DefaultOptions()
		o.set(&opts)
		if err := opts.Validate(); o.value != "" && err != nil {
			return nil, bad(o.option, "%v", err)
		}
	}
	return c, nil
}

// decodeError says which option is wrong.
func decodeError(prefix string, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		want := typeErr.Type.String()
		switch want {
		case "int":
			want = "a number of bytes"
		case "bool":
			want = "true or false"
		case "string":
			want = "a string"
		}
		if typeErr.Field == "" {
			return fmt.Errorf("%w: %s: the configuration is %s, not an object", ErrConfig, prefix, article(typeErr.Value))
		}
		return fmt.Errorf("%w: %s.%s: %s, want %s", ErrConfig, prefix, typeErr.Field, article(typeErr.Value), want)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s: not valid JSON: %w", ErrConfig, prefix, err)
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%w: %s: unknown option %s; the options are %s", ErrConfig, prefix, field, strings.Join(optionNames(), ", "))
	}
	return fmt.Errorf("%w: %s: %w", ErrConfig, prefix, err)
}

func article(jsonType string) string {
	if jsonType == "array" || jsonType == "object" {
		return "an " + jsonType
	}
	return "a " + jsonType
}

// optionNames lists the options of Config.
func optionNames() []string {
	return []string{
		"addr", "path", "dry-run", "mesh-dir", "decision-header", "decision-cache-size",
		"regex-cache-size", "evaluator",
		"grpc-max-recv-msg-size", "grpc-max-send-msg-size",
		"mesh-name", "trust-domain", "principal-format", "path-match", "permissive", "fail-open",
	}
}

// meshOptions returns the mesh options of the configuration, meshward's
// defaults where it sets none.
func (c *Config) meshOptions() mesh.Options {
	o := mesh.DefaultOptions()
	if c.MeshName != "" {
		o.MeshName = c.MeshName
	}
	if c.TrustDomain != "" {
		o.TrustDomain = c.TrustDomain
	}
	if c.PrincipalFormat != "" {
		o.PrincipalFormat = mesh.PrincipalFormat(c.PrincipalFormat)
	}
	if c.PathMatch != "" {
		o.PathMatch = mesh.PathMatch(c.PathMatch)
	}
	o.Permissive, o.FailOpen = c.Permissive, c.FailOpen
	return o
}

// listenerChanged, engineChanged and meshChanged say which parts of the
// plugin a new configuration restarts.
func listenerChanged(a, b *Config) bool {
	return a.Addr != b.Addr || a.GRPCMaxRecvMsgSize != b.GRPCMaxRecvMsgSize || a.GRPCMaxSendMsgSize != b.GRPCMaxSendMsgSize
}

func engineChanged(a, b *Config) bool {
	return a.Path != b.Path || a.DryRun != b.DryRun || a.DecisionHeader != b.DecisionHeader || a.DecisionCacheSize != b.DecisionCacheSize ||
		a.RegexCacheSize != b.RegexCacheSize || a.Evaluator != b.Evaluator
}

func meshChanged(a, b *Config) bool {
	return a.MeshDir != b.MeshDir || a.meshOptions() != b.meshOptions()
}
