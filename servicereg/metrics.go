package servicereg

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rollcall/rollcall/registry"
)

// metrics live on a private registry, so that several agents in one process
// (rollcall dev, tests) never collide on registration.
type metrics struct {
	reg *prometheus.Registry

	registered       prometheus.Gauge
	unitPresent      *prometheus.GaugeVec
	unitNotFound     *prometheus.GaugeVec
	leaseHeld        prometheus.Gauge
	leaseGrants      prometheus.Counter
	leaseLosses      prometheus.Counter
	etcdErrors       *prometheus.CounterVec
	lastWrite        prometheus.Gauge
	systemdConnected prometheus.Gauge
	resyncs          *prometheus.CounterVec
	addrs            prometheus.Gauge

	stateWrites        prometheus.Counter
	stateWritesDelayed prometheus.Counter
	instanceState      *prometheus.GaugeVec
	maintSkipped       prometheus.Counter
	controlUp          prometheus.Gauge
}

func newMetrics() *metrics {
	const ns, sub = "rollcall", "servicereg"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registered: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "registered_services",
			Help: "Instance records this agent holds in etcd after its last successful reconcile."}),
		unitPresent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "unit_present",
			Help: "1 while the service's unit is active or reloading (the service should be registered), else 0."}, []string{"service", "unit"}),
		unitNotFound: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "unit_not_found",
			Help: "1 while systemd reports the configured unit as not found."}, []string{"unit"}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "lease_held",
			Help: "1 while the agent holds an etcd lease renewed within its TTL."}),
		leaseGrants: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_grants_total",
			Help: "Leases granted (1 at start, plus one per lost lease)."}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_losses_total",
			Help: "Leases lost (etcd said they expired)."}),
		etcdErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "etcd_errors_total",
			Help: "Failed etcd operations, by operation."}, []string{"op"}),
		lastWrite: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_successful_write_timestamp_seconds",
			Help: "Unix time of the last reconcile that brought etcd to the desired state."}),
		systemdConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "systemd_connected",
			Help: "1 while the agent is connected to the systemd manager."}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "systemd_resyncs_total",
			Help: "Full reads of all watched units, by reason."}, []string{"reason"}),
		addrs: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "host_addresses",
			Help: "Addresses in the host record."}),
		stateWrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "state_writes_total",
			Help: "Changes of a registered instance's state or reason handed to etcd (first registrations not counted)."}),
		stateWritesDelayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "state_writes_delayed_total",
			Help: "State changes that waited for the state-write rate limit (state_write_rate, state_write_burst); a steady rise means a flapping check."}),
		instanceState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "instance_state",
			Help: "1 for the state a registered instance's record carries (passing, warning, critical, draining), 0 for the others."}, []string{"service", "state"}),
		maintSkipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "maintenance_records_skipped_total",
			Help: "Maintenance keys or values of this host that were malformed and skipped (they count as no maintenance)."}),
		controlUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "control_socket_up",
			Help: "1 while the control socket (drain, undrain, status) is open at the configured path."}),
	}
	m.reg.MustRegister(m.registered, m.unitPresent, m.unitNotFound, m.leaseHeld, m.leaseGrants, m.leaseLosses,
		m.etcdErrors, m.lastWrite, m.systemdConnected, m.resyncs, m.addrs,
		m.stateWrites, m.stateWritesDelayed, m.instanceState, m.maintSkipped, m.controlUp)
	return m
}

// instanceStates are the states instance_state has a series for.
var instanceStates = []registry.State{registry.StatePassing, registry.StateWarning, registry.StateCritical, registry.StateDraining}

// setInstanceStates sets instance_state to the records' states; services
// without a record have no series.
func (m *metrics) setInstanceStates(health map[string]instanceHealth) {
	m.instanceState.Reset()
	for name, h := range health {
		for _, st := range instanceStates {
			v := 0.0
			if h.State.Effective() == st {
				v = 1
			}
			m.instanceState.WithLabelValues(name, string(st)).Set(v)
		}
	}
}

// health is what /healthz reports: the lease and how recently etcd answered.
type health struct {
	mu        sync.Mutex
	leaseHeld bool
	lapsed    bool      // the held lease went a whole TTL without a renewal (lease.go)
	lastOK    time.Time // last successful etcd round trip (write or keepalive)
	lastErr   error     // last failed etcd operation since lastOK, if any
	window    time.Duration
}

func (h *health) ok(now time.Time) {
	h.mu.Lock()
	h.lastOK, h.lastErr = now, nil
	h.mu.Unlock()
}

func (h *health) fail(err error) {
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
}

func (h *health) setLease(held bool) {
	h.mu.Lock()
	h.leaseHeld = held
	h.mu.Unlock()
}

func (h *health) setLapsed(lapsed bool) {
	h.mu.Lock()
	h.lapsed = lapsed
	h.mu.Unlock()
}

// status returns "" when healthy, else the reason.
func (h *health) status(now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.leaseHeld && h.lastErr != nil:
		return fmt.Sprintf("no etcd lease: %v", h.lastErr)
	case !h.leaseHeld:
		return "no etcd lease yet"
	case h.lapsed:
		return fmt.Sprintf("etcd lease not renewed for a whole TTL (no successful etcd round trip for %v); still renewing it", now.Sub(h.lastOK).Round(time.Second))
	case h.lastErr != nil:
		return fmt.Sprintf("last etcd write failed: %v", h.lastErr)
	case now.Sub(h.lastOK) > h.window:
		return fmt.Sprintf("no successful etcd round trip for %v", now.Sub(h.lastOK).Round(time.Second))
	}
	return ""
}

// Handler serves /metrics (Prometheus), /healthz: 200 "ok" while the
// lease is held and etcd answered recently, else 503 with the reason, and
// /status: the agent's services, their states and checks as JSON (Status).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/status", a.serveStatus)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := a.health.status(time.Now()); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
