package policy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
)

// syncBuffer collects a command's logs, safe for its writer and a reader.
type syncBuffer struct{ testenv.SyncBuffer }

// count returns how many log lines have the message msg.
func (s *syncBuffer) count(msg string) int {
	n := 0
	for _, l := range s.Lines() {
		if l.Msg == msg {
			n++
		}
	}
	return n
}

// meshward is a running `meshward serve --dir` with its ext_authz server
// and nginx auth endpoint on loopback.
type meshward struct {
	dir string
	// grpcAddr and nginxAddr are where the two decision servers listen.
	grpcAddr, nginxAddr string
	logs                *syncBuffer
	authz               authv3.AuthorizationClient
}

// serve runs `meshward serve` on dir with flags added, as a user would,
// and returns once both decision servers listen and the first model is in
// force. It stops when the test ends.
func serve(t *testing.T, dir string, flags ...string) *meshward {
	t.Helper()
	m := &meshward{dir: dir, logs: &syncBuffer{}}
	// Only the decision servers: no xDS server, and certificates (if
	// any are written) in a directory of the test's own.
	args := append([]string{
		"serve", "--dir", dir, "--debounce", "20ms", "--log-format", "json",
		"--ext-authz-address", "127.0.0.1:0", "--nginx-auth-address", "127.0.0.1:0",
		"--xds-address", "0", "--cert-dir", t.TempDir(),
	}, flags...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, args, io.Discard, m.logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != cli.ExitOK {
			t.Errorf("meshward serve exited %d; logs:\n%s", code, m.logs.String())
		}
	})
	m.waitFor(t, "the decision servers and the first model", func() bool {
		for _, l := range m.logs.Lines() {
			switch l.Msg {
			case "ext_authz server listening":
				m.grpcAddr = l.Address
			case "nginx auth endpoint listening":
				m.nginxAddr = l.Address
			}
		}
		return m.grpcAddr != "" && m.nginxAddr != "" && m.logs.count("mesh model built") > 0
	}, done)
	conn, err := grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m.authz = authv3.NewAuthorizationClient(conn)
	return m
}

// waitFor polls cond until it holds, failing the test after a generous
// timeout (it bounds a wait; it does not measure speed) or when serve
// exits early.
func (m *meshward) waitFor(t *testing.T, what string, cond func() bool, exited ...chan int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		for _, ch := range exited {
			select {
			case code := <-ch:
				ch <- code
				t.Fatalf("meshward serve exited %d while waiting for %s; logs:\n%s", code, what, m.logs.String())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, m.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exampleDir is examples/bookstore.
func exampleDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples", "bookstore")
}

// copyExample copies examples/bookstore into a temporary directory, with
// extra files (name -> content) added.
func copyExample(t *testing.T, extra map[string]string) string {
	t.Helper()
	src := exampleDir(t)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, e.Name(), string(b))
	}
	for name, content := range extra {
		writeFile(t, dst, name, content)
	}
	return dst
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// principal is the SPIFFE principal of "ns/sa" in the default trust domain.
func principal(identity string) string {
	ns, sa, _ := strings.Cut(identity, "/")
	return fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa)
}

// httpClient talks to the auth endpoint and nginx: no proxy from the
// environment, no redirects, bounded waits.
var httpClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
	Timeout:   10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// answer is a response of the auth endpoint or of nginx.
type answer struct {
	code   int
	reason string
	body   string
	header http.Header
}

// do sends req and reads the whole answer.
func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return answer{code: resp.StatusCode, reason: resp.Header.Get("X-Meshward-Reason"), body: string(b), header: resp.Header}
}

func newRequest(t *testing.T, method, url string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No User-Agent unless the test gives one: the original request's
	// headers are the only ones that count.
	req.Header.Set("User-Agent", "")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}
