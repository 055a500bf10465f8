package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Nginx is a real nginx (Debian's package) running on loopback.
type Nginx struct {
	// Addr is host:port of the server block.
	Addr string
	dir  string
}

// NginxBinary finds nginx: bin/nginx (linked by `make test`), $PATH, then
// /usr/sbin/nginx.
func NginxBinary() (string, error) {
	if root, err := RepoRoot(); err == nil {
		if p := filepath.Join(root, "bin", "nginx"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if fileExists("/usr/sbin/nginx") {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx not found: run `make test` (it installs Debian's nginx) or install it")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartNginx runs nginx in the foreground with one server block listening
// on a free loopback port; server is the body of that block. nginx stops
// when the test ends, and its error log is attached to the test on failure.
func StartNginx(t testing.TB, server string) *Nginx {
	t.Helper()
	bin, err := NginxBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	n := &Nginx{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
%[3]s
	}
}
`, dir, n.Addr, server)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		// nginx is killed, so it always exits with an error: only the
		// logs matter, and only when the test failed.
		if err := <-exited; err != nil && t.Failed() {
			t.Logf("nginx exited: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("nginx error log:\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", n.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s\n%s", n.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
