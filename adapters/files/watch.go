package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/meshward/meshward/snapshot"
)

// DefaultDebounce is how long the watcher waits for a burst of changes to
// end before it reloads the directory.
const DefaultDebounce = 200 * time.Millisecond

// maxDelayFactor bounds the wait of a burst that never pauses: the reload
// happens at most maxDelayFactor debounce periods after its first change.
const maxDelayFactor = 5

// rootPollInterval is how often the watcher looks for the directory again
// after it was removed.
const rootPollInterval = time.Second

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is how long to wait after a change for more changes before
	// reloading; zero or negative means DefaultDebounce.
	Debounce time.Duration
	// Log receives load errors (Error), loads (Info) and skipped objects
	// (V(1)). The zero Logger discards everything.
	Log logr.Logger
}

// Watcher keeps the Result of a directory up to date.
type Watcher struct {
	dir      string
	dec      *snapshot.Decoder
	debounce time.Duration
	log      logr.Logger

	mu      sync.Mutex
	lastErr error
}

// NewWatcher returns a watcher of dir. A nil dec means
// snapshot.NewDecoder().
func NewWatcher(dir string, dec *snapshot.Decoder, opts WatchOptions) *Watcher {
	if dec == nil {
		dec = snapshot.NewDecoder()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	return &Watcher{
		dir:      filepath.Clean(dir),
		dec:      dec,
		debounce: opts.Debounce,
		log:      opts.Log.WithValues("dir", dir),
	}
}

// LastError returns the error of the latest load, or nil if it succeeded
// (or none has run yet). While it is not nil, the last published Result is
// still the one in force.
func (w *Watcher) LastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

func (w *Watcher) setLastError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = err
}

// Run loads the directory, publishing the Result if the load succeeds,
// then watches the directory and its subdirectories and reloads it after
// every burst of changes. It returns nil when ctx is done, and an error at
// once if dir is not a directory or cannot be watched.
//
// publish is called from Run's goroutine, only after a successful load and
// only when the input differs from the last published Result (or the
// previous load failed). It must not keep Run waiting for long: changes
// are not read meanwhile. A failed load publishes nothing: each problem is
// logged with its file and line, and LastError returns them.
//
// Changes to files reached through symbolic links are seen only when the
// link itself changes, as when Kubernetes updates a mounted ConfigMap. If
// the directory is removed, Run looks for it every second until it is back.
func (w *Watcher) Run(ctx context.Context, publish func(*Result)) error {
	fi, err := os.Stat(w.dir)
	if err != nil {
		return fmt.Errorf("manifest directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("manifest directory %s: not a directory", w.dir)
	}
	if publish == nil {
		publish = func(*Result) {}
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching manifest directory %s: %w", w.dir, err)
	}
	r := &run{w: w, fsw: fsw, publish: publish, failed: true, timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	defer r.stop()
	// Watch before loading, so that no change made during the first load
	// is missed.
	t, err := walk(w.dir)
	if err != nil {
		return err
	}
	r.sync(t.dirs)
	if !r.watched(w.dir) {
		return fmt.Errorf("watching manifest directory %s: %w", w.dir, r.addErr)
	}
	r.reload()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("watching manifest directory: notifications stopped")
			}
			r.event(ev)
		case err, ok := <-fsw.Errors:
			if !ok {
				return errors.New("watching manifest directory: notifications stopped")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Info("change notifications were lost; reloading the directory")
				r.schedule()
				continue
			}
			w.log.Error(err, "watching the manifest directory")
		case <-r.timer.C:
			r.pending = false
			r.reload()
		case <-r.pollC():
			if fi, err := os.Stat(w.dir); err == nil && fi.IsDir() {
				r.schedule()
			}
		}
	}
}

// run is the state of one Run.
type run struct {
	w       *Watcher
	fsw     *fsnotify.Watcher
	publish func(*Result)

	timer   *time.Timer
	pending bool      // the timer is set for a burst
	first   time.Time // when the pending burst began

	poll   *time.Ticker // non-nil while the directory is not watched
	addErr error        // the last error adding a watch

	failed bool   // the last load failed (or none ran yet)
	digest string // of the last published Result
}

func (r *run) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.poll != nil {
		r.poll.Stop()
	}
	_ = r.fsw.Close() // waits for fsnotify's goroutine to end
}

func (r *run) pollC() <-chan time.Time {
	if r.poll == nil {
		return nil
	}
	return r.poll.C
}

// event handles one change notification.
func (r *run) event(ev fsnotify.Event) {
	if ev.Op&^fsnotify.Chmod == 0 {
		return // attributes only: the content is the same
	}
	name := filepath.Base(ev.Name)
	if editorTemp(name) {
		return
	}
	if ev.Has(fsnotify.Create) && !skipped(name) {
		// Watch a new directory at once, so that changes in it between
		// now and the reload are seen.
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if t, err := walk(r.w.dir); err == nil {
				r.sync(t.dirs)
			}
		}
	}
	r.schedule()
}

// schedule sets the timer for a reload after the current burst ends.
func (r *run) schedule() {
	now := time.Now()
	if !r.pending {
		r.pending, r.first = true, now
	}
	deadline := now.Add(r.w.debounce)
	if limit := r.first.Add(maxDelayFactor * r.w.debounce); deadline.After(limit) {
		deadline = limit
	}
	r.timer.Reset(time.Until(deadline))
}

// reload loads the directory and publishes the result if it is good and
// new.
func (r *run) reload() {
	w := r.w
	res, dirs, err := load(w.dir, w.dec)
	r.sync(dirs)
	w.setLastError(err)
	if err != nil {
		r.failed = true
		const msg = "manifests not loaded; keeping the last good configuration"
		pes := ParseErrors(err)
		if len(pes) == 0 {
			w.log.Error(err, msg)
		}
		for _, pe := range pes {
			w.log.Error(pe, msg, "file", pe.File, "line", pe.Line)
		}
		return
	}
	if !r.failed && res.Digest == r.digest {
		w.log.V(1).Info("manifests unchanged", "digest", res.Digest)
		return
	}
	r.failed, r.digest = false, res.Digest
	for _, s := range res.Skipped {
		w.log.V(1).Info("object skipped: kind not read by meshward", "position", s.Position.String(),
			"apiVersion", s.APIVersion, "kind", s.Kind, "namespace", s.Namespace, "name", s.Name)
	}
	w.log.Info("manifests loaded", "files", res.Files, "objects", res.Snapshot.Len(),
		"policies", len(res.Policies), "findings", len(res.Snapshot.Findings), "digest", res.Digest)
	r.publish(res)
}

// sync makes the watched directories exactly dirs, and starts or stops
// polling for the root directory depending on whether it is watched.
func (r *run) sync(dirs []string) {
	want := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		want[filepath.Clean(d)] = true
	}
	have := make(map[string]bool)
	for _, d := range r.fsw.WatchList() {
		if !want[d] {
			_ = r.fsw.Remove(d) // gone or renamed: inotify may have dropped it already
			continue
		}
		have[d] = true
	}
	for _, d := range dirs {
		d = filepath.Clean(d)
		if !have[d] {
			if err := r.fsw.Add(d); err != nil {
				r.addErr = err
				r.w.log.V(1).Info("cannot watch directory", "path", d, "error", err.Error())
			}
		}
	}
	switch rootWatched := r.watched(r.w.dir); {
	case rootWatched && r.poll != nil:
		r.poll.Stop()
		r.poll = nil
	case !rootWatched && r.poll == nil:
		r.poll = time.NewTicker(rootPollInterval)
	}
}

// watched reports whether dir is being watched.
func (r *run) watched(dir string) bool {
	for _, d := range r.fsw.WatchList() {
		if d == dir {
			return true
		}
	}
	return false
}
