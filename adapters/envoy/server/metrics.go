package server

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a stream gets nothing, as the label of
// meshward_xds_streams_refused_total.
const (
	refusedNoIdentity      = "no_identity"
	refusedInvalidIdentity = "invalid_identity"
	refusedUnknownIdentity = "unknown_identity"
)

// Stages at which an update fails, as the label of
// meshward_xds_update_failures_total.
const (
	stageTranslate   = "translate"
	stageValidate    = "validate"
	stageConsistency = "consistency"
	// stageCertificate: an SDS certificate (or the trust bundle) of the
	// Envoy flavor could not be issued (read).
	stageCertificate = "certificate"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	nacks          *prometheus.CounterVec
	refused        *prometheus.CounterVec
	updates        prometheus.Counter
	updateFailures *prometheus.CounterVec
	pushes         *prometheus.CounterVec
	streams        prometheus.Gauge
	identities     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_xds_nacks_total",
			Help: "xDS responses a node rejected (NACKed), by type URL. The node keeps its last accepted configuration.",
		}, []string{"type_url"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_xds_streams_refused_total",
			Help: "xDS streams that get no configuration because their node names no identity, an invalid one, or one not in the mesh (when it connects), by reason.",
		}, []string{"reason"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshward_xds_updates_total",
			Help: "Mesh models translated and published to the xDS caches.",
		}),
		updateFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_xds_update_failures_total",
			Help: "Identities (or the shared endpoints, identity \"\") whose new xDS resources were not published because they failed a stage (translate, validate, consistency, certificate); the last good resources keep being served.",
		}, []string{"stage"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_xds_responses_total",
			Help: "xDS responses sent, by type URL.",
		}, []string{"type_url"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshward_xds_streams",
			Help: "Open ADS streams (state of the world and delta).",
		}),
		identities: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshward_xds_identities",
			Help: "Identities with published xDS resources.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.nacks, m.refused, m.updates, m.updateFailures, m.pushes, m.streams, m.identities} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, errors.New("xDS server metrics are already registered on this registry: give each server its own")
			}
			return nil, err
		}
	}
	return m, nil
}
