package xds

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshward/meshward/e2e/internal/dataplane"
)

// client is a proxyless gRPC client of one identity.
type client struct {
	name string
	conn *grpc.ClientConn
	test testgrpc.TestServiceClient
}

// newClient dials target (xds:///...) with the identity's bootstrap, over
// xDS credentials (mTLS as the clusters say).
func newClient(t *testing.T, name string, boot []byte, target string) *client {
	t.Helper()
	opts, err := dataplane.ClientOptions(boot)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	conn := dataplane.Dial(t, target, opts...)
	return &client{name: name, conn: conn, test: testgrpc.NewTestServiceClient(conn)}
}

// call makes one call and returns the pod that served it.
func (c *client) call(ctx context.Context, md ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	resp, err := c.test.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
	if err != nil {
		return "", err
	}
	return resp.GetServerId(), nil
}

// count makes n calls and counts them by serving pod; it fails the test
// on the first failed call.
func (c *client) count(t *testing.T, n int, md ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		pod, err := c.call(context.Background(), md...)
		if err != nil {
			t.Fatalf("%s: call %d of %d failed: %v", c.name, i+1, n, err)
		}
		got[pod]++
	}
	return got
}

// wantCode checks that err is a gRPC status with the code.
func wantCode(err error, code codes.Code) error {
	if err == nil {
		return fmt.Errorf("call succeeded, want %s", code)
	}
	if s, ok := status.FromError(err); !ok || s.Code() != code {
		return fmt.Errorf("call failed with %w, want %s", err, code)
	}
	return nil
}
