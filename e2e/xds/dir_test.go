package xds

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/e2e/internal/dataplane"
	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/mesh"
)

// dirSource keeps the objects in the directory of manifests that
// `meshward serve --dir` watches.
type dirSource struct{ dir string }

func (d dirSource) apply(t *testing.T, file, yaml string) { writeFile(t, d.dir, file, yaml) }

// TestFromDirectory runs the scenario without a cluster, as a user does
// with `make demo`: `meshward serve --dir` (the command, in process) on a
// directory of manifests, with the workload certificates it writes into
// --cert-dir and the bootstraps `meshward bootstrap` prints; the pods at
// 127.0.0.2 and 127.0.0.3 as the EndpointSlices say. Every address is a
// free port the system chose.
func TestFromDirectory(t *testing.T) {
	src := dirSource{dir: t.TempDir()}
	w := serveCommand(t, src.dir)
	runScenario(t, w, src)
}

// serveCommand runs `meshward serve --dir dir --xds-flavor grpc` until the
// test ends and returns the world it makes: its xDS server (mTLS with a
// serving certificate from the mesh CA, nodes proving their identity),
// its metrics, and the certificates it writes.
func serveCommand(t *testing.T, dir string) *world {
	t.Helper()
	w := &world{certDir: t.TempDir()}
	w.port, w.pods = dataplane.ListenPods(t, "127.0.0.2", "127.0.0.3")
	w.p = scenarioParams(w.port)

	logs := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{
			"serve", "--dir", dir, "--cert-dir", w.certDir, "--xds-flavor", "grpc",
			"--xds-address", "127.0.0.1:0", "--ext-authz-address", "127.0.0.1:0", "--nginx-auth-address", "127.0.0.1:0",
			"--metrics-bind-address", "127.0.0.1:0", "--debounce", "20ms", "--log-format", "json",
		}, io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != cli.ExitOK {
				t.Errorf("meshward serve exited %d; logs:\n%s", code, logs.String())
			}
		case <-time.After(wait):
			t.Errorf("meshward serve did not stop within %s of its context ending", wait)
		}
		if t.Failed() {
			t.Logf("meshward serve logs:\n%s", logs.String())
		}
	})
	var metricsAddr string
	dataplane.Eventually(t, wait, "meshward serve listens", func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("meshward serve exited %d; logs:\n%s", code, logs.String())
		default:
		}
		for _, l := range logs.Lines() {
			switch l.Msg {
			case "xDS server listening (mTLS)":
				w.xdsAddr = l.Address
			case "metrics endpoint listening":
				metricsAddr = l.Address
			}
		}
		if w.xdsAddr == "" || metricsAddr == "" {
			return fmt.Errorf("xDS server at %q, metrics at %q", w.xdsAddr, metricsAddr)
		}
		return nil
	})
	bundle, err := os.ReadFile(filepath.Join(w.certDir, "ca", "ca.crt"))
	if err != nil {
		t.Fatalf("the mesh CA in --cert-dir: %v", err)
	}
	w.bundle = bundle
	w.bootFrom = func(t *testing.T, id mesh.Identity, certDir string) []byte {
		t.Helper()
		dataplane.Eventually(t, wait, "meshward serve writes the certificate files of "+id.String(), func() error {
			for _, f := range []string{certs.CertFile, certs.KeyFile, certs.CAFile} {
				if _, err := os.Stat(filepath.Join(certs.IdentityDir(certDir, id), f)); err != nil {
					return err
				}
			}
			return nil
		})
		var out, errOut bytes.Buffer
		if code := cli.Run(context.Background(), []string{
			"bootstrap", "--format", "grpc", "--identity", id.String(), "--xds-address", w.xdsAddr, "--cert-dir", certDir,
		}, &out, &errOut); code != cli.ExitOK {
			t.Fatalf("meshward bootstrap exited %d: %s", code, errOut.String())
		}
		return out.Bytes()
	}
	w.counter = func(t *testing.T, name string, want map[string]string) float64 {
		t.Helper()
		return scrape(t, "http://"+metricsAddr+"/metrics", name, want)
	}
	return w
}

// sample is a line of the Prometheus text format: name{labels} value.
var (
	sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	label  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape sums the samples of metric name whose labels include want, read
// from a /metrics endpoint.
func scrape(t *testing.T, url, name string, want map[string]string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
samples:
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		for k, v := range want {
			if labels[k] != v {
				continue samples
			}
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("%s: %q is not a sample value", url, m[3])
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return sum
}
