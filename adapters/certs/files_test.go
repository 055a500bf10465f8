package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/meshward/meshward/adapters/certs"
	"github.com/meshward/meshward/mesh"
)

// fakeClock is a clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Set moves the clock to t and fires the waiters that are due.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.waiters = slices.DeleteFunc(c.waiters, func(w fakeWaiter) bool {
		if w.at.After(t) {
			return false
		}
		w.ch <- t
		return true
	})
}

// nextWaiter waits until someone waits on the clock and returns when that
// wait ends.
func (c *fakeClock) nextWaiter(t *testing.T) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.waiters) > 0 {
			at := c.waiters[0].at
			c.mu.Unlock()
			return at
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("nobody waits on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func TestWriteIdentityFiles(t *testing.T) {
	ca := newCA(t, certs.Options{Now: fixedClock(t0)})
	dir := t.TempDir()
	id := mesh.Identity{Namespace: "shop", Name: "web.v2"}
	cert, err := certs.WriteIdentityFiles(context.Background(), ca, dir, id, certs.FileOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "shop", "web.v2")
	if got := certs.IdentityDir(dir, id); got != out {
		t.Errorf("IdentityDir %s, want %s", got, out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{certs.CAFile, certs.CertFile, certs.KeyFile}) {
		t.Errorf("files %q, want ca.pem cert.pem key.pem and nothing else", names)
	}
	for name, want := range map[string]os.FileMode{certs.CertFile: 0o644, certs.KeyFile: 0o600, certs.CAFile: 0o644} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, certs.CertFile), filepath.Join(out, certs.KeyFile))
	if err != nil {
		t.Fatalf("cert.pem and key.pem do not pair: %v", err)
	}
	leaf := pair.Leaf
	if leaf.SerialNumber.Text(16) != cert.Serial || !leaf.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Errorf("files hold serial %x until %s; returned %s until %s", leaf.SerialNumber, leaf.NotAfter, cert.Serial, cert.NotAfter)
	}
	if got := spiffeID(t, leaf).String(); got != "spiffe://cluster.local/ns/shop/sa/web.v2" {
		t.Errorf("URI SAN %s", got)
	}
	caPEM, err := os.ReadFile(filepath.Join(out, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, caPEM), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(out, certs.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Error("key.pem is not PEM PKCS#8")
	}

	// An identity that is not a ServiceAccount name never becomes a path.
	_, err = certs.WriteIdentityFiles(context.Background(), ca, dir, mesh.Identity{Namespace: "..", Name: ".."}, certs.FileOptions{})
	if !errors.Is(err, certs.ErrInvalidIdentity) {
		t.Errorf("identity ../..: %v, want ErrInvalidIdentity", err)
	}
}

// flakyIssuer fails the calls whose numbers (from 1) are in fail.
type flakyIssuer struct {
	certs.Issuer
	calls atomic.Int32
	fail  []int32
}

func (f *flakyIssuer) Issue(ctx context.Context, req certs.Request) (*certs.Certificate, error) {
	if slices.Contains(f.fail, f.calls.Add(1)) {
		return nil, errors.New("issuer unavailable")
	}
	return f.Issuer.Issue(ctx, req)
}

type keepFresh struct {
	clock   *fakeClock
	dir     string
	written chan *certs.Certificate
	done    chan error
	cancel  context.CancelFunc
}

func startKeepFresh(t *testing.T, issuer certs.Issuer, clock *fakeClock, id mesh.Identity, ttl time.Duration) *keepFresh {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &keepFresh{clock: clock, dir: t.TempDir(), written: make(chan *certs.Certificate, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		k.done <- certs.KeepFresh(ctx, issuer, k.dir, id, certs.FileOptions{
			TTL:           ttl,
			Now:           clock.Now,
			After:         clock.After,
			RetryInterval: time.Minute,
			Log:           testr.New(t),
			OnWrite:       func(c *certs.Certificate) { k.written <- c },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-k.done; err != nil {
			t.Errorf("KeepFresh: %v", err)
		}
	})
	return k
}

func (k *keepFresh) next(t *testing.T) *certs.Certificate {
	t.Helper()
	select {
	case c := <-k.written:
		return c
	case err := <-k.done:
		t.Fatalf("KeepFresh returned %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no files written")
	}
	return nil
}

func TestKeepFreshRenewsAtTwoThirds(t *testing.T) {
	clock := &fakeClock{now: t0}
	ca := newCA(t, certs.Options{Now: clock.Now})
	id := mesh.Identity{Namespace: "shop", Name: "web"}
	k := startKeepFresh(t, ca, clock, id, 3*time.Hour)
	first := k.next(t)
	certPath := filepath.Join(certs.IdentityDir(k.dir, id), certs.CertFile)
	before, err := os.Stat(certPath)
	if err != nil {
		t.Fatal(err)
	}

	if at := clock.nextWaiter(t); !at.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("renewal scheduled at %s, want two thirds of 3h after %s", at, t0)
	}
	clock.Set(t0.Add(2*time.Hour - time.Second))
	if clock.pending() != 1 || len(k.written) != 0 {
		t.Fatal("renewed early")
	}
	clock.Set(t0.Add(2 * time.Hour))
	second := k.next(t)
	if second.Serial == first.Serial || !second.NotAfter.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("renewed certificate: serial %s (first %s), NotAfter %s", second.Serial, first.Serial, second.NotAfter)
	}
	after, err := os.Stat(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("cert.pem was rewritten in place, not replaced by a rename")
	}
	pair, err := tls.LoadX509KeyPair(certPath, filepath.Join(certs.IdentityDir(k.dir, id), certs.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf.SerialNumber.Text(16) != second.Serial {
		t.Error("cert.pem does not hold the renewed certificate")
	}
	if at := clock.nextWaiter(t); !at.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("second renewal at %s, want %s", at, t0.Add(4*time.Hour))
	}
}

// TestKeepFreshReplacesAtomically renews many times while readers read the
// files: every read sees a whole file, and no temporary file is left.
func TestKeepFreshReplacesAtomically(t *testing.T) {
	clock := &fakeClock{now: t0}
	ca := newCA(t, certs.Options{Now: clock.Now})
	id := mesh.Identity{Namespace: "shop", Name: "web"}
	k := startKeepFresh(t, ca, clock, id, time.Hour)
	k.next(t)
	out := certs.IdentityDir(k.dir, id)

	stop := make(chan struct{})
	var reads, pairs atomic.Int64
	var wg sync.WaitGroup
	for _, name := range []string{certs.CertFile, certs.KeyFile, certs.CAFile} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil {
					t.Errorf("reading %s: %v", name, err)
					return
				}
				if block, rest := pem.Decode(b); block == nil || len(bytes.TrimSpace(rest)) > 0 {
					t.Errorf("%s was read half written: %q", name, b)
					return
				}
				reads.Add(1)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			// A pair may mismatch for a moment (gRPC retries then); it
			// must never fail to parse.
			if _, err := tls.LoadX509KeyPair(filepath.Join(out, certs.CertFile), filepath.Join(out, certs.KeyFile)); err == nil {
				pairs.Add(1)
			}
		}
	})
	serials := map[string]bool{}
	for range 20 {
		clock.Set(clock.nextWaiter(t))
		serials[k.next(t).Serial] = true
	}
	close(stop)
	wg.Wait()
	if len(serials) != 20 {
		t.Errorf("%d distinct serials over 20 renewals", len(serials))
	}
	if reads.Load() == 0 || pairs.Load() == 0 {
		t.Errorf("readers made %d reads and %d matching pairs", reads.Load(), pairs.Load())
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("%d entries left in %s, want the 3 files", len(entries), out)
	}
}

func TestKeepFreshRetriesFailures(t *testing.T) {
	clock := &fakeClock{now: t0}
	issuer := &flakyIssuer{Issuer: newCA(t, certs.Options{Now: clock.Now}), fail: []int32{2, 3}}
	k := startKeepFresh(t, issuer, clock, mesh.Identity{Namespace: "shop", Name: "web"}, 3*time.Hour)
	first := k.next(t)

	renewal := t0.Add(2 * time.Hour)
	clock.Set(clock.nextWaiter(t))
	if at := clock.nextWaiter(t); !at.Equal(renewal.Add(time.Minute)) {
		t.Fatalf("after a failure, next try at %s, want one retry interval later", at)
	}
	clock.Set(renewal.Add(time.Minute))
	if at := clock.nextWaiter(t); !at.Equal(renewal.Add(2 * time.Minute)) {
		t.Fatalf("after a second failure, next try at %s", at)
	}
	clock.Set(renewal.Add(2 * time.Minute))
	second := k.next(t)
	if second.Serial == first.Serial {
		t.Error("no new certificate after the issuer recovered")
	}
}

func TestKeepFreshFailsWhenFirstIssueFails(t *testing.T) {
	issuer := &flakyIssuer{Issuer: newCA(t, certs.Options{}), fail: []int32{1}}
	err := certs.KeepFresh(context.Background(), issuer, t.TempDir(), mesh.Identity{Namespace: "shop", Name: "web"}, certs.FileOptions{})
	if err == nil {
		t.Fatal("KeepFresh succeeded without a certificate")
	}
}
