package rollcall

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The `source` label names one loader (one watch): "<prefix>@<endpoints>".
var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "requests_total",
		Help:      "Queries answered by rollcall, by kind of name (apex, service, instance, shard, port, master, unknown).",
	}, []string{"kind"})

	indexSize = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "index_entries",
		Help:      "Records in the in-memory index, by type (instances, hosts, masters).",
	}, []string{"source", "type"})

	watchState = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "watch_state",
		Help:      "1 for the loader's current state (listing, watching, behind, unreachable), 0 for the others.",
	}, []string{"source", "state"})

	decodeErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "decode_errors_total",
		Help:      "etcd keys or values skipped as malformed, by reason (key, too_large, record, mismatch, candidate): bad instance states and maintenance records count as record.",
	}, []string{"source", "reason"})

	revision = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "revision",
		Help:      "etcd revision of the data served (the SOA serial before truncation to 32 bits): every change up to it is in the index, none after it.",
	}, []string{"source"})

	watchesOpened = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "watches_opened_total",
		Help:      "etcd watches opened, shared by every server block with the same etcd and prefix: one after each list, and one each time a lost watch is resumed.",
	}, []string{"source"})

	listsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "lists_total",
		Help:      "Full lists of the prefix: the first load, then one per compaction that a watch fell behind.",
	}, []string{"source"})

	stateAge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "state_age_seconds",
		Help:      "Seconds since the loader last heard from etcd (an event, a list or a progress notification): how stale the served state may be.",
	}, []string{"source"})

	servicesFailingOpen = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "services_failing_open",
		Help:      "Services answering with their critical instances because none is passing or warning (fail_open), summed over server blocks.",
	})

	// failOpenAnswers has no labels, so counting a query is one atomic add.
	failOpenAnswers = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "fail_open_answers_total",
		Help:      "Answers to a service, port or shard name that held critical instances because the service was failing open.",
	})
)

// requestsByKind resolves the request counters once, so counting a query is
// one atomic add.
var requestsByKind [numKinds]prometheus.Counter

func init() {
	for k := range requestsByKind {
		requestsByKind[k] = requestsTotal.WithLabelValues(kindNames[k])
	}
}
