package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/meshward/meshward/adapters/osm"
	policyv1alpha1 "github.com/meshward/meshward/api/osm/policy/v1alpha1"
	"github.com/meshward/meshward/mesh"
)

// leaderWriter writes what meshward reports back to the cluster: findings
// as Events and the status of IngressBackends. It runs only on the leader.
// An Event is written when a finding appears (again), so unchanged findings
// are not repeated on every rebuild; a status is written only when it
// differs from the one in the cluster.
type leaderWriter struct {
	client   client.Client
	recorder recorder.EventRecorder
	instance string
	builds   <-chan *build
	log      logr.Logger
}

// NeedLeaderElection makes the writer run on the leader only.
func (w *leaderWriter) NeedLeaderElection() bool { return true }

// Start writes until ctx is done.
func (w *leaderWriter) Start(ctx context.Context) error {
	w.log.Info("elected leader: reporting findings as Events and writing status", "instance", w.instance)
	reported := map[mesh.Finding]struct{}{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-w.builds:
			reported = w.report(b, reported)
			w.writeStatus(ctx, b)
			w.writeOCIStatus(ctx, b)
		}
	}
}

func (w *leaderWriter) report(b *build, before map[mesh.Finding]struct{}) map[mesh.Finding]struct{} {
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
		note := f.Message
		if f.Field != "" {
			note = f.Field + ": " + f.Message
		}
		w.recorder.AnnotatedEventf(&ref, nil, map[string]string{EventInstanceAnnotation: w.instance},
			corev1.EventTypeWarning, f.Reason, "Validate", "%s", note)
	}
	return now
}

// writeStatus patches the status of every IngressBackend whose status
// differs from what the model says.
func (w *leaderWriter) writeStatus(ctx context.Context, b *build) {
	for ref, current := range b.ingressStatus {
		want := osm.Status(ref, b.model.Findings)
		if want == current {
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": want})
		if err != nil {
			w.log.Error(err, "encoding status", "object", ref.String())
			continue
		}
		obj := &policyv1alpha1.IngressBackend{}
		obj.Namespace, obj.Name = ref.Namespace, ref.Name
		if err := w.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			w.log.Error(fmt.Errorf("writing status: %w", err), "status not written; it is retried on the next rebuild", "object", ref.String())
			continue
		}
		w.log.V(1).Info("status written", "object", ref.String(), "status", want.CurrentStatus)
	}
}
