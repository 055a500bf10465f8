package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

// checkOutput is the JSON that check prints.
type checkOutput struct {
	ID          string   `json:"id"`
	Allowed     bool     `json:"allowed"`
	Reason      string   `json:"reason"`
	Matched     []string `json:"matched"`
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Decisions   []struct {
		Source, Destination, ID, Reason string
		Allowed                         bool
	} `json:"decisions"`
	Findings []struct {
		Position string `json:"position"`
		Reason   string `json:"reason"`
		Message  string `json:"message"`
		Object   struct{ Kind, Namespace, Name string }
	} `json:"findings"`
}

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func exampleDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples", "bookstore")
}

// checkJSON runs check -o json and decodes its output.
func checkJSON(t *testing.T, dir string, args ...string) (int, checkOutput) {
	t.Helper()
	args = append([]string{"check", "--dir", dir, "-o", "json"}, args...)
	code, out, errOut := runMain(t, args...)
	var got checkOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: output is not JSON: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	return code, got
}

// TestCheckBookstore runs the expected decisions of examples/bookstore's
// README. "bookstore" as a destination is each bookstore identity and the
// bookstore Service.
func TestCheckBookstore(t *testing.T) {
	dir := exampleDir(t)
	stores := []string{"bookstore/bookstore", "bookstore/bookstore-v2", "svc:bookstore/bookstore"}
	warehouse := []string{"bookwarehouse/bookwarehouse", "svc:bookwarehouse/bookwarehouse"}
	const (
		buyer = "bookbuyer/bookbuyer"
		thief = "bookthief/bookthief"
	)
	tests := map[string]struct {
		source       []string
		destinations []string
		args         []string
		allowed      bool
		want         string // in a matched rule when allowed, in the reason when denied
	}{
		"01 books-bought": {
			source: []string{buyer}, destinations: stores, args: []string{"--method", "GET", "--path", "/books-bought"},
			allowed: true, want: "HTTPRouteGroup bookstore/bookstore-service-routes match books-bought",
		},
		"02 query string is not the path": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/books-bought?limit=10"},
			allowed: true, want: "match books-bought",
		},
		"03 buy a book with the user agent": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/buy-a-book/new", "--header", "User-Agent=bookbuyer/1.0"},
			allowed: true, want: "match buy-a-book",
		},
		"04 buy a book with another user agent": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/buy-a-book/new", "--header", "User-Agent=curl/8.0"},
			want: "no HTTPRouteGroup match of TrafficTarget bookstore/bookbuyer-access-bookstore",
		},
		"05 books-bought allows GET only": {
			source: []string{buyer}, destinations: stores, args: []string{"--method", "POST", "--path", "/books-bought"},
			want: "allows POST /books-bought",
		},
		"06 update-books-bought is not granted": {
			source: []string{buyer}, destinations: stores, args: []string{"--method", "POST", "--path", "/update-books-bought"},
			want: "allows POST /update-books-bought",
		},
		"07 bookthief is listed nowhere": {
			source: []string{thief}, destinations: stores, args: []string{"--path", "/books-bought"},
			want: "no TrafficTarget allows bookthief/bookthief to call bookstore/bookstore",
		},
		"08 bookthief with the user agent": {
			source: []string{thief}, destinations: stores, args: []string{"--path", "/buy-a-book/new", "--header", "user-agent=bookbuyer/1.0"},
			want: "no TrafficTarget allows bookthief/bookthief",
		},
		"09 bookstore restocks": {
			source: []string{"bookstore/bookstore", "sa:bookstore/bookstore"}, destinations: warehouse, args: []string{"--method", "POST", "--path", "/restock-books"},
			allowed: true, want: "TrafficTarget bookwarehouse/bookstore-access-bookwarehouse: HTTPRouteGroup bookwarehouse/bookwarehouse-service-routes match restock-books",
		},
		"10 bookstore v2 restocks": {
			source: []string{"bookstore/bookstore-v2", "svc:bookstore/bookstore-v2", "svc:bookstore/bookstore"}, destinations: warehouse,
			args: []string{"--method", "POST", "--path", "/restock-books"}, allowed: true, want: "bookstore-access-bookwarehouse",
		},
		"11 bookstore opens TCP": {
			source: []string{"bookstore/bookstore"}, destinations: warehouse, args: []string{"--port", "14001"},
			allowed: true, want: "TCPRoute bookwarehouse/bookwarehouse-tcp match bookwarehouse-port",
		},
		"12 bookbuyer may not restock": {
			source: []string{buyer}, destinations: warehouse, args: []string{"--method", "POST", "--path", "/restock-books"},
			want: "no TrafficTarget allows bookbuyer/bookbuyer to call bookwarehouse/bookwarehouse",
		},
		"13 bookthief may not open TCP": {
			source: []string{thief}, destinations: warehouse, args: []string{"--port", "14001"},
			want: "no TrafficTarget allows bookthief/bookthief to call bookwarehouse/bookwarehouse",
		},
		"14 HTTP rules do not open raw TCP": {
			source: []string{buyer}, destinations: stores, args: []string{"--port", "14001"},
			want: "HTTP rules do not allow TCP",
		},
		"prefix match by default": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/books-bought/2024"},
			allowed: true, want: "match books-bought",
		},
		"full match option": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/books-bought/2024", "--path-match", "full"},
			want: "allows GET /books-bought/2024",
		},
		"encoded slash is refused": {
			source: []string{buyer}, destinations: stores, args: []string{"--path", "/books-bought%2Fx"},
			want: "encoded slash",
		},
	}
	for name, tc := range tests {
		for _, src := range tc.source {
			for _, dst := range tc.destinations {
				t.Run(name+"/"+src+"->"+dst, func(t *testing.T) {
					args := append([]string{"--source", src, "--destination", dst}, tc.args...)
					code, got := checkJSON(t, dir, args...)
					wantCode := cli.ExitError
					if tc.allowed {
						wantCode = cli.ExitOK
					}
					if code != wantCode || got.Allowed != tc.allowed {
						t.Fatalf("exit %d, allowed %v; want exit %d (%s)", code, got.Allowed, wantCode, got.Reason)
					}
					if got.ID == "" || len(got.Decisions) == 0 || got.Matched == nil {
						t.Errorf("id %q, %d decisions, matched %v", got.ID, len(got.Decisions), got.Matched)
					}
					if got.Source != src && "sa:"+got.Source != src || got.Destination != dst {
						t.Errorf("source %q, destination %q", got.Source, got.Destination)
					}
					if tc.allowed {
						found := false
						for _, m := range got.Matched {
							found = found || strings.Contains(m, tc.want)
						}
						if !found {
							t.Errorf("no matched rule contains %q: %q", tc.want, got.Matched)
						}
					} else {
						if len(got.Matched) != 0 {
							t.Errorf("denied with matched rules %q", got.Matched)
						}
						if !strings.Contains(got.Reason, tc.want) {
							t.Errorf("reason %q lacks %q", got.Reason, tc.want)
						}
					}
				})
			}
		}
	}
}

func TestCheckService(t *testing.T) {
	dir := exampleDir(t)
	code, got := checkJSON(t, dir, "--source", "bookbuyer/bookbuyer", "--destination", "svc:bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitOK || len(got.Decisions) != 2 || !strings.HasPrefix(got.Reason, "Service bookstore/bookstore is backed by bookstore/bookstore, bookstore/bookstore-v2; every one allows") {
		t.Fatalf("exit %d: %+v", code, got)
	}
	if len(got.Matched) != 2 {
		t.Errorf("matched %q, want the rule of each identity", got.Matched)
	}
	code, got = checkJSON(t, dir, "--source", "bookbuyer/bookbuyer", "--destination", "svc:bookstore/absent", "--path", "/")
	if code != cli.ExitError || got.Allowed || !strings.Contains(got.Reason, "Service bookstore/absent is not in the mesh") {
		t.Fatalf("exit %d: %+v", code, got)
	}
}

func TestCheckServiceNotEveryIdentity(t *testing.T) {
	dir := copyExample(t)
	// Only bookstore v1 may be called: the Service, backed by both
	// versions, is then denied and says which identity refused.
	policy := "package meshward.ext\n\ndeny contains \"v2 is frozen\" if input.meshward.destination == \"bookstore/bookstore-v2\"\n"
	if err := os.WriteFile(filepath.Join(dir, "freeze.rego"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	code, got := checkJSON(t, dir, "--source", "bookbuyer/bookbuyer", "--destination", "svc:bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitError || got.Allowed {
		t.Fatalf("exit %d: %+v", code, got)
	}
	want := "denied because not every one allows the request: bookbuyer/bookbuyer -> bookstore/bookstore-v2: denied by data.meshward.ext.deny: v2 is frozen"
	if !strings.Contains(got.Reason, want) {
		t.Fatalf("reason %q lacks %q", got.Reason, want)
	}
	code, got = checkJSON(t, dir, "--source", "bookbuyer/bookbuyer", "--destination", "bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %+v", code, got)
	}
}

func TestCheckReportsFindings(t *testing.T) {
	dir := copyExample(t)
	misplaced := `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: misplaced
  namespace: bookbuyer
spec:
  destination:
    kind: ServiceAccount
    name: bookstore
    namespace: bookstore
  sources:
    - kind: ServiceAccount
      name: bookthief
      namespace: bookthief
  rules:
    - kind: HTTPRouteGroup
      name: bookstore-service-routes
`
	if err := os.WriteFile(filepath.Join(dir, "misplaced.yaml"), []byte(misplaced), 0o644); err != nil {
		t.Fatal(err)
	}
	code, got := checkJSON(t, dir, "--source", "bookthief/bookthief", "--destination", "bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitError || got.Allowed {
		t.Fatalf("exit %d: %+v", code, got)
	}
	if len(got.Findings) != 1 || got.Findings[0].Reason != "WrongNamespace" || got.Findings[0].Position != "misplaced.yaml:1" {
		t.Fatalf("findings %+v, want the misplaced TrafficTarget at misplaced.yaml:1", got.Findings)
	}
	code, out, _ := runMain(t, "check", "--dir", dir, "--source", "bookthief/bookthief", "--destination", "bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitError || !strings.Contains(out, "misplaced.yaml:1: TrafficTarget bookbuyer/misplaced") {
		t.Fatalf("text output lacks the finding:\n%s", out)
	}
	// Another destination: the finding is not about it.
	_, got = checkJSON(t, dir, "--source", "bookstore/bookstore", "--destination", "bookwarehouse/bookwarehouse", "--port", "14001")
	if len(got.Findings) != 0 {
		t.Fatalf("unrelated findings %+v", got.Findings)
	}
}

func TestCheckText(t *testing.T) {
	code, out, errOut := runMain(t, "check", "--dir", exampleDir(t), "--source", "bookbuyer/bookbuyer", "--destination", "bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"allowed: bookbuyer/bookbuyer -> bookstore/bookstore: GET /books-bought\n",
		"reason: bookbuyer/bookbuyer may call bookstore/bookstore: TrafficTarget bookstore/bookbuyer-access-bookstore",
		"matched: TrafficTarget bookstore/bookbuyer-access-bookstore: HTTPRouteGroup bookstore/bookstore-service-routes match books-bought\n",
		"decision: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckUserPolicy(t *testing.T) {
	dir := copyExample(t)
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	frozen := "package meshward.ext\n\ndeny contains \"the shop is closed\" if input.attributes.request.http.method == \"GET\"\n"
	if err := os.WriteFile(filepath.Join(dir, "policies", "closed.rego"), []byte(frozen), 0o644); err != nil {
		t.Fatal(err)
	}
	code, got := checkJSON(t, dir, "--source", "bookbuyer/bookbuyer", "--destination", "bookstore/bookstore", "--path", "/books-bought")
	if code != cli.ExitError || got.Reason != "denied by data.meshward.ext.deny: the shop is closed" {
		t.Fatalf("exit %d: %+v", code, got)
	}
}

func TestCheckUsageErrors(t *testing.T) {
	ex := exampleDir(t)
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "bad.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badRego := copyExample(t)
	if err := os.WriteFile(filepath.Join(badRego, "bad.rego"), []byte("package meshward.ext\n\ndeny contains x if {\n\ty := 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--source", "bookbuyer/bookbuyer", "--destination", "bookstore/bookstore"}
	tests := map[string]struct {
		args []string
		want string
	}{
		"missing dir":          {append([]string{"check"}, base...), "--dir is required"},
		"no such dir":          {append([]string{"check", "--dir", filepath.Join(t.TempDir(), "absent")}, base...), "is not a readable directory"},
		"missing source":       {[]string{"check", "--dir", ex, "--destination", "bookstore/bookstore", "--port", "1"}, "--source is required"},
		"missing destination":  {[]string{"check", "--dir", ex, "--source", "bookstore/bookstore", "--port", "1"}, "--destination is required"},
		"tcp without port":     {append([]string{"check", "--dir", ex}, base...), "--port is required"},
		"unknown prefix":       {[]string{"check", "--dir", ex, "--source", "xx:bookstore/bookstore", "--destination", "bookstore/bookstore", "--port", "1"}, `unknown prefix "xx:"`},
		"principal not a name": {[]string{"check", "--dir", ex, "--source", "spiffe://cluster.local/ns/a/sa/b", "--destination", "a/b", "--port", "1"}, `unknown prefix "spiffe:"`},
		"not ns/name":          {[]string{"check", "--dir", ex, "--source", "bookbuyer", "--destination", "a/b", "--port", "1"}, "want NS/NAME"},
		"bad output":           {append([]string{"check", "--dir", ex, "--port", "1", "-o", "yaml"}, base...), `--output "yaml" is invalid`},
		"bad header":           {append([]string{"check", "--dir", ex, "--path", "/", "--header", "novalue"}, base...), "want NAME=VALUE"},
		"header without http":  {append([]string{"check", "--dir", ex, "--port", "1", "--header", "a=b"}, base...), "--header needs an HTTP request"},
		"relative path":        {append([]string{"check", "--dir", ex, "--path", "books"}, base...), "starts with /"},
		"bad port":             {append([]string{"check", "--dir", ex, "--port", "70000"}, base...), "--port"},
		"unknown flag":         {append([]string{"check", "--dir", ex, "--port", "1", "--nope"}, base...), "unknown flag"},
		"bad path match":       {append([]string{"check", "--dir", ex, "--port", "1", "--path-match", "sideways"}, base...), "path match"},
		"broken manifest":      {append([]string{"check", "--dir", broken, "--port", "1"}, base...), "bad.yaml:"},
		"broken policy":        {append([]string{"check", "--dir", badRego, "--port", "1"}, base...), "bad.rego:3: rego_unsafe_var_error"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runMain(t, tc.args...)
			if code != cli.ExitUsage {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, cli.ExitUsage, out, errOut)
			}
			if !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q lacks %q", errOut, tc.want)
			}
		})
	}
}
