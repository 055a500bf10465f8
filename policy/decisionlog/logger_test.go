package decisionlog_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	logtest "github.com/open-policy-agent/opa/v1/logging/test"

	"github.com/meshward/meshward/policy"
	"github.com/meshward/meshward/policy/decisionlog"
)

// consoleEvents returns the decision log events the console logger got.
func consoleEvents(l *logtest.Logger) []map[string]any {
	var out []map[string]any
	for _, e := range l.Entries() {
		if e.Message == "Decision Log" {
			out = append(out, e.Fields)
		}
	}
	return out
}

// newLogger starts a Logger with a test console logger; it is stopped
// when the test ends.
func newLogger(t *testing.T, config string, opts decisionlog.Options) (*decisionlog.Logger, *logtest.Logger) {
	t.Helper()
	console := logtest.New()
	opts.Console = console
	if opts.ID == "" {
		opts.ID = "test-instance"
	}
	l, err := decisionlog.New(context.Background(), []byte(config), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Stop(ctx)
	})
	return l, console
}

func input(t *testing.T, js string) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// get follows keys into nested JSON objects.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestConsole(t *testing.T) {
	l, console := newLogger(t, `decision_logs: {console: true}`, decisionlog.Options{})
	ctx := context.Background()
	allowed := policy.Decision{
		ID: "0123456789abcdef0123456789abcdef", Allowed: true,
		Reason:  "bookbuyer/bookbuyer may call bookstore/bookstore: rule",
		Matched: []string{"rule"},
	}
	in := input(t, `{"attributes": {"source": {"principal": "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"}}}`)
	if err := l.Log(ctx, allowed, in, "envoy/authz/allow", nil); err != nil {
		t.Fatal(err)
	}
	denied := policy.Decision{ID: "fedcba9876543210fedcba9876543210", Reason: "no decision", Matched: []string{}}
	if err := l.Log(ctx, denied, map[string]any{"x": 1}, "/envoy/authz/allow", fmt.Errorf("%w: no value", policy.ErrUndefinedDecision)); err != nil {
		t.Fatal(err)
	}

	events := consoleEvents(console)
	if len(events) != 2 {
		t.Fatalf("got %d console events, want 2: %v", len(events), console.Entries())
	}
	e := events[0]
	for key, want := range map[string]any{
		"decision_id": allowed.ID,
		"path":        "envoy/authz/allow",
		"type":        "openpolicyagent.org/decision_logs",
	} {
		if e[key] != want {
			t.Errorf("event %s = %v, want %v", key, e[key], want)
		}
	}
	if got := get(e, "result", "allowed"); got != true {
		t.Errorf("result.allowed = %v, want true", got)
	}
	if got := get(e, "result", "reason"); got != allowed.Reason {
		t.Errorf("result.reason = %v, want %q", got, allowed.Reason)
	}
	if got := fmt.Sprint(get(e, "result", "matched")); got != "[rule]" {
		t.Errorf("result.matched = %v", got)
	}
	if got := get(e, "input", "attributes", "source", "principal"); got != "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer" {
		t.Errorf("input principal = %v", got)
	}
	if got := get(e, "labels", "id"); got != "test-instance" {
		t.Errorf("labels.id = %v", got)
	}

	e = events[1]
	if e["decision_id"] != denied.ID || get(e, "result", "allowed") != false || e["path"] != "envoy/authz/allow" {
		t.Errorf("second event = %v", e)
	}
	if msg, _ := e["error"].(string); !strings.Contains(msg, "undefined") {
		t.Errorf("error = %v, want the engine's error", e["error"])
	}
}

// logService is a decision log service: it keeps the events of every
// upload.
type logService struct {
	*httptest.Server
	mu      sync.Mutex
	uploads [][]map[string]any
	errs    []error
}

func newLogService(t *testing.T) *logService {
	s := &logService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, err := readUpload(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.uploads = append(s.uploads, events)
	}))
	t.Cleanup(s.Close)
	return s
}

func readUpload(r *http.Request) ([]map[string]any, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/logs" {
		return nil, fmt.Errorf("%s %s, want POST /logs", r.Method, r.URL.Path)
	}
	if r.Header.Get("Content-Encoding") != "gzip" {
		return nil, fmt.Errorf("Content-Encoding %q, want gzip", r.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var events []map[string]any
	if err := json.Unmarshal(body, &events); err != nil {
		return nil, fmt.Errorf("body is not a JSON array of events: %w", err)
	}
	return events, nil
}

func (s *logService) events(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Fatalf("bad uploads: %v", s.errs)
	}
	var out []map[string]any
	for _, u := range s.uploads {
		out = append(out, u...)
	}
	return out
}

func TestRemoteService(t *testing.T) {
	svc := newLogService(t)
	config := fmt.Sprintf(`
services:
  logsvc:
    url: %s
labels:
  cluster: test
decision_logs:
  service: logsvc
  reporting:
    trigger: manual
`, svc.URL)
	l, console := newLogger(t, config, decisionlog.Options{})
	ctx := context.Background()
	decisions := []policy.Decision{
		{ID: "00000000000000000000000000000001", Allowed: true, Reason: "allowed by rule", Matched: []string{"rule"}},
		{ID: "00000000000000000000000000000002", Reason: "denied", Matched: []string{}, HTTPStatus: 404, Body: "not found"},
	}
	for _, d := range decisions {
		if err := l.Log(ctx, d, map[string]any{"attributes": map[string]any{}}, "envoy/authz/allow", nil); err != nil {
			t.Fatal(err)
		}
	}
	failed := policy.Decision{ID: "00000000000000000000000000000003", Reason: "no decision, denied", Matched: []string{}}
	if err := l.Log(ctx, failed, nil, "envoy/authz/allow", fmt.Errorf("%w: boom", policy.ErrEvaluation)); err != nil {
		t.Fatal(err)
	}
	if got := svc.events(t); len(got) != 0 {
		t.Fatalf("uploaded before the trigger: %v", got)
	}
	if err := l.Trigger(ctx); err != nil {
		t.Fatalf("Trigger: %v", err)
	}
	events := svc.events(t)
	if len(events) != 3 {
		t.Fatalf("service got %d events, want 3: %v", len(events), events)
	}
	for i, d := range decisions {
		e := events[i]
		if e["decision_id"] != d.ID {
			t.Errorf("event %d decision_id = %v, want %s", i, e["decision_id"], d.ID)
		}
		if get(e, "result", "allowed") != d.Allowed || get(e, "result", "reason") != d.Reason {
			t.Errorf("event %d result = %v, want allowed %v reason %q", i, e["result"], d.Allowed, d.Reason)
		}
		if get(e, "labels", "cluster") != "test" || get(e, "labels", "id") != "test-instance" {
			t.Errorf("event %d labels = %v", i, e["labels"])
		}
	}
	if got := get(events[1], "result", "http_status"); got != float64(404) {
		t.Errorf("http_status = %v, want 404", got)
	}
	if got := get(events[2], "error", "code"); got != decisionlog.CodeEvaluation {
		t.Errorf("error code = %v, want %s", got, decisionlog.CodeEvaluation)
	}
	if got, _ := get(events[2], "error", "message").(string); !strings.Contains(got, "boom") {
		t.Errorf("error message = %q", got)
	}
	if n := len(consoleEvents(console)); n != 0 {
		t.Errorf("%d console events without console: true", n)
	}
}

func TestMaskPolicy(t *testing.T) {
	l, console := newLogger(t, `{"decision_logs": {"console": true}}`, decisionlog.Options{
		Policies: map[string]string{"mask.rego": `package system.log

mask contains "/input/attributes/request/http/headers/authorization"
`},
	})
	in := input(t, `{"attributes": {"request": {"http": {"headers": {"authorization": "Bearer secret", "user-agent": "ua"}}}}}`)
	if err := l.Log(context.Background(), policy.Decision{ID: "a", Allowed: true}, in, "envoy/authz/allow", nil); err != nil {
		t.Fatal(err)
	}
	events := consoleEvents(console)
	if len(events) != 1 {
		t.Fatalf("got %d events", len(events))
	}
	headers := get(events[0], "input", "attributes", "request", "http", "headers")
	if h, _ := headers.(map[string]any); h == nil || h["authorization"] != nil || h["user-agent"] != "ua" {
		t.Errorf("headers = %v, want authorization erased", headers)
	}
	if got := fmt.Sprint(events[0]["erased"]); got != "[/input/attributes/request/http/headers/authorization]" {
		t.Errorf("erased = %v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		config   string
		policies map[string]string
		want     string
	}{
		"empty":             {config: ``, want: "console: true or service"},
		"nothing enabled":   {config: `labels: {a: b}`, want: "console: true or service"},
		"unknown option":    {config: `decision_logs: {consoel: true}`, want: `"decision_logs.consoel"`},
		"unknown service":   {config: `{decision_logs: {service: nope}}`, want: `invalid service name "nope"`},
		"bundles":           {config: `{services: {s: {url: "http://127.0.0.1:1"}}, bundles: {b: {service: s}}, decision_logs: {console: true}}`, want: "bundles not read here"},
		"plugins":           {config: `{plugins: {x: {}}, decision_logs: {console: true}}`, want: "plugins not read here"},
		"plugin logger":     {config: `{decision_logs: {plugin: x}}`, want: `invalid plugin name "x"`},
		"not an object":     {config: `[1, 2]`, want: "invalid decision log configuration"},
		"bad mask policy":   {config: `decision_logs: {console: true}`, policies: map[string]string{"m.rego": "package system.log\nmask contains x if { y }"}, want: "decision log policy"},
		"bad reporting":     {config: `decision_logs: {console: true, reporting: {min_delay_seconds: 10}}`, want: "max_delay_seconds"},
		"bad trigger value": {config: `decision_logs: {console: true, reporting: {trigger: sometimes}}`, want: "sometimes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decisionlog.New(context.Background(), []byte(tc.config), decisionlog.Options{
				Console: logtest.New(), Policies: tc.policies,
			})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, decisionlog.ErrConfig) {
				t.Errorf("error %v is not ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("MESHWARD_TEST_TOKEN", "s3cret")
	raw, err := decisionlog.LoadConfig(write("opa.yaml", `
services:
  logsvc:
    url: http://127.0.0.1:1
    credentials:
      bearer:
        token: "${MESHWARD_TEST_TOKEN}"
decision_logs:
  console: true
`))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("LoadConfig returned no JSON: %v: %s", err, raw)
	}
	if got := get(v, "services", "logsvc", "credentials", "bearer", "token"); got != "s3cret" {
		t.Errorf("token = %v, want the environment variable's value", got)
	}
	l, err := decisionlog.New(context.Background(), raw, decisionlog.Options{Console: logtest.New()})
	if err != nil {
		t.Fatal(err)
	}
	l.Stop(context.Background())

	for name, tc := range map[string]struct{ file, content, want string }{
		"missing file":  {file: "absent.yaml", want: "absent.yaml"},
		"unset env":     {file: "env.yaml", content: "decision_logs: {console: ${MESHWARD_TEST_UNSET}}", want: "MESHWARD_TEST_UNSET"},
		"unclosed env":  {file: "open.yaml", content: "a: ${X", want: "not closed"},
		"not yaml":      {file: "bad.yaml", content: "a: [1, 2", want: "not YAML or JSON"},
		"not an object": {file: "list.json", content: "[1]", want: "not an object"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			if tc.content != "" {
				p = write(tc.file, tc.content)
			}
			_, err := decisionlog.LoadConfig(p)
			if !errors.Is(err, decisionlog.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFromManagerWithoutDecisionLogs(t *testing.T) {
	l := decisionlog.FromManager(nil)
	if l.Enabled() {
		t.Error("enabled without a manager")
	}
	if err := l.Log(context.Background(), policy.Decision{ID: "x"}, nil, "p", nil); err != nil {
		t.Error(err)
	}
}

// The console logger of OPA's runtime is a logging.Logger; ours too.
var _ logging.Logger = logtest.New()
