package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
)

// wait is how long a test waits for something that must happen. Reaching
// it is a failure, not a timing measurement: it is generous for slow CI.
const wait = 10 * time.Second

// quiet is how long a test watches for something that must not happen.
const quiet = 500 * time.Millisecond

func splitYAML(weight int) string {
	return fmt.Sprintf(`apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: bookstore-split
  namespace: bookstore
spec:
  service: bookstore
  backends:
    - service: bookstore-v1
      weight: %d
    - service: bookstore-v2
      weight: %d
`, weight, 100-weight)
}

// running is a Watcher started by start.
type running struct {
	w       *Watcher
	results chan *Result
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// start runs a watcher of dir until the test ends.
func start(t *testing.T, dir string, log logr.Logger) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		w:       NewWatcher(dir, nil, WatchOptions{Debounce: 50 * time.Millisecond, Log: log}),
		results: make(chan *Result, 100),
		cancel:  cancel,
		done:    make(chan error, 1),
	}
	go func() {
		r.done <- r.w.Run(ctx, func(res *Result) {
			select {
			case r.results <- res:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the watcher and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if r.stopped {
		return
	}
	select {
	case err := <-r.done:
		r.stopped = true
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// next waits for a published Result that satisfies ok, skipping others.
func (r *running) next(t *testing.T, what string, ok func(*Result) bool) *Result {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case res := <-r.results:
			if ok(res) {
				return res
			}
		case <-timeout:
			t.Fatalf("no Result with %s within %v; last error: %v", what, wait, r.w.LastError())
		}
	}
}

// none checks that nothing is published for a while.
func (r *running) none(t *testing.T, why string) {
	t.Helper()
	select {
	case res := <-r.results:
		t.Fatalf("a Result was published %s: %d objects", why, res.Snapshot.Len())
	case <-time.After(quiet):
	}
}

// lastError waits until LastError satisfies ok.
func (r *running) lastError(t *testing.T, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := r.w.LastError()
		if ok(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("LastError is %v after %v, want %s", err, wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func weightOf(res *Result, split string) int {
	for _, ts := range res.Snapshot.TrafficSplits {
		if ts.Name == split && len(ts.Spec.Backends) > 0 {
			return ts.Spec.Backends[0].Weight
		}
	}
	return -1
}

func weightIs(w int) func(*Result) bool {
	return func(res *Result) bool { return weightOf(res, "bookstore-split") == w }
}

// logSink records the error logs of a watcher.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger(t *testing.T) logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, args)
		t.Log(prefix, args)
	}, funcr.Options{Verbosity: 1})
}

func (s *logSink) find(substr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"split.yaml":   splitYAML(90),
		"account.yaml": goodSA,
	})
	var logs logSink
	r := start(t, dir, logs.logger(t))

	first := r.next(t, "the first load", func(*Result) bool { return true })
	if weightOf(first, "bookstore-split") != 90 || first.Snapshot.Len() != 2 || first.Files != 2 {
		t.Fatalf("first Result: weight %d, %d objects, %d files", weightOf(first, "bookstore-split"), first.Snapshot.Len(), first.Files)
	}
	if r.w.LastError() != nil {
		t.Errorf("LastError = %v after a good load", r.w.LastError())
	}

	t.Run("edit", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(80)})
		r.next(t, "weight 80", weightIs(80))
	})

	t.Run("broken file publishes nothing", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"broken.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: [x}\n"})
		r.lastError(t, "naming broken.yaml:3", func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "broken.yaml:3: ")
		})
		err := r.w.LastError()
		r.none(t, "after a failed load")
		if got := logs.find("manifests not loaded; keeping the last good configuration"); !strings.Contains(got, "broken.yaml:3") {
			t.Errorf("error log %q does not name broken.yaml:3", got)
		}
		// The model is not changed by an edit while broken.
		writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(70)})
		r.lastError(t, "the same error after another change", func(e error) bool { return e != nil && e.Error() == err.Error() })
		r.none(t, "while a file is broken")

		writeFiles(t, dir, map[string]string{"broken.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: fixed}\n"})
		res := r.next(t, "the fixed file", func(res *Result) bool { return res.Snapshot.Len() == 3 })
		if weightOf(res, "bookstore-split") != 70 {
			t.Errorf("weight %d after the fix, want 70", weightOf(res, "bookstore-split"))
		}
		if err := r.w.LastError(); err != nil {
			t.Errorf("LastError = %v after the fix", err)
		}
	})

	t.Run("new subdirectory", func(t *testing.T) {
		sub := filepath.Join(dir, "team", "routes")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		// The file is written at once, possibly before the watcher sees
		// the directory: the reload reads the whole tree anyway.
		writeFiles(t, dir, map[string]string{"team/routes/sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: team}\n"})
		res := r.next(t, "the new file", func(res *Result) bool { return len(res.Snapshot.ServiceAccounts) == 2 })
		if p := res.Positions[ref("ServiceAccount", "default", "team")]; p.String() != "team/routes/sa.yaml:1" {
			t.Errorf("position %v", p)
		}
		// A later edit in the new directory is seen too.
		writeFiles(t, dir, map[string]string{"team/routes/sa2.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: team2}\n"})
		r.next(t, "a second file in the new directory", func(res *Result) bool { return len(res.Snapshot.ServiceAccounts) == 3 })
	})

	t.Run("editor save by rename", func(t *testing.T) {
		tmp := filepath.Join(dir, ".split.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(splitYAML(33)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "split.yaml")); err != nil {
			t.Fatal(err)
		}
		r.next(t, "weight 33", weightIs(33))
	})

	t.Run("removed file", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(dir, "team")); err != nil {
			t.Fatal(err)
		}
		r.next(t, "the team accounts gone", func(res *Result) bool { return len(res.Snapshot.ServiceAccounts) == 1 })
	})

	t.Run("unchanged content publishes nothing", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(33), "notes.txt": "hello"})
		now := time.Now()
		if err := os.Chtimes(filepath.Join(dir, "account.yaml"), now, now); err != nil {
			t.Fatal(err)
		}
		r.none(t, "for a change that changes no manifest")
	})

	t.Run("bursts are coalesced", func(t *testing.T) {
		const writes = 30
		for i := 1; i <= writes; i++ {
			writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(i)})
		}
		published := 0
		timeout := time.After(wait)
		for done := false; !done; {
			select {
			case res := <-r.results:
				published++
				done = weightOf(res, "bookstore-split") == writes
			case <-timeout:
				t.Fatalf("the last write was not published within %v", wait)
			}
		}
		if published >= writes {
			t.Errorf("%d writes gave %d publishes; want them coalesced", writes, published)
		}
		t.Logf("%d writes gave %d publishes", writes, published)
	})
}

func TestWatcherConfigMapUpdate(t *testing.T) {
	// The way the kubelet updates a mounted ConfigMap: the files are links
	// through ..data, which is swapped atomically to a new hidden
	// directory.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"..v1/split.yaml": splitYAML(60)})
	for _, l := range [][2]string{{"..v1", "..data"}, {"..data/split.yaml", "split.yaml"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, dir, testr.NewWithOptions(t, testr.Options{Verbosity: 1}))
	r.next(t, "weight 60", weightIs(60))

	writeFiles(t, dir, map[string]string{"..v2/split.yaml": splitYAML(40)})
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	r.next(t, "weight 40", weightIs(40))
}

func TestWatcherFirstLoadBroken(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"split.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: [\n"})
	r := start(t, dir, testr.New(t))
	r.lastError(t, "naming split.yaml:4", func(err error) bool { return err != nil && strings.Contains(err.Error(), "split.yaml:4: ") })
	r.none(t, "for a broken directory")
	writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(5)})
	r.next(t, "weight 5", weightIs(5))
}

func TestWatcherDirectoryRemovedAndBack(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(10)})
	r := start(t, dir, testr.New(t))
	r.next(t, "weight 10", weightIs(10))

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r.lastError(t, "a missing directory", func(err error) bool { return err != nil && strings.Contains(err.Error(), dir) })
	writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(20)})
	r.next(t, "weight 20", weightIs(20))
	writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(30)})
	r.next(t, "weight 30 (the new directory is watched)", weightIs(30))
}

func TestWatcherMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	w := NewWatcher(dir, nil, WatchOptions{})
	err := w.Run(context.Background(), func(*Result) { t.Error("published a Result for a missing directory") })
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Run = %v, want an error naming %s", err, dir)
	}
	file := filepath.Join(t.TempDir(), "file.yaml")
	writeFiles(t, filepath.Dir(file), map[string]string{"file.yaml": goodSA})
	if err := NewWatcher(file, nil, WatchOptions{}).Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Run on a file = %v, want an error", err)
	}
}

func TestWatcherStopsItsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(1), "a/b/c.yaml": goodSA})
	for range 3 {
		r := start(t, dir, logr.Discard())
		r.next(t, "the first load", func(*Result) bool { return true })
		writeFiles(t, dir, map[string]string{"split.yaml": splitYAML(2)})
		r.stop(t)
	}
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
