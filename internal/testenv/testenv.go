// Package testenv starts a real Kubernetes API server (kube-apiserver and
// etcd, through controller-runtime's envtest) with meshward's CRDs
// installed, for integration tests.
//
// The binaries are provided by `make envtest` (run by `make test`) in the
// repository's bin/ directory; KUBEBUILDER_ASSETS overrides the location.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshward/meshward/snapshot"
)

// Env is a running API server.
type Env struct {
	Config *rest.Config
	Client client.Client
	// KubeConfig is a kubeconfig file's content for the API server.
	KubeConfig []byte
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// AssetsDir returns where kube-apiserver and etcd are, or an error saying
// how to get them.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `make envtest` (or `make test`) to build and install the test API server", name, dir)
		}
	}
	return dir, nil
}

// Start starts an API server with the chart's CRDs installed and stops it
// when the test ends. It fails the test when the binaries are missing.
func Start(t testing.TB) *Env {
	t.Helper()
	assets, err := AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "charts", "meshward", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the test API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping the test API server: %v", err)
		}
	})
	scheme := snapshot.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Config: cfg, Client: c, KubeConfig: env.KubeConfig}
}

// Eventually calls check until it returns nil, failing the test with the
// last error after timeout. Timeouts are generous: they bound a wait, they
// do not measure speed.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
