package servicereg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
)

// desiredState is what the agent should hold in etcd at one moment, built
// from its inputs (config, unit states, detected addresses, health,
// drains, maintenance) by pure functions: the records, and what they were
// built from.
type desiredState struct {
	cfg  *Config
	keys registry.Keys
	svcs map[string]Service // configured and static, by name
	// present: the services that have a record (their unit is active and
	// has been for min_active; static ones always).
	present map[string]bool
	// health is the health each present service's record carries.
	health map[string]instanceHealth
	// inService: the present services that are passing or warning and not
	// in maintenance; these campaign for master (master.go). why says, for
	// every other service, why it does not.
	inService map[string]bool
	why       map[string]string
	addrs     registry.Addrs
	records   map[string]string // key -> JSON value
	// recheckAt: the desired state changes by itself then (a unit reaches
	// min_active, a token of the state-write limit is due, a maintenance
	// ends); zero: never.
	recheckAt time.Time
	// gen is the drain generation it was built at (drain.go).
	gen uint64
	// rotate: the host, prefix or TTL changed since the last desired state,
	// so the held lease is given up (keeperState.setDesired).
	rotate bool
	// complete: every input was known when the state was built (systemd
	// has answered, or there is nothing to ask it), so writing it is the
	// first full registration.
	complete bool
}

// computeDesired builds the desired state from the agent's inputs at now.
// Main loop only: it moves the health monitor and the state book.
func (a *Agent) computeDesired(now time.Time) (desiredState, error) {
	a.mu.Lock()
	cfg := a.cfg
	units := maps.Clone(a.units)
	for u, st := range units {
		if _, seen := a.activeSince[u]; Present(st) && !seen {
			a.activeSince[u] = now // never left without a start (presenceMoved sets it)
		}
	}
	since := maps.Clone(a.activeSince)
	detected := a.detected
	rotate := a.rotate
	a.rotate = false
	complete := a.unitsKnown || len(cfg.Services) == 0
	gen := a.drainGen
	drained := map[string]bool{}
	for name := range a.drained {
		if _, ok := a.serviceNamed(name); ok {
			drained[name] = true
		} else {
			delete(a.drained, name) // the service left the config
		}
	}
	a.mu.Unlock()
	maintKnown, maint := a.maint.snapshot()

	want := desiredState{cfg: cfg, keys: cfg.Keys(), svcs: map[string]Service{}, rotate: rotate, complete: complete, gen: gen}
	all := append(slices.Clone(cfg.Services), a.opts.Static...)
	for _, svc := range all {
		want.svcs[svc.Name] = svc
	}
	active := presentServices(cfg.Services, a.opts.Static, units)
	a.syncMonitor(all, active)

	// Registration: active, and for min_active.
	static := map[string]bool{}
	for _, s := range a.opts.Static {
		static[s.Name] = true
	}
	want.present = map[string]bool{}
	minActiveEnd := map[string]time.Time{}
	for _, svc := range all {
		if !active[svc.Name] {
			continue
		}
		if !static[svc.Name] {
			if end, waiting := minActiveWait(svc.MinActive, since[svc.Unit], now); waiting {
				minActiveEnd[svc.Name] = end
				want.recheckAt = earliest(want.recheckAt, end)
				continue
			}
		}
		want.present[svc.Name] = true
	}

	// Health: observed, then paced by the state book.
	obs := make(map[string]observedHealth, len(want.present))
	for name := range want.present {
		st, reason, known := a.monitor.State(name)
		obs[name] = observeHealth(drained[name], len(want.svcs[name].Checks) > 0, st, reason, known)
	}
	a.book.setLimit(now, cfg.StateWriteRate, cfg.StateWriteBurst)
	upd := a.book.update(now, obs)
	want.recheckAt = earliest(want.recheckAt, upd.wakeAt)
	a.m.stateWrites.Add(float64(len(upd.changed)))
	a.m.stateWritesDelayed.Add(float64(len(upd.delayed)))
	want.health = make(map[string]instanceHealth, len(want.present))
	for name := range want.present {
		want.health[name], _ = a.book.health(name)
	}

	// Elections: in service, and not in maintenance.
	want.recheckAt = earliest(want.recheckAt, nextMaintenanceEnd(maint, now))
	want.inService, want.why = map[string]bool{}, map[string]string{}
	for _, svc := range all {
		m, _ := maintenanceFor(maint, svc.Name, now)
		h := want.health[svc.Name]
		switch {
		case !active[svc.Name]:
			want.why[svc.Name] = "unit not active"
		case !want.present[svc.Name]:
			want.why[svc.Name] = "waiting for min_active"
		case !h.State.InService():
			want.why[svc.Name] = "instance " + string(h.State)
		case !maintKnown:
			want.why[svc.Name] = "maintenance records not read yet"
		case m != nil:
			want.why[svc.Name] = "in maintenance: " + m.Reason
		default:
			want.inService[svc.Name] = true
		}
	}

	want.addrs = SortAddrs(detected, cfg.Networks, cfg.Addrs)
	a.m.unitPresent.Reset()
	for _, svc := range cfg.Services {
		v := 0.0
		if active[svc.Name] {
			v = 1
		}
		a.m.unitPresent.WithLabelValues(svc.Name, svc.Unit).Set(v)
	}
	a.m.setInstanceStates(want.health)
	a.setView(now, want, active, drained, minActiveEnd, maint, obs)
	records, err := desiredRecords(want.keys, cfg.Host, want.addrs, all, want.health)
	if err != nil {
		return want, err
	}
	want.records = records
	return want, nil
}

// minActiveWait returns when a unit active since since has been so for
// minActive, and whether that is still to come at now. since is when the
// agent saw the unit become active: for a unit already active when the
// agent started, its first read, so a running unit waits min_active once
// more after an agent restart, and a crashing one never less (zero since
// counts from now for the same reason).
func minActiveWait(minActive time.Duration, since, now time.Time) (end time.Time, waiting bool) {
	if minActive <= 0 {
		return time.Time{}, false
	}
	if since.IsZero() {
		return now.Add(minActive), true
	}
	end = since.Add(minActive)
	return end, now.Before(end)
}

// syncMonitor gives the health monitor the checks of every checked service
// whose unit is active, and takes away the rest. A unit that stops takes
// its checks with it, so that its next start begins critical, as a new
// instance does; a reload that keeps a service's checks (Equal) keeps
// their state. Main loop only.
func (a *Agent) syncMonitor(all []Service, active map[string]bool) {
	keep := map[string]bool{}
	for _, svc := range all {
		if !active[svc.Name] || len(svc.Checks) == 0 {
			continue
		}
		keep[svc.Name] = true
		if old, ok := a.monitored[svc.Name]; ok && slices.EqualFunc(old, svc.Checks, healthcheck.Spec.Equal) {
			continue
		}
		a.monitor.Set(svc.Name, svc.Checks)
		a.monitored[svc.Name] = svc.Checks
	}
	for name := range a.monitored {
		if !keep[name] {
			a.monitor.Remove(name)
			delete(a.monitored, name)
		}
	}
}

// setView stores each service's status for Status (status.go).
func (a *Agent) setView(now time.Time, want desiredState, active, drained map[string]bool, minActiveEnd map[string]time.Time,
	maint map[string]registry.Maintenance, obs map[string]observedHealth) {
	view := make(map[string]instanceView, len(want.svcs))
	for name, svc := range want.svcs {
		v := instanceView{InstanceStatus: InstanceStatus{
			Service: name, Unit: svc.Unit, Active: active[name], Registered: want.present[name],
			Drained: drained[name], InService: want.inService[name], MasterElection: svc.MasterElection,
		}}
		if end, ok := minActiveEnd[name]; ok {
			v.MinActiveLeft, v.minActiveEnd = end.Sub(now), end
		}
		if h, ok := want.health[name]; ok {
			v.State, v.Since, v.Reason = h.State, h.Since, h.Reason
			if o := obs[name]; a.book.pending(name) && (o.State != h.State || o.Reason != h.Reason) {
				v.Pending = &PendingState{State: o.State, Reason: o.Reason}
			}
		}
		if m, scope := maintenanceFor(maint, name, now); m != nil {
			v.Maintenance = &MaintenanceStatus{Scope: scope, Maintenance: *m}
		}
		view[name] = v
	}
	a.mu.Lock()
	a.view = view
	a.mu.Unlock()
}

// earliest returns the earlier of two times, zero meaning never.
func earliest(x, y time.Time) time.Time {
	switch {
	case x.IsZero():
		return y
	case y.IsZero() || x.Before(y):
		return x
	}
	return y
}

// keep is the agent's main loop. It owns the lease: it grants one, keeps it
// alive, and after every change of the inputs (a poke), every lease grant and
// every resync interval it reconciles etcd with the desired state. Every
// failure is retried with backoff, so an etcd outage, a lost lease or a
// partition heal by themselves. On return it revokes the lease. What to do
// when is keeperState's (keeperstate.go); this loop only waits for events
// and carries out its answers (keepLoop).
func (a *Agent) keep(ctx context.Context) {
	l := &keepLoop{a: a, state: newKeeperState(), stopRenewals: func() {}}
	verify := time.NewTicker(a.resyncEvery)
	defer verify.Stop()
	defer l.recheck.stop()
	for ctx.Err() == nil {
		if l.state.stale {
			l.refreshDesired(ctx)
		}
		switch l.state.next() {
		case stepGrant:
			l.grantLease(ctx)
			continue
		case stepReconcile:
			l.writeDesired(ctx)
			continue
		case stepIdle:
			// Only a change of the inputs can help (the error is logged).
			// Pings go unanswered meanwhile: a loop that cannot build its
			// records is stuck, and the watchdog restarts it as such.
			select {
			case <-ctx.Done():
			case <-a.poke:
				l.state.inputsChanged()
			case <-a.recompute:
				l.state.inputsChanged()
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-a.poke:
			l.state.inputsChanged()
		case <-a.recompute:
			l.state.recompute()
		case <-l.recheck.C():
			l.state.recompute()
		case <-verify.C:
			l.state.inputsChanged()
		case <-l.retry:
			l.retry = nil
			l.state.retryDue()
		case reply := <-a.ping:
			close(reply)
		case r, ok := <-l.renewals:
			l.renewed(ctx, r, ok)
		}
	}
	l.shutdown(ctx)
}

// keepLoop is one run of keep: the state and what carries out its answers,
// the held lease's renewals and the retry timer.
type keepLoop struct {
	a     *Agent
	state *keeperState
	// renewals delivers the held lease's keepalive answers and lapses, and
	// is closed when etcd says the lease is gone (lease.go); nil while no
	// lease is held.
	renewals     <-chan renewal
	stopRenewals context.CancelFunc
	// lapsed: the held lease went its whole TTL without a renewal, so it is
	// taken as possibly gone (hooks, /healthz) until a renewal succeeds.
	lapsed bool
	retry  <-chan time.Time // fires when a retry is due; nil when none is pending
	// recheck fires when the desired state changes by itself
	// (desiredState.recheckAt).
	recheck alarm
}

// alarm is a timer set to one moment at a time; its zero value is unset.
type alarm struct {
	t  *time.Timer
	at time.Time
}

// set arms the alarm for at (zero: disarms it).
func (al *alarm) set(at time.Time) {
	if at.Equal(al.at) {
		return
	}
	al.stop()
	al.at = at
	if !at.IsZero() {
		al.t = time.NewTimer(time.Until(at))
	}
}

func (al *alarm) stop() {
	if al.t != nil {
		al.t.Stop()
		al.t = nil
	}
	al.at = time.Time{}
}

// C is the channel that fires; nil (never fires) while unset.
func (al *alarm) C() <-chan time.Time {
	if al.t == nil {
		return nil
	}
	return al.t.C
}

// refreshDesired builds the desired state again, tells the hooks what
// became present or absent, and moves to a new lease when the host, prefix
// or TTL changed.
func (l *keepLoop) refreshDesired(ctx context.Context) {
	a := l.a
	want, err := a.computeDesired(time.Now())
	l.recheck.stop() // it fired, or it is set again below
	if err != nil {
		// Normalize checked every input; this is a bug, not a state.
		a.log.Error("cannot build the desired records", "err", err)
		l.state.desiredUnavailable()
		return
	}
	l.recheck.set(want.recheckAt)
	prev := l.state.want
	revoke := l.state.setDesired(want)
	a.observe(ctx, prev, want)
	if revoke != 0 {
		a.revoke(revoke)
		a.log.Info("host, prefix or ttl changed: moved to a new lease", "host", want.cfg.Host, "prefix", want.cfg.Prefix)
		l.leaseDropped(ctx)
	}
}

// grantLease asks etcd for a lease and starts renewing it.
func (l *keepLoop) grantLease(ctx context.Context) {
	a := l.a
	ttl := l.state.want.cfg.TTL
	id, renewals, stopRenewals, err := a.grant(ctx, ttl)
	if err != nil {
		l.etcdFailed(ctx, "grant", err)
		return
	}
	l.renewals, l.stopRenewals, l.lapsed = renewals, stopRenewals, false
	l.etcdAnswered(l.state.granted(id))
	a.m.leaseHeld.Set(1)
	a.m.leaseGrants.Inc()
	a.health.setLease(true)
	a.log.Info("etcd lease granted", "lease", leaseHex(id), "ttl", ttl)
	for _, h := range a.hooks {
		h.leaseChanged(ctx, id)
	}
}

// writeDesired reconciles etcd with the desired state on the held lease.
func (l *keepLoop) writeDesired(ctx context.Context) {
	a := l.a
	want := l.state.want
	err := a.reconcile(ctx, l.state.lease, want)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		lost := l.state.leaseLost()
		a.m.leaseLosses.Inc()
		a.log.Warn("etcd lease is gone; granting a new one", "lease", leaseHex(lost))
		l.leaseDropped(ctx)
	case err != nil:
		l.etcdFailed(ctx, "write", err)
	default:
		done := l.state.written()
		l.etcdAnswered(done.recovered)
		a.cleared()
		a.m.lastWrite.SetToCurrentTime()
		for _, name := range done.registered {
			a.log.Info("registered", "service", name, "host", want.cfg.Host)
		}
		for _, name := range done.deregistered {
			a.log.Info("deregistered", "service", name, "host", want.cfg.Host)
		}
		a.m.registered.Set(float64(done.present))
		a.noteWritten(want.gen, time.Now())
		if want.complete {
			a.readyOnce.Do(func() { close(a.ready) })
		}
	}
}

// renewed takes a keepalive report; ok false: etcd said the lease is gone.
//
// A lapse (no renewal for a whole TTL) is not a loss: the renewals go on,
// since etcd may still hold the lease (lease.go). But it may not, and another
// host may be master meanwhile, so the hooks are told the lease is gone, and
// told of it again, as a new lease, when a renewal comes back.
func (l *keepLoop) renewed(ctx context.Context, r renewal, ok bool) {
	a := l.a
	switch {
	case ok && !r.lapsed():
		a.health.alive(time.Now())
		if l.lapsed {
			a.log.Info("etcd lease renewed again: etcd kept it", "lease", leaseHex(l.state.lease))
			l.setLapsed(ctx, false)
		}
		return
	case ok:
		if !l.lapsed {
			a.log.Warn("etcd lease not renewed for a whole TTL; still renewing it, as etcd may have kept it",
				"lease", leaseHex(l.state.lease))
			l.setLapsed(ctx, true)
		}
		return
	}
	if ctx.Err() != nil {
		return // the renewals ended because the agent stops
	}
	lost := l.state.leaseLost()
	a.m.leaseLosses.Inc()
	a.log.Warn("etcd lease lost (etcd says it expired); granting a new one and writing everything again",
		"lease", leaseHex(lost))
	l.leaseDropped(ctx)
}

// etcdFailed reports a failed etcd operation (op: grant or write), explained
// (denied.go), and arms the retry timer.
func (l *keepLoop) etcdFailed(ctx context.Context, op string, err error) {
	a := l.a
	a.m.etcdErrors.WithLabelValues(op).Inc()
	f := l.state.failed(isDenied(err))
	err = a.explain(ctx, op, err, f.first)
	a.health.fail(err)
	if f.warn {
		a.log.Warn("etcd operation failed; retrying with backoff", "op", op, "err", err)
	}
	l.retry = time.After(f.retryIn)
}

// setLapsed records that the held lease lapsed or was renewed again after a
// lapse: the lease_held gauge, /healthz and the hooks, which take a lapsed
// lease as gone (id 0) and its renewal as the lease given back.
func (l *keepLoop) setLapsed(ctx context.Context, lapsed bool) {
	a := l.a
	l.lapsed = lapsed
	a.health.setLapsed(lapsed)
	id := l.state.lease
	if lapsed {
		a.m.leaseHeld.Set(0)
		id = 0
	} else {
		a.m.leaseHeld.Set(1)
	}
	for _, h := range a.hooks {
		h.leaseChanged(ctx, id)
	}
}

// etcdAnswered notes a successful etcd operation; recovered: it ends an outage.
func (l *keepLoop) etcdAnswered(recovered bool) {
	l.a.health.ok(time.Now())
	if recovered {
		l.a.log.Info("etcd reachable again")
	}
}

// leaseDropped stops renewing the lease the state gave up and tells the
// metrics, /healthz and the hooks.
func (l *keepLoop) leaseDropped(ctx context.Context) {
	a := l.a
	l.stopRenewals()
	l.renewals, l.lapsed = nil, false
	a.m.leaseHeld.Set(0)
	a.health.setLease(false)
	a.health.setLapsed(false)
	for _, h := range a.hooks {
		h.leaseChanged(ctx, 0)
	}
}

// shutdown ends the run: the hooks let go of the lease, then it is revoked so
// that every name of the host vanishes at once.
func (l *keepLoop) shutdown(ctx context.Context) {
	a := l.a
	l.stopRenewals()
	for _, h := range a.hooks {
		h.leaseChanged(ctx, 0)
	}
	if lease := l.state.stop(); lease != 0 {
		a.revoke(lease)
		a.log.Info("stopped: lease revoked, this host's names are gone", "host", l.state.want.cfg.Host)
	}
	a.m.leaseHeld.Set(0)
}

// leaseHex is a lease ID as etcdctl prints it.
func leaseHex(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }

// observe logs changes of the host's addresses and of instance states, and
// tells the hooks about services that came into service or left it
// (present, passing or warning, not in maintenance); prev.cfg is nil
// before the first desired state.
func (a *Agent) observe(ctx context.Context, prev, cur desiredState) {
	if prev.cfg == nil || !equalAddrs(prev.addrs, cur.addrs) {
		count := 0
		for _, addrs := range cur.addrs {
			count += len(addrs)
		}
		a.m.addrs.Set(float64(count))
		if count == 0 {
			a.log.Warn("no usable host address detected: the host record has none; list them under addrs: in the config")
		} else {
			a.log.Info("host addresses", "addrs", fmt.Sprint(cur.addrs))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cur.health)) {
		was, had := prev.health[name]
		is := cur.health[name]
		if had && was.State != is.State {
			a.log.Info("instance state", "service", name, "state", is.State, "was", was.State, "reason", is.Reason)
		} else if !had && is.State != registry.StatePassing {
			a.log.Info("instance state", "service", name, "state", is.State, "reason", is.Reason)
		}
	}
	if len(a.hooks) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(cur.svcs))
	for name := range prev.svcs {
		if _, ok := cur.svcs[name]; !ok {
			names = append(names, name)
		}
	}
	for _, name := range names {
		was, is := prev.inService[name], cur.inService[name]
		if was == is {
			continue
		}
		svc, ok := cur.svcs[name]
		why := cur.why[name]
		if !ok {
			svc, why = prev.svcs[name], "removed from the config"
		}
		for _, h := range a.hooks {
			h.inServiceChanged(ctx, svc, is, why)
		}
	}
}

// grant asks etcd for a lease of ttl and starts its renewals (lease.go),
// which stop when ctx ends or the returned cancel is called.
func (a *Agent) grant(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, <-chan renewal, context.CancelFunc, error) {
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), etcdOpTimeout)
	defer cancel()
	resp, err := a.cli.Grant(gctx, int64(ttl/time.Second))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("grant a %v lease: %w", ttl, err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	return resp.ID, a.keepAlive(kctx, resp.ID, time.Duration(resp.TTL)*time.Second), kcancel, nil
}

// revoke ends the lease so that every key on it goes at once. It runs when
// the run context is already done, so it carries its own deadline.
func (a *Agent) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := a.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		a.m.etcdErrors.WithLabelValues("revoke").Inc()
		a.log.Warn("could not revoke the lease; its keys go when it expires", "lease", leaseHex(lease), "err", err)
	}
}

// reconcile makes this host's subtree in etcd equal to the desired records:
// it reads what is there and carries out recordChanges (keeperstate.go):
// writes what is missing, different or on another lease, and deletes the
// host's own host and instance keys that should not be there. The range read
// is the host's own subtree, so keys of other hosts are never touched.
func (a *Agent) reconcile(ctx context.Context, lease clientv3.LeaseID, want desiredState) error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), etcdOpTimeout)
	defer cancel()
	dir := want.keys.HostDir(want.cfg.Host)
	resp, err := a.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return onKey("read", dir, err)
	}
	held := make(map[string]heldRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		held[string(kv.Key)] = heldRecord{value: string(kv.Value), lease: clientv3.LeaseID(kv.Lease)}
	}
	writes, deletes := recordChanges(want, held, lease)
	for _, key := range writes {
		if _, err := a.cli.Put(ctx, key, want.records[key], clientv3.WithLease(lease)); err != nil {
			return onKey("write", key, err)
		}
	}
	for _, key := range deletes {
		if _, err := a.cli.Delete(ctx, key); err != nil {
			return onKey("delete stray", key, err)
		}
	}
	return nil
}
