package servicereg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	healthcheck "github.com/rollcall/rollcall/internal/health"
)

// Options change how an Agent runs beyond its Config.
type Options struct {
	// Logger receives one line per state change; default slog.Default().
	Logger *slog.Logger
	// Static services are registered as always present, without systemd.
	Static []Service
	// NoSystemd: do not connect to systemd at all; configured services then
	// stay absent.
	NoSystemd bool
	// Client is used instead of a client made from the config's etcd
	// settings; the Agent does not close it.
	Client *clientv3.Client
}

// Intervals of the safety nets; tests in this package shorten them.
const (
	defaultResync     = 30 * time.Second // full systemd read, etcd re-check
	defaultAddrDetect = 30 * time.Second
	etcdOpTimeout     = 5 * time.Second
)

// Agent registers this host's present services in etcd. Make one with New and
// run it with Run.
type Agent struct {
	log    *slog.Logger
	opts   Options
	cli    *clientv3.Client
	ownCli bool
	m      *metrics
	health *health
	hooks  []presenceHook

	// refused is the main loop's record of etcd refusals (denied.go).
	refused *refusals
	// monitor runs the health checks of the services whose units are
	// active; the main loop Sets and Removes them (keeper.go).
	monitor *healthcheck.Monitor
	// monitored is what the main loop gave the monitor: each checked
	// service's checks, while its unit is active. Main loop only.
	monitored map[string]Checks
	// book decides which health each record carries (healthstate.go).
	// Main loop only.
	book  *stateBook
	maint maintenanceBook

	resyncEvery time.Duration
	detectEvery time.Duration
	detect      func() ([]netip.Addr, error)

	ready     chan struct{}
	readyOnce sync.Once
	poke      chan struct{}      // cap 1: the desired state may have changed
	ping      chan chan struct{} // liveness probe of the main loop
	rewatch   chan struct{}      // cap 1: the host's subtree moved (reload)
	watcher   *unitWatcher
	running   chan struct{} // closed when Run starts: Reload then reaches the loop

	// recompute (cap 1): the health of a service or a maintenance record
	// changed, or a timer of the desired state ran out (min_active, a token
	// of the state-write limit, a maintenance's end): the desired state is
	// built again, and etcd written only when the records changed.
	recompute    chan struct{}
	rewatchMaint chan struct{} // cap 1: the host's maintenance keys moved (reload)
	controlMoved chan struct{} // cap 1: the control path may have changed (reload)

	mu         sync.Mutex
	cfg        *Config
	units      map[string]UnitState // by unit name, as systemd last said
	unitsKnown bool                 // systemd has answered once (or is not used)
	detected   []netip.Addr
	detectErr  string // last detection error, logged once
	rotate     bool   // host, prefix or TTL changed: start over on a new lease
	// activeSince is when the agent saw each present unit become present:
	// min_active counts from then.
	activeSince map[string]time.Time
	// drained: services drained for their unit's current activation
	// (drain.go). drainGen counts drains and undrains; a desired state
	// carries the count it was built at, and writtenGen/writtenAt are the
	// count and the time of the last one written (written is closed then).
	drained    map[string]bool
	drainGen   uint64
	writtenGen uint64
	writtenAt  time.Time
	written    chan struct{}
	// view is each service's status as the main loop last built it.
	view map[string]instanceView
}

// New checks cfg (filling in defaults as LoadConfig does) and opts and
// returns an Agent ready to Run. It does not contact etcd or systemd.
func New(cfg *Config, opts Options) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("servicereg: no config")
	}
	c := *cfg
	c.Services = slices.Clone(cfg.Services)
	if err := c.Normalize(); err != nil {
		return nil, fmt.Errorf("servicereg config: %w", err)
	}
	static, err := checkStatic(&c, opts.Static)
	if err != nil {
		return nil, err
	}
	opts.Static = static
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{
		log:         opts.Logger,
		opts:        opts,
		cli:         opts.Client,
		m:           newMetrics(),
		resyncEvery: defaultResync,
		detectEvery: defaultAddrDetect,
		detect:      DetectAddrs,
		ready:       make(chan struct{}),
		poke:        make(chan struct{}, 1),
		ping:        make(chan chan struct{}),
		rewatch:     make(chan struct{}, 1),
		running:     make(chan struct{}),
		cfg:         &c,
		units:       map[string]UnitState{},
		unitsKnown:  opts.NoSystemd,

		recompute:    make(chan struct{}, 1),
		rewatchMaint: make(chan struct{}, 1),
		controlMoved: make(chan struct{}, 1),
		monitored:    map[string]Checks{},
		book:         newStateBook(c.StateWriteRate, c.StateWriteBurst),
		activeSince:  map[string]time.Time{},
		drained:      map[string]bool{},
		written:      make(chan struct{}),
		view:         map[string]instanceView{},
	}
	a.monitor = healthcheck.NewMonitor(healthcheck.Options{
		MaxConcurrent: c.CheckConcurrency,
		OnChange:      func(string) { a.recomputeSoon() },
		Logger:        a.log,
		Registerer:    a.m.reg,
	})
	a.health = &health{window: 2 * c.TTL}
	a.refused = newRefusals(a.m.reg)
	if a.health.window < 10*time.Second {
		a.health.window = 10 * time.Second
	}
	if a.cli == nil {
		cli, err := etcdconn.New(c.Etcdconn())
		if err != nil {
			return nil, fmt.Errorf("servicereg: %w", err)
		}
		a.cli, a.ownCli = cli, true
	}
	for _, f := range hookFactories {
		h, err := f(a)
		if err != nil {
			a.closeClient()
			return nil, fmt.Errorf("servicereg: %w", err)
		}
		a.hooks = append(a.hooks, h)
	}
	if !opts.NoSystemd {
		a.watcher = newUnitWatcher(c.Systemd, a.log, a.m, a.resyncEvery, a.unitsReported)
		a.watcher.setUnits(unitsOf(c.Services))
	}
	return a, nil
}

// checkStatic validates Options.Static against the config: names must be
// valid and unique across both.
func checkStatic(cfg *Config, static []Service) ([]Service, error) {
	out := slices.Clone(static)
	names := map[string]bool{}
	for _, s := range cfg.Services {
		names[s.Name] = true
	}
	var errs []error
	for i := range out {
		s := &out[i]
		if s.Unit == "" {
			s.Unit = s.Name + ".service"
		}
		if err := s.check(); err != nil {
			errs = append(errs, fmt.Errorf("static service %q: %w", s.Name, err))
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("static service %q is also configured: names must be unique", s.Name))
		}
		names[s.Name] = true
	}
	return out, errors.Join(errs...)
}

func unitsOf(svcs []Service) []string {
	var out []string
	for _, s := range svcs {
		if !slices.Contains(out, s.Unit) {
			out = append(out, s.Unit)
		}
	}
	return out
}

// Ready returns a channel closed once the first registration is written: the
// host record and every service present at start.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Config returns the config in force (after defaults and reloads).
func (a *Agent) Config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := *a.cfg
	return &c
}

// Alive reports whether the main loop answers within ctx: what the systemd
// watchdog is fed from.
func (a *Agent) Alive(ctx context.Context) bool {
	reply := make(chan struct{})
	select {
	case a.ping <- reply:
	case <-ctx.Done():
		return false
	}
	select {
	case <-reply:
		return true
	case <-ctx.Done():
		return false
	}
}

// Reload applies a new config to a running agent: services, networks and
// addresses take effect at once; a new host, prefix or ttl moves everything
// to a new lease (the old names vanish); etcd and systemd settings need a
// restart and are kept. A config that does not check out is refused and the
// old one stays.
func (a *Agent) Reload(cfg *Config) error {
	c := *cfg
	c.Services = slices.Clone(cfg.Services)
	if err := c.Normalize(); err != nil {
		return fmt.Errorf("reload refused, keeping the old config: %w", err)
	}
	if _, err := checkStatic(&c, a.opts.Static); err != nil {
		return fmt.Errorf("reload refused, keeping the old config: %w", err)
	}
	a.mu.Lock()
	old := a.cfg
	if !slices.Equal(c.Etcd.Endpoints, old.Etcd.Endpoints) || c.Etcd.Cert != old.Etcd.Cert ||
		c.Etcd.Key != old.Etcd.Key || c.Etcd.CA != old.Etcd.CA || c.Systemd != old.Systemd {
		a.log.Warn("etcd and systemd settings change only at restart; keeping the running ones")
		c.Etcd, c.Systemd = old.Etcd, old.Systemd
	}
	if c.CheckConcurrency != old.CheckConcurrency {
		// The monitor's cap is fixed when it is made.
		a.log.Warn("check_concurrency changes only at restart; keeping the running one", "check_concurrency", old.CheckConcurrency)
		c.CheckConcurrency = old.CheckConcurrency
	}
	if c.Host != old.Host || c.Prefix != old.Prefix || c.TTL != old.TTL {
		a.rotate = true
		signal(a.rewatch)
	}
	if c.Host != old.Host || c.Prefix != old.Prefix {
		signal(a.rewatchMaint)
	}
	if c.Control != old.Control {
		signal(a.controlMoved)
	}
	a.cfg = &c
	a.mu.Unlock()
	if a.watcher != nil {
		a.watcher.setUnits(unitsOf(c.Services))
	}
	a.log.Info("config reloaded", "path", c.Path, "services", len(c.Services))
	a.pokeLoop()
	return nil
}

func (a *Agent) pokeLoop() { signal(a.poke) }

// recomputeSoon asks the main loop to build the desired state again; it
// writes etcd only if the records changed (a health change waiting for the
// rate limit changes none). It never blocks: the health monitor calls it.
func (a *Agent) recomputeSoon() { signal(a.recompute) }

// signal sends on a channel of capacity 1 unless a signal is pending
// already.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// unitsReported takes unit states from the systemd watcher: a full read
// replaces them all, a single read updates its unit. Each change is logged
// once.
func (a *Agent) unitsReported(states map[string]UnitState, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	changed := !a.unitsKnown
	if full {
		for u, old := range a.units {
			if _, ok := states[u]; !ok {
				delete(a.units, u)
				a.presenceMoved(u, Present(old), false)
				changed = true
			}
		}
		a.unitsKnown = true
	}
	for u, st := range states {
		old, had := a.units[u]
		if had && old == st {
			continue
		}
		changed = true
		a.units[u] = st
		a.presenceMoved(u, had && Present(old), Present(st))
		switch {
		case st.LoadState == "not-found" && (!had || old.LoadState != "not-found"):
			a.log.Warn("unit not found; its service counts as absent", "unit", u)
		case !had || Present(old) != Present(st) || old.ActiveState != st.ActiveState:
			a.log.Info("unit state", "unit", u, "active", st.ActiveState, "sub", st.SubState, "present", Present(st))
		}
	}
	for _, u := range unitsOf(a.cfg.Services) {
		nf := 0.0
		if a.units[u].LoadState == "not-found" {
			nf = 1
		}
		a.m.unitNotFound.WithLabelValues(u).Set(nf)
	}
	if changed {
		a.pokeLoop()
	}
}

// presenceMoved notes a unit's change of presence: min_active counts from
// when it became present, and a drain lasts only while it stays so (the
// next start of the unit is served again). a.mu is held.
func (a *Agent) presenceMoved(unit string, was, is bool) {
	switch {
	case is && !was:
		a.activeSince[unit] = time.Now()
	case was && !is:
		delete(a.activeSince, unit)
		for _, s := range a.cfg.Services {
			if s.Unit == unit && a.drained[s.Name] {
				delete(a.drained, s.Name)
				a.log.Info("drain ended: the unit stopped", "service", s.Name, "unit", unit)
			}
		}
	}
}

// Run registers and keeps registering until ctx ends, then revokes the lease
// so that every name of this host vanishes at once, and returns nil. It
// returns an error only when it cannot start.
func (a *Agent) Run(ctx context.Context) error {
	select {
	case <-a.running:
		return errors.New("servicereg: Run called twice")
	default:
	}
	close(a.running)
	defer a.closeClient()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if a.watcher != nil {
		wg.Go(func() { a.watcher.run(ctx) })
	}
	// The first detection runs before the main loop so that the first host
	// record written already holds the addresses.
	a.detectOnce()
	wg.Go(func() { a.detectLoop(ctx) })
	wg.Go(func() { a.watchOwn(ctx) })
	wg.Go(func() { a.watchMaintenance(ctx) })
	wg.Go(func() {
		if err := a.monitor.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("health checks stopped", "err", err)
		}
	})
	a.keep(ctx)
	cancel()
	wg.Wait()
	return nil
}

func (a *Agent) closeClient() {
	if a.ownCli {
		a.cli.Close()
	}
}

// detectLoop re-detects the host's addresses on a timer.
func (a *Agent) detectLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.detectEvery):
		}
		a.detectOnce()
	}
}

// detectOnce detects the host's addresses and wakes the main loop only when
// they changed. A failure keeps the last addresses and is logged once.
func (a *Agent) detectOnce() {
	found, err := a.detect()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if err.Error() != a.detectErr {
			a.log.Warn("cannot detect host addresses; keeping the last ones", "err", err)
			a.detectErr = err.Error()
		}
		return
	}
	a.detectErr = ""
	slices.SortFunc(found, func(x, y netip.Addr) int { return x.Compare(y) })
	found = slices.Compact(found)
	if slices.Equal(found, a.detected) {
		return
	}
	a.detected = found
	a.pokeLoop()
}
