package health

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollcall/rollcall/registry"
)

// Options configures a Monitor.
type Options struct {
	MaxConcurrent int // checks running at once per agent; 0 = DefaultMaxConcurrent
	// OnChange is called when a service's State or Reason changes because
	// of a check's result (never for output only). It is called without
	// the Monitor's lock held, from a check's goroutine, and must not
	// block. Set and Remove do not call it: their caller asks State after
	// them.
	OnChange   func(service string)
	Logger     *slog.Logger          // nil: slog.Default()
	Registerer prometheus.Registerer // nil: no metrics
}

// Monitor runs the checks of an agent's services and keeps each service's
// state. Its methods are safe for concurrent use.
type Monitor struct {
	onChange func(string)
	log      *slog.Logger
	metrics  *metrics // nil: no metrics
	sem      chan struct{}

	mu       sync.Mutex
	services map[string]*service
	runCtx   context.Context // while Run runs: the checks' parent context
	wg       sync.WaitGroup  // the check loops Run started
	running  bool
}

// service is one service's checks and the state they make.
type service struct {
	checks []*check
	state  registry.State
	reason string
	since  time.Time
}

// NewMonitor returns a Monitor with no services. Its metrics are
// registered with o.Registerer, if given, at once.
func NewMonitor(o Options) *Monitor {
	n := o.MaxConcurrent
	if n <= 0 {
		n = DefaultMaxConcurrent
	}
	m := &Monitor{
		onChange: o.OnChange,
		log:      o.Logger,
		sem:      make(chan struct{}, n),
		services: map[string]*service{},
	}
	if m.onChange == nil {
		m.onChange = func(string) {}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if o.Registerer != nil {
		m.metrics = newMetrics(o.Registerer)
	}
	return m
}

// Set starts or replaces a service's checks; specs must be valid, with
// defaults set. Checks Equal to running ones keep their state, counters
// and schedule, so that a reload does not take a healthy service out; a
// service new to the Monitor starts critical ("no check has passed yet").
// Set with no specs is Remove.
func (m *Monitor) Set(name string, specs []Spec) {
	if len(specs) == 0 {
		m.Remove(name)
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := m.services[name]
	if svc == nil {
		svc = &service{state: registry.StateCritical, since: now}
		m.services[name] = svc
	}
	old := svc.checks
	svc.checks = make([]*check, 0, len(specs))
	for _, spec := range specs {
		i := slices.IndexFunc(old, func(c *check) bool { return c != nil && c.spec.Equal(spec) })
		if i >= 0 {
			c := old[i]
			old[i] = nil
			c.source = spec.Source
			svc.checks = append(svc.checks, c)
			continue
		}
		c := &check{spec: spec, service: name, source: spec.Source, rf: newRiseFall(now)}
		svc.checks = append(svc.checks, c)
		m.start(c)
	}
	for _, c := range old {
		if c != nil {
			m.stopLocked(c)
		}
	}
	m.update(name, svc, now, false)
}

// Remove stops a service's checks and forgets the service: State then
// says it has no checks.
func (m *Monitor) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := m.services[name]
	if svc == nil {
		return
	}
	for _, c := range svc.checks {
		m.stopLocked(c)
	}
	delete(m.services, name)
	m.metrics.forget(name)
}

// start starts c's loop if Run runs; Run starts it otherwise. m.mu is held.
func (m *Monitor) start(c *check) {
	if m.runCtx == nil || c.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	c.stop = cancel
	m.wg.Go(func() { m.loop(ctx, c) })
}

// stopLocked stops c for good: its loop ends and a result still coming is
// dropped. It does not wait for the loop (a probe ends within its
// timeout); Run does. m.mu is held.
func (m *Monitor) stopLocked(c *check) {
	c.removed = true
	if c.stop != nil {
		c.stop()
	}
}

// record applies a run's result to its check and the check's service, and
// calls OnChange if the service's state or reason changed.
func (m *Monitor) record(c *check, r Result) {
	m.metrics.result(c.service, c.spec.Kind, r)
	m.mu.Lock()
	if c.removed {
		m.mu.Unlock()
		return
	}
	before := c.rf.state
	if !c.rf.apply(c.spec, r) {
		m.mu.Unlock()
		return
	}
	if c.rf.state != before {
		lvl := slog.LevelInfo
		if c.rf.state == registry.StateCritical {
			lvl = slog.LevelWarn
		}
		m.log.Log(context.Background(), lvl, "health check "+string(before)+" -> "+string(c.rf.state),
			"service", c.service, "check", c.spec.String(), "source", c.source, "output", registry.ReasonText(r.Output))
	}
	svc := m.services[c.service]
	changed := m.update(c.service, svc, r.At, true)
	m.mu.Unlock()
	if changed {
		m.onChange(c.service)
	}
}

// update recomputes a service's state and reason from its checks' and
// reports whether either changed, logging a change of state that a
// check's result made (logResult). m.mu is held.
func (m *Monitor) update(name string, svc *service, now time.Time, logResult bool) bool {
	st, reason := registry.StatePassing, ""
	for _, c := range svc.checks {
		if worse(c.rf.state, st) {
			st = c.rf.state
		}
		if c.rf.state == registry.StateCritical && reason == "" {
			reason = registry.ReasonText(c.spec.String() + ": " + c.rf.reason)
		}
	}
	if st != registry.StateCritical {
		reason = ""
	}
	if st == svc.state && reason == svc.reason {
		return false
	}
	if st != svc.state {
		svc.since = now
	}
	if st != svc.state && logResult {
		if st == registry.StateCritical {
			m.log.Warn("service critical", "service", name, "reason", reason)
		} else {
			m.log.Info("service "+string(st), "service", name)
		}
	}
	svc.state, svc.reason = st, reason
	m.metrics.state(name, st)
	return true
}

// State returns a service's state and, when critical, why (one line of at
// most registry.MaxReasonLen bytes). ok is false when the service has no
// checks: its state is then for the caller to decide (active is passing).
func (m *Monitor) State(service string) (st registry.State, reason string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := m.services[service]
	if svc == nil {
		return "", "", false
	}
	return svc.state, svc.reason, true
}

// Status returns every service's checks, sorted by service, each
// service's checks in the order they were set.
func (m *Monitor) Status() []ServiceStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ServiceStatus, 0, len(m.services))
	for name, svc := range m.services {
		ss := ServiceStatus{Service: name, State: svc.state, Reason: svc.reason, Since: svc.since,
			Checks: make([]CheckStatus, 0, len(svc.checks))}
		for _, c := range svc.checks {
			cs := CheckStatus{Check: c.spec.String(), Source: c.source, State: c.rf.state,
				Passes: c.rf.passes, Failures: c.rf.failures, Transitions: c.rf.transitions, Changed: c.rf.changed}
			if c.rf.last != nil {
				last := *c.rf.last
				cs.Last = &last
			}
			ss.Checks = append(ss.Checks, cs)
		}
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// Run runs the checks until ctx ends, then returns nil once every check's
// goroutine has ended (a probe in flight is cancelled). Set and Remove
// work before, during and after Run; checks set while Run does not run
// start when it does. Run is an error while another Run runs.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("health: Monitor.Run called while it runs")
	}
	m.running = true
	ctx, cancel := context.WithCancel(ctx)
	m.runCtx = ctx
	for _, svc := range m.services {
		for _, c := range svc.checks {
			m.start(c)
		}
	}
	m.mu.Unlock()

	<-ctx.Done()
	cancel()
	m.mu.Lock()
	m.runCtx = nil
	m.mu.Unlock()
	// No loop starts after runCtx is cleared, so the wait is for a fixed set.
	m.wg.Wait()
	m.mu.Lock()
	for _, svc := range m.services {
		for _, c := range svc.checks {
			c.stop = nil
		}
	}
	m.running = false
	m.mu.Unlock()
	return nil
}
