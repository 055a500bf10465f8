package ocirouting

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshward/meshward/adapters/files"
	meshtranslate "github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/e2e/internal/dataplane"
	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// wait bounds every wait for the system to converge. It is a failure
// bound, not a timing assertion.
const wait = 30 * time.Second

var (
	catalogV1 = mesh.Identity{Namespace: namespace, Name: "catalog-v1"}
	catalogV2 = mesh.Identity{Namespace: namespace, Name: "catalog-v2"}
	clientID  = mesh.Identity{Namespace: namespace, Name: "client"}
)

// world is meshward serving the manifests of a directory over xDS, with
// the certificates of every identity.
type world struct {
	dir     string
	xds     *dataplane.XDS
	certDir string
}

// newWorld writes certificates for every identity with the built-in CA and
// starts the xDS server as `meshward serve --xds-flavor grpc` does: the
// gRPC flavor with RBAC, behind TLS that requires a workload certificate
// proving the node's identity.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: t.TempDir()}
	var bundle []byte
	w.certDir, bundle = dataplane.MeshCerts(t, catalogV1, catalogV2, clientID)
	w.xds = dataplane.StartXDS(t, bundle, dataplane.XDSOptions{})
	return w
}

// apply writes the manifests into the directory, loads it as `meshward
// serve --dir` does (adapters/files, then the model), checks the model has
// no findings, and publishes it to the xDS server.
func (w *world) apply(t *testing.T, p params) {
	t.Helper()
	m := manifests(p)
	for _, name := range manifestFiles {
		if err := os.WriteFile(filepath.Join(w.dir, name+".yaml"), []byte(m[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := files.Load(w.dir, snapshot.NewDecoder())
	if err != nil {
		t.Fatalf("loading %s: %v", w.dir, err)
	}
	model := meshtranslate.Build(res.Snapshot, mesh.DefaultOptions())
	if len(model.Findings) != 0 {
		var b strings.Builder
		for _, f := range model.Findings {
			fmt.Fprintf(&b, "\n  %+v", f)
		}
		t.Fatalf("the model has findings:%s", b.String())
	}
	if err := w.xds.Server.Update(model); err != nil {
		t.Fatalf("publishing the model: %v", err)
	}
}

// boot returns an identity's gRPC bootstrap as `meshward bootstrap
// --format grpc` prints it: mTLS to the xDS server and, through a
// file_watcher certificate provider, to the mesh.
func (w *world) boot(t *testing.T, id mesh.Identity) []byte {
	t.Helper()
	return w.xds.Bootstrap(t, "ocirouting", id, w.certDir)
}

// client is a proxyless gRPC client of one identity dialling one target.
type client struct {
	conn *grpc.ClientConn
}

// newClient dials target (xds:///...) with the bootstrap, over xDS
// credentials (mTLS as the clusters say).
func newClient(t *testing.T, boot []byte, target string) *client {
	t.Helper()
	opts, err := dataplane.ClientOptions(boot)
	if err != nil {
		t.Fatal(err)
	}
	return &client{conn: dataplane.Dial(t, target, opts...)}
}

// call calls method (a gRPC path, /package.Service/Method), asking the
// server to take sleep before it answers, and returns the pod that
// answered. The call's own deadline is 10 s: longer than any sleep.
func (c *client) call(method string, sleep time.Duration) (string, error) {
	return dataplane.Invoke(c.conn, method, sleep)
}

// count makes n calls of method and counts them by the pod that answered,
// and the failed ones by code.
func (c *client) count(method string, n int) (map[string]int, map[codes.Code]int, error) {
	pods, failed := map[string]int{}, map[codes.Code]int{}
	var last error
	for range n {
		pod, err := c.call(method, 0)
		if err != nil {
			failed[status.Code(err)]++
			last = err
			continue
		}
		pods[pod]++
	}
	return pods, failed, last
}
