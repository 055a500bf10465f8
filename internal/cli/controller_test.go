package cli_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/internal/cli"
	"github.com/meshward/meshward/internal/testenv"
	"github.com/meshward/meshward/snapshot"
)

// applyExample creates every object of examples/bookstore that meshward
// reads in the API server, namespaces first.
func applyExample(t *testing.T, c client.Client) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	res, err := files.Load(filepath.Join(root, "examples", "bookstore"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Snapshot
	var objs []client.Object
	for i := range s.Namespaces {
		objs = append(objs, &s.Namespaces[i])
	}
	for i := range s.ServiceAccounts {
		objs = append(objs, &s.ServiceAccounts[i])
	}
	for i := range s.Services {
		objs = append(objs, &s.Services[i])
	}
	for i := range s.Pods {
		objs = append(objs, &s.Pods[i])
	}
	for i := range s.EndpointSlices {
		objs = append(objs, &s.EndpointSlices[i])
	}
	typed := []runtime.Object{}
	for i := range s.HTTPRouteGroups {
		typed = append(typed, &s.HTTPRouteGroups[i])
	}
	for i := range s.TCPRoutes {
		typed = append(typed, &s.TCPRoutes[i])
	}
	for i := range s.TrafficTargets {
		typed = append(typed, &s.TrafficTargets[i])
	}
	for i := range s.TrafficSplits {
		typed = append(typed, &s.TrafficSplits[i])
	}
	scheme := snapshot.NewScheme()
	for _, o := range typed {
		gvks, _, err := scheme.ObjectKinds(o)
		if err != nil {
			t.Fatal(err)
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvks[0])
		objs = append(objs, u)
	}
	for _, o := range objs {
		o.SetResourceVersion("")
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s %s/%s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

func check(t *testing.T, c authv3.AuthorizationClient, src, dst, path string) (bool, string) {
	t.Helper()
	resp, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/" + src},
		Destination: &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/" + dst},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: path, Headers: map[string]string{"user-agent": "bookbuyer/1.0"},
		}},
	}})
	if err != nil {
		t.Fatalf("ext_authz Check: %v", err)
	}
	return resp.GetStatus().GetCode() == int32(code.Code_OK), resp.GetStatus().GetMessage()
}

// TestControllerServesPoliciesFromTheCluster runs `meshward controller`
// against a real API server: objects and policy ConfigMaps applied there
// decide ext_authz checks; a ConfigMap with Rego that does not compile is
// reported with an Event and the previous policies stay in force.
func TestControllerServesPoliciesFromTheCluster(t *testing.T) {
	env := testenv.Start(t)
	applyExample(t, env.Client)
	// The controller keeps the mesh CA, which signs the xDS server's
	// certificate, in a Secret of its namespace.
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshward-system"}}); err != nil {
		t.Fatal(err)
	}
	ctrl := startController(t, env,
		"--ext-authz-address", "127.0.0.1:0", "--nginx-auth-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:0",
		"--debounce", "20ms", "--signer-address", "0")
	logs := ctrl.logs
	conn, err := grpc.NewClient(ctrl.address(t, "ext_authz server"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	authz := authv3.NewAuthorizationClient(conn)

	buyer, thief, store := "bookbuyer/sa/bookbuyer", "bookthief/sa/bookthief", "bookstore/sa/bookstore"
	testenv.Eventually(t, 30*time.Second, func() error {
		if ok, why := check(t, authz, buyer, store, "/books-bought"); !ok {
			return fmt.Errorf("bookbuyer not allowed yet: %s", why)
		}
		return nil
	})
	if ok, _ := check(t, authz, thief, store, "/books-bought"); ok {
		t.Fatal("bookthief allowed")
	}
	checkControllerXDS(t, env.Client, logs)

	// A policy ConfigMap adds a deny.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bookstore", Name: "extra-policy", Labels: map[string]string{"meshward.io/policy": "true"}},
		Data: map[string]string{"deny.rego": `package meshward.ext

deny contains "books-bought is closed today" if input.meshward.path == "/books-bought"
`},
	}
	if err := env.Client.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if ok, _ := check(t, authz, buyer, store, "/books-bought"); ok {
			return errors.New("the ConfigMap's deny is not in force yet")
		}
		return nil
	})
	if _, why := check(t, authz, buyer, store, "/books-bought"); !strings.Contains(why, "books-bought is closed today") {
		t.Errorf("reason %q does not give the user's deny", why)
	}

	// Garbage: reported on the ConfigMap, decisions unchanged.
	cm.Data = map[string]string{"deny.rego": "package meshward.ext\n\ndeny contains if {{{\n"}
	if err := env.Client.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace("bookstore")); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "ConfigMap" && e.Regarding.Name == "extra-policy" && e.Reason == "InvalidPolicy" {
				if !strings.Contains(e.Note, "data.deny.rego") || !strings.Contains(e.Note, "line ") {
					return fmt.Errorf("event note %q does not name the key and line", e.Note)
				}
				return nil
			}
		}
		return errors.New("no InvalidPolicy Event on ConfigMap bookstore/extra-policy")
	})
	if ok, _ := check(t, authz, buyer, store, "/books-bought"); ok {
		t.Fatal("a ConfigMap that does not compile changed the decisions")
	}
	if ok, _ := check(t, authz, buyer, store, "/buy-a-book/new"); !ok {
		t.Fatal("the previous policies are not in force")
	}
}

// controller is a `meshward controller` running against a test API server.
type controller struct {
	logs *testenv.SyncBuffer
	done chan int
}

// startController runs `meshward controller` against env, in namespace
// meshward-system, with the flags every test needs and extra. It stops
// when the test ends, which fails unless it exits cleanly.
func startController(t *testing.T, env *testenv.Env, extra ...string) *controller {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"controller", "--kubeconfig", kubeconfig, "--instance", "test", "--namespace", "meshward-system",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
	}, extra...)
	c := &controller{logs: &testenv.SyncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { c.done <- cli.Run(ctx, args, &strings.Builder{}, c.logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-c.done; code != cli.ExitOK {
			t.Errorf("controller exited %d; logs:\n%s", code, c.logs.String())
		}
	})
	return c
}

// address waits until the controller logs that server (e.g. "ext_authz
// server") is listening and returns its address. It fails the test if the
// controller exits first.
func (c *controller) address(t *testing.T, server string) string {
	t.Helper()
	listening := regexp.MustCompile(`msg="` + regexp.QuoteMeta(server) + ` listening" address=(\S+)`)
	testenv.Eventually(t, 30*time.Second, func() error {
		select {
		case code := <-c.done:
			c.done <- code
			t.Fatalf("controller exited %d; logs:\n%s", code, c.logs.String())
		default:
		}
		if listening.FindStringSubmatch(c.logs.String()) == nil {
			return fmt.Errorf("%s not listening yet", server)
		}
		return nil
	})
	return listening.FindStringSubmatch(c.logs.String())[1]
}
