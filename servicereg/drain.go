package servicereg

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rollcall/rollcall/registry"
)

// Drain (docs/DESIGN.md, "Health"): an operator, or a unit's ExecStop,
// takes an instance out of DNS before its program stops, so that
// resolvers have forgotten it by the time it stops answering. The agent
// writes the instance as draining (never served, not even failing open)
// and answers once etcd has taken the write; the caller then waits out the
// DNS answer TTL (ForgetBy).
//
// A drain lives in the agent's memory only, for the current activation of
// the unit: it ends with undrain, when the agent sees the unit stop (so
// the next start of the unit is served again without anyone undraining:
// ExecStop drains on every stop, restarts included), when the service
// leaves the config, and when the agent restarts. To keep an instance out
// across restarts, use maintenance (`rollcall maint`), which lives in etcd.
//
// A drain of an instance whose unit is not active is accepted and not
// remembered: there is nothing to take out, and the answer still waits for
// a reconcile, so that a record the agent is removing right now (the unit
// just stopped) is gone from etcd when the caller starts waiting.

// DrainMargin is added to the DNS TTL before a drained instance counts as
// forgotten: the DNS servers' trip from the etcd write to a new answer
// (milliseconds, but a busy server or a watch catching up takes longer),
// and resolvers that count a TTL from when they received an answer rather
// than from when it was sent.
const DrainMargin = time.Second

// DrainResult is what a drain or undrain did.
type DrainResult struct {
	Service string `json:"service"`
	// Drained is the drain in force after the call.
	Drained bool `json:"drained"`
	// Changed is false when it was so already.
	Changed bool `json:"changed"`
	// Registered: the instance has a record (its unit is active, past
	// min_active), whose state is State.
	Registered bool           `json:"registered"`
	State      registry.State `json:"state,omitempty"`
	// WrittenAt is when etcd had taken the change: the end of the first
	// reconcile that held it (by the agent's clock).
	WrittenAt time.Time `json:"written_at"`
	// DNSTTL is the agent's dns_ttl, the answer TTL resolvers may cache.
	DNSTTL time.Duration `json:"dns_ttl_ns"`
}

// ForgetBy is when every resolver has forgotten the change's previous
// answer: WrittenAt + DNSTTL + DrainMargin. `servicereg drain -wait`
// returns then.
func (r DrainResult) ForgetBy() time.Time { return r.WrittenAt.Add(r.DNSTTL + DrainMargin) }

// Drain marks service draining and returns once etcd has its record as
// draining (or, when it has no record, once a reconcile confirmed that).
// An unknown service is an error that lists the configured ones; so is ctx
// ending before etcd took the write (the agent keeps trying).
func (a *Agent) Drain(ctx context.Context, service string) (DrainResult, error) {
	return a.setDrain(ctx, service, true)
}

// Undrain ends service's drain and returns once etcd has its record back
// in its checked state.
func (a *Agent) Undrain(ctx context.Context, service string) (DrainResult, error) {
	return a.setDrain(ctx, service, false)
}

func (a *Agent) setDrain(ctx context.Context, service string, drain bool) (DrainResult, error) {
	op := "drain"
	if !drain {
		op = "undrain"
	}
	a.mu.Lock()
	svc, known := a.serviceNamed(service)
	if !known {
		names := a.serviceNames()
		a.mu.Unlock()
		return DrainResult{}, fmt.Errorf("%s: unknown service %q; this agent has %s", op, service, listOrNone(names))
	}
	res := DrainResult{Service: service, DNSTTL: a.cfg.DNSTTL}
	active := a.unitActive(svc)
	switch {
	case drain && active && !a.drained[service]:
		a.drained[service] = true
		res.Changed = true
	case !drain && a.drained[service]:
		delete(a.drained, service)
		res.Changed = true
	}
	res.Drained = a.drained[service]
	a.drainGen++
	gen := a.drainGen
	a.mu.Unlock()
	if res.Changed {
		a.log.Info(op, "service", service)
	}
	a.pokeLoop()
	at, err := a.waitWritten(ctx, gen)
	if err != nil {
		return res, fmt.Errorf("%s %s: etcd has not taken it yet (%w); the agent keeps trying, see its log", op, service, err)
	}
	res.WrittenAt = at
	a.mu.Lock()
	if v, ok := a.view[service]; ok {
		res.Registered, res.State = v.Registered, v.State
	}
	a.mu.Unlock()
	return res, nil
}

// serviceNamed returns the configured or static service of that name;
// a.mu is held.
func (a *Agent) serviceNamed(name string) (Service, bool) {
	for _, s := range a.cfg.Services {
		if s.Name == name {
			return s, true
		}
	}
	for _, s := range a.opts.Static {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// serviceNames lists the configured and static services, sorted; a.mu is
// held.
func (a *Agent) serviceNames() []string {
	var names []string
	for _, s := range a.cfg.Services {
		names = append(names, s.Name)
	}
	for _, s := range a.opts.Static {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "no services configured"
	}
	return strings.Join(names, ", ")
}

// unitActive reports whether svc's unit is present as systemd last said
// (static services always are); a.mu is held.
func (a *Agent) unitActive(svc Service) bool {
	for _, s := range a.opts.Static {
		if s.Name == svc.Name {
			return true
		}
	}
	return Present(a.units[svc.Unit])
}

// noteWritten records that a reconcile of the desired state built at drain
// generation gen has made etcd equal to it at time at, and wakes the
// drains waiting for it.
func (a *Agent) noteWritten(gen uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen < a.writtenGen {
		return
	}
	a.writtenGen, a.writtenAt = gen, at
	close(a.written)
	a.written = make(chan struct{})
}

// waitWritten waits until a reconcile of a desired state built at drain
// generation gen or later has succeeded, and returns when it did.
func (a *Agent) waitWritten(ctx context.Context, gen uint64) (time.Time, error) {
	for {
		a.mu.Lock()
		if a.writtenGen >= gen {
			at := a.writtenAt
			a.mu.Unlock()
			return at, nil
		}
		ch := a.written
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, context.Cause(ctx)
		case <-ch:
		}
	}
}
