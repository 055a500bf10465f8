package kube

import (
	"context"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/meshward/meshward/mesh"
)

// eventWriter reports findings as Events. It runs only on the leader, and
// writes an Event when a finding appears (again); unchanged findings are not
// repeated on every rebuild.
type eventWriter struct {
	recorder recorder.EventRecorder
	instance string
	builds   <-chan *build
	log      logr.Logger
}

// NeedLeaderElection makes the writer run on the leader only.
func (w *eventWriter) NeedLeaderElection() bool { return true }

// Start writes Events until ctx is done.
func (w *eventWriter) Start(ctx context.Context) error {
	w.log.Info("elected leader: reporting findings as Events", "instance", w.instance)
	reported := map[mesh.Finding]struct{}{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-w.builds:
			reported = w.report(b, reported)
		}
	}
}

func (w *eventWriter) report(b *build, before map[mesh.Finding]struct{}) map[mesh.Finding]struct{} {
	now := make(map[mesh.Finding]struct{}, len(b.model.Findings))
	for _, f := range b.model.Findings {
		now[f] = struct{}{}
		if _, ok := before[f]; ok {
			continue
		}
		ref, ok := b.refs[f.Object]
		if !ok {
			// Objects that are not in the cache (e.g. kinds not watched)
			// cannot carry an Event; the log has them.
			w.log.Info("finding", "object", f.Object.String(), "field", f.Field, "reason", f.Reason, "message", f.Message)
			continue
		}
		eventType := corev1.EventTypeWarning
		note := f.Message
		if f.Field != "" {
			note = f.Field + ": " + f.Message
		}
		w.recorder.AnnotatedEventf(&ref, nil, map[string]string{EventInstanceAnnotation: w.instance},
			eventType, f.Reason, "Validate", "%s", note)
	}
	return now
}
