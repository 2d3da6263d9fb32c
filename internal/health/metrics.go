package health

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollcall/rollcall/registry"
)

// metrics are the checks' Prometheus metrics. Labels are the service and
// the check's kind only: a label per check target or output would grow
// without bound. A nil *metrics records nothing.
type metrics struct {
	runs     *prometheus.CounterVec   // service, check_kind, result
	duration *prometheus.HistogramVec // check_kind
	states   *prometheus.GaugeVec     // service
	skips    *prometheus.CounterVec   // service
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "rollcall", "servicereg"
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "check_runs_total",
			Help: "Health check runs by service, check kind and result (passing, warning, critical)."}, []string{"service", "check_kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "check_duration_seconds",
			Help:    "How long health check runs took, by check kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"check_kind"}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "check_state",
			Help: "A service's state from its health checks: 0 passing, 1 warning, 2 critical."}, []string{"service"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "checks_skipped_total",
			Help: "Health check runs skipped because the run before was still going or waiting for the concurrency cap (check_concurrency)."}, []string{"service"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "checks_running",
			Help: "Health checks running now; at check_concurrency, more wait."}),
	}
	m.runs = register(reg, m.runs)
	m.duration = register(reg, m.duration)
	m.states = register(reg, m.states)
	m.skips = register(reg, m.skips)
	m.inFlight = register(reg, m.inFlight)
	return m
}

// register registers c, or returns the collector registered before under
// the same name (a second Monitor on one registry, as after a restart in
// the same process, shares the first one's metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Another collector with a clashing description is a programming
		// error; leave ours unregistered rather than fail the agent.
	}
	return c
}

func (m *metrics) result(service string, kind Kind, r Result) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(service, string(kind), string(r.State)).Inc()
	m.duration.WithLabelValues(string(kind)).Observe(r.Duration.Seconds())
}

func (m *metrics) state(service string, st registry.State) {
	if m == nil {
		return
	}
	m.states.WithLabelValues(service).Set(float64(rank(st)))
}

func (m *metrics) skipped(service string, n int) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(service).Add(float64(n))
}

func (m *metrics) running(delta float64) {
	if m == nil {
		return
	}
	m.inFlight.Add(delta)
}

// forget drops a removed service's series.
func (m *metrics) forget(service string) {
	if m == nil {
		return
	}
	m.runs.DeletePartialMatch(prometheus.Labels{"service": service})
	m.states.DeleteLabelValues(service)
	m.skips.DeleteLabelValues(service)
}
