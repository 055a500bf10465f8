// Command workload is the demo's proxyless gRPC application: a bookstore
// pod (an xDS-enabled gRPC server) or a client calling a service through
// gRPC's xds:/// resolver. Both read their gRPC xDS bootstrap, which
// `meshward bootstrap --format grpc` prints, from $GRPC_XDS_BOOTSTRAP, and
// use mTLS as meshward's xDS resources say.
//
//	workload serve --name bookstore-v1-0 --address 127.0.0.2:14001
//	workload call --target xds:///bookstore.bookstore.svc.cluster.local:14001 --count 1000
//
// See examples/bookstore-grpc/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

// run runs a subcommand until it ends or the process is interrupted.
func run(cmd string, args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		return serve(ctx, args)
	case "call":
		return call(ctx, args)
	}
	usage()
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: workload serve --name NAME --address IP:PORT\n       workload call --target xds:///HOST:PORT [--count N] [--header NAME=VALUE]")
	os.Exit(2)
}

// bookstore answers every call with the name of its pod.
type bookstore struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (b *bookstore) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: b.name, Hostname: b.name}, nil
}

// serve runs an xDS-enabled gRPC server at the pod's address until ctx is
// done. It serves once meshward sent the listener for that address, with
// mTLS and the RBAC policies compiled from the TrafficTargets.
func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "", "pod name, returned to every caller")
	addr := fs.String("address", "", "the pod's address as its EndpointSlice lists it, IP:PORT")
	_ = fs.Parse(args)
	if *name == "" || *addr == "" {
		usage()
	}
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.ServingModeCallback(func(a net.Addr, args xds.ServingModeChangeArgs) {
		msg := fmt.Sprintf("%s at %s: %s", *name, a, args.Mode)
		if args.Mode != connectivity.ServingModeServing && args.Err != nil {
			msg += fmt.Sprintf(" (%v)", args.Err)
		}
		fmt.Fprintln(os.Stderr, msg)
	}))
	if err != nil {
		return err
	}
	testgrpc.RegisterTestServiceServer(srv, &bookstore{name: *name})
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	return srv.Serve(lis)
}

// call dials the target through meshward's xDS and makes count calls (or
// calls until interrupted), printing how many each pod answered and why
// calls failed.
func call(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	target := fs.String("target", "xds:///bookstore.bookstore.svc.cluster.local:14001", "service to call")
	count := fs.Int("count", 1000, "number of calls; 0 calls until interrupted, printing a tally every second")
	header := fs.String("header", "", "request header NAME=VALUE sent with every call, e.g. x-canary=true")
	_ = fs.Parse(args)
	var md []string
	if *header != "" {
		k, v, ok := strings.Cut(*header, "=")
		if !ok {
			usage()
		}
		md = []string{k, v}
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	tally := map[string]int{}
	last := time.Now()
	for i := 0; *count == 0 || i < *count; i++ {
		if ctx.Err() != nil {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if len(md) > 0 {
			cctx = metadata.AppendToOutgoingContext(cctx, md...)
		}
		resp, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{FillServerId: true})
		cancel()
		switch {
		case err == nil:
			tally[resp.GetServerId()]++
		case errors.Is(ctx.Err(), context.Canceled):
		default:
			tally["failed: "+status.Code(err).String()+": "+status.Convert(err).Message()]++
		}
		if *count == 0 && time.Since(last) >= time.Second {
			printTally(tally)
			clear(tally)
			last = time.Now()
		}
	}
	printTally(tally)
	return nil
}

// printTally writes a tally of answers, largest first.
func printTally(tally map[string]int) {
	total := 0
	keys := make([]string, 0, len(tally))
	for k, n := range tally {
		keys = append(keys, k)
		total += n
	}
	slices.SortFunc(keys, func(a, b string) int { return tally[b] - tally[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d (%.1f%%)", k, tally[k], 100*float64(tally[k])/float64(total)))
	}
	fmt.Printf("%d calls: %s\n", total, strings.Join(parts, ", "))
}
