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

	mu         sync.Mutex
	cfg        *Config
	units      map[string]UnitState // by unit name, as systemd last said
	unitsKnown bool                 // systemd has answered once (or is not used)
	detected   []netip.Addr
	detectErr  string // last detection error, logged once
	rotate     bool   // host, prefix or TTL changed: start over on a new lease
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
	}
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
	if c.Host != old.Host || c.Prefix != old.Prefix || c.TTL != old.TTL {
		a.rotate = true
		select {
		case a.rewatch <- struct{}{}:
		default:
		}
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

func (a *Agent) pokeLoop() {
	select {
	case a.poke <- struct{}{}:
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
		for u := range a.units {
			if _, ok := states[u]; !ok {
				delete(a.units, u)
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
