package dataplane

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ListenPods listens on the same free port at every address, as pods of
// one Deployment do on their own pod IPs.
func ListenPods(t testing.TB, addrs ...string) (int, []net.Listener) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lis := []net.Listener{first}
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lis = append(lis, l)
		}
		if len(lis) == len(addrs) {
			return port, lis
		}
		for _, l := range lis {
			l.Close()
		}
	}
	t.Fatalf("no free port common to %v", addrs)
	return 0, nil
}

// testService answers UnaryCall with the name of the pod that served it.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	pod string
}

func (s *testService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: s.pod, Hostname: s.pod}, nil
}

// answer serves every method but grpc.testing.TestService's: it reads the
// request as an Int64Value, sleeps that many milliseconds (an empty
// message, such as an Empty, sleeps none), and answers the pod's name in
// a StringValue.
func answer(pod string) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		var sleep wrapperspb.Int64Value
		if err := stream.RecvMsg(&sleep); err != nil {
			return err
		}
		if d := time.Duration(sleep.GetValue()) * time.Millisecond; d > 0 {
			select {
			case <-time.After(d):
			case <-stream.Context().Done():
				return status.FromContextError(stream.Context().Err()).Err()
			}
		}
		return stream.SendMsg(wrapperspb.String(pod))
	}
}

// StartPod serves pod name on lis until the test ends: an xDS-enabled
// gRPC server with the bootstrap boot, which serves only once the xDS
// server gave it the listener for its address, and with mTLS and RBAC as
// that listener says. It returns once the pod serves, or an error when it
// cannot start or does not serve within wait. It may be called from any
// goroutine.
//
// The pod answers with its name: grpc.testing.TestService's UnaryCall in
// the response's ServerId and Hostname, and every other method as Invoke
// expects, after sleeping as long as the request says.
func StartPod(t testing.TB, name string, boot []byte, lis net.Listener, wait time.Duration) error {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(boot),
		grpc.UnknownServiceHandler(answer(name)),
		xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			t.Logf("pod %s at %s: serving mode %s (%v)", name, addr, args.Mode, args.Err)
			if args.Mode == connectivity.ServingModeServing {
				once.Do(func() { close(serving) })
			}
		}))
	if err != nil {
		return err
	}
	testgrpc.RegisterTestServiceServer(srv, &testService{pod: name})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			t.Logf("pod %s stopped: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	select {
	case <-serving:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("pod %s at %s never got its listener from the xDS server", name, lis.Addr())
	}
}

// ClientOptions returns the dial options of a proxyless gRPC client with
// the bootstrap boot: an xDS resolver of its own (connections dialled
// with the same options share its xDS client) and xDS credentials (mTLS
// as the clusters say).
func ClientOptions(boot []byte) ([]grpc.DialOption, error) {
	rb, err := xds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		return nil, fmt.Errorf("the bootstrap is not accepted: %w", err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return []grpc.DialOption{grpc.WithResolvers(rb), grpc.WithTransportCredentials(creds)}, nil
}

// Dial dials target (xds:///... with ClientOptions) and closes the
// connection when the test ends.
func Dial(t testing.TB, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Invoke calls method (a gRPC path, /package.Service/Method) with the
// metadata md (key, value, ...), asking the pod to sleep before it
// answers, and returns the pod that answered. The call's deadline is
// 10 s.
func Invoke(conn *grpc.ClientConn, method string, sleep time.Duration, md ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var resp wrapperspb.StringValue
	if err := conn.Invoke(ctx, method, wrapperspb.Int64(sleep.Milliseconds()), &resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

// Eventually calls check until it returns nil; wait bounds the wait, it
// does not measure anything.
func Eventually(t testing.TB, wait time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, wait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
