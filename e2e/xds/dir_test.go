package xds

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/meshward/meshward/adapters/files"
	"github.com/meshward/meshward/adapters/translate"
	"github.com/meshward/meshward/mesh"
)

// dirSource keeps the objects in a directory of manifests that a
// files.Watcher reloads, as `meshward serve --dir` does.
type dirSource struct{ dir string }

func (d dirSource) apply(t *testing.T, file, yaml string) { writeFile(t, d.dir, file, yaml) }

// TestFromDirectory runs the scenario without a cluster: the model comes
// from a directory of manifests (files.Watcher, translate.Build), the pods
// at 127.0.0.2 and 127.0.0.3 as the EndpointSlices say.
func TestFromDirectory(t *testing.T) {
	w := newWorld(t)
	w.p.V1, w.p.V2 = "127.0.0.2", "127.0.0.3"
	src := dirSource{dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	watcher := files.NewWatcher(src.dir, nil, files.WatchOptions{
		Debounce: 20 * time.Millisecond,
		Log:      testr.NewWithOptions(t, testr.Options{Verbosity: 0}).WithName("files"),
	})
	go func() {
		done <- watcher.Run(ctx, func(res *files.Result) {
			if err := w.srv.Update(translate.Build(res.Snapshot, mesh.DefaultOptions())); err != nil {
				t.Errorf("publishing the model: %v", err)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watching %s: %v", src.dir, err)
		}
	})
	runScenario(t, w, src)
}
