package servicereg

import (
	"maps"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/rollcall/rollcall/registry"
)

// instanceHealth is what an instance record says of its instance's health
// (registry.Instance State, Since, Reason).
type instanceHealth struct {
	State registry.State
	// Since is the Unix second of the last change of State: kept across
	// reconciles, lease grants and changes of Reason alone, so that a
	// reader can tell how long an instance has been in its state.
	Since int64
	// Reason says why, for a critical instance only.
	Reason string
}

// observedHealth is an instance's health as the agent sees it now, before
// the state-write rate limit decides when etcd gets it.
type observedHealth struct {
	State  registry.State
	Reason string
}

// notCheckedYet is the reason of a checked instance the health monitor has
// no word on yet: the agent never writes passing from a default.
const notCheckedYet = "health checks have not run yet"

// observeHealth is the one decision of an instance's state: drained is
// draining whatever the checks say (an operator took it out on purpose);
// without checks an active unit is passing; with checks it is the
// monitor's state (critical while the monitor does not know the service
// yet: a restarted agent starts critical, never passing-then-critical).
func observeHealth(drained, checked bool, st registry.State, reason string, known bool) observedHealth {
	switch {
	case drained:
		return observedHealth{State: registry.StateDraining}
	case !checked:
		return observedHealth{State: registry.StatePassing}
	case !known:
		return observedHealth{State: registry.StateCritical, Reason: notCheckedYet}
	}
	o := observedHealth{State: st.Effective()}
	if registry.CheckState(o.State) != nil || o.State == registry.StateDraining {
		// Only the agent drains; anything else from the monitor is a
		// bug, and critical is the state that serves nobody by mistake.
		return observedHealth{State: registry.StateCritical, Reason: registry.ReasonText("health monitor reported state " + string(st))}
	}
	if o.State == registry.StateCritical {
		o.Reason = registry.ReasonText(reason)
		if o.Reason == "" {
			o.Reason = "a health check failed"
		}
	} else {
		o.Reason = ""
	}
	return o
}

// stateBook decides which health each registered instance's record
// carries: the state-write rate limit (docs/DESIGN.md, "Health"). It holds
// no etcd and no clock of its own (update takes now), so that its rules
// are tested without either (healthstate_test.go). Only the main loop
// touches it.
//
// The rules:
//   - A newly registered instance's record carries its observed health at
//     once: registering is a presence change, never delayed.
//   - A change to or from draining goes at once: an operator asked for it,
//     and `drain -wait` is timed from the write.
//   - Any other change of state or reason takes a token from one bucket
//     per agent (rate per second, burst). One token lets every change
//     waiting at that moment through together, in one reconcile. Without
//     a token the changes wait, and when a token is due the latest
//     observed health goes: a check that flapped ten times meanwhile costs
//     one write, not ten. So a flapping check on every host cannot flood
//     etcd, while the few changes of a deploy go through unpaced.
type stateBook struct {
	lim *rate.Limiter
	pub map[string]instanceHealth // what each registered instance's record carries, by service
	// held: services whose change waits for a token, each counted once in
	// the delayed metric however long it waits (a change that flapped back
	// meanwhile is no longer held; flapping away again is a new change).
	held map[string]bool
	// due: when a token is expected for the held changes (zero: none held).
	due time.Time
}

func newStateBook(perSecond float64, burst int) *stateBook {
	return &stateBook{lim: rate.NewLimiter(limitOf(perSecond), max(burst, 1)), pub: map[string]instanceHealth{}, held: map[string]bool{}}
}

// limitOf turns the configured rate into a Limit; zero or less is taken
// as no limit (Normalize refuses it; a Config built in code may hold it).
func limitOf(perSecond float64) rate.Limit {
	if perSecond <= 0 {
		return rate.Inf
	}
	return rate.Limit(perSecond)
}

// setLimit applies a reloaded rate and burst; tokens already in the bucket
// stay.
func (b *stateBook) setLimit(now time.Time, perSecond float64, burst int) {
	if b.lim.Limit() != limitOf(perSecond) {
		b.lim.SetLimitAt(now, limitOf(perSecond))
	}
	if b.lim.Burst() != max(burst, 1) {
		b.lim.SetBurstAt(now, max(burst, 1))
	}
}

// bookUpdate is what one update changed.
type bookUpdate struct {
	// changed: registered instances whose record now carries another
	// health (first registrations are not counted), sorted.
	changed []string
	// delayed: changes that began waiting for a token in this update, sorted.
	delayed []string
	// wakeAt: when to update again for the changes still held (zero: none).
	wakeAt time.Time
}

// update takes the observed health of every instance that has a record
// now (obs, by service) and returns what changed; the records then carry
// health(). Instances not in obs are no longer registered and forgotten:
// a registration after that starts afresh.
func (b *stateBook) update(now time.Time, obs map[string]observedHealth) bookUpdate {
	var u bookUpdate
	for name := range b.pub {
		if _, ok := obs[name]; !ok {
			delete(b.pub, name)
			delete(b.held, name)
		}
	}
	var waiting []string
	for _, name := range slices.Sorted(maps.Keys(obs)) {
		o := obs[name]
		p, ok := b.pub[name]
		switch {
		case !ok:
			b.pub[name] = instanceHealth{State: o.State, Since: now.Unix(), Reason: o.Reason}
		case p.State == o.State && p.Reason == o.Reason:
			delete(b.held, name) // it flapped back: nothing to write
		case p.State == registry.StateDraining || o.State == registry.StateDraining:
			b.apply(now, name, o)
			u.changed = append(u.changed, name)
		default:
			waiting = append(waiting, name)
		}
	}
	if len(waiting) == 0 {
		b.due = time.Time{}
		return u
	}
	if b.lim.AllowN(now, 1) {
		for _, name := range waiting {
			b.apply(now, name, obs[name])
		}
		u.changed = append(u.changed, waiting...)
		slices.Sort(u.changed)
		b.due = time.Time{}
		return u
	}
	for _, name := range waiting {
		if !b.held[name] {
			b.held[name] = true
			u.delayed = append(u.delayed, name)
		}
	}
	b.due = now.Add(b.tokenIn(now))
	u.wakeAt = b.due
	return u
}

// apply puts an observed health into a record: since moves only when the
// state does.
func (b *stateBook) apply(now time.Time, name string, o observedHealth) {
	p := b.pub[name]
	if p.State != o.State {
		p.Since = now.Unix()
	}
	p.State, p.Reason = o.State, o.Reason
	b.pub[name] = p
	delete(b.held, name)
}

// tokenIn is how long until the bucket holds a whole token again, at
// least a millisecond so that a wake-up never spins.
func (b *stateBook) tokenIn(now time.Time) time.Duration {
	missing := 1 - b.lim.TokensAt(now)
	d := time.Duration(missing / float64(b.lim.Limit()) * float64(time.Second))
	return max(d, time.Millisecond)
}

// health returns the health a registered instance's record carries.
func (b *stateBook) health(name string) (instanceHealth, bool) {
	p, ok := b.pub[name]
	return p, ok
}

// pending reports whether a service's change waits for a token.
func (b *stateBook) pending(name string) bool { return b.held[name] }
