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

	"github.com/rollcall/rollcall/registry"
)

// desiredState is what the agent should hold in etcd at one moment, built
// from its inputs (config, unit states, detected addresses) by pure
// functions: the records, and what they were built from.
type desiredState struct {
	cfg     *Config
	keys    registry.Keys
	svcs    map[string]Service // configured and static, by name
	present map[string]bool
	addrs   registry.Addrs
	records map[string]string // key -> JSON value
	// rotate: the host, prefix or TTL changed since the last desired state,
	// so the held lease is given up (keeperState.setDesired).
	rotate bool
	// complete: every input was known when the state was built (systemd
	// has answered, or there is nothing to ask it), so writing it is the
	// first full registration.
	complete bool
}

// computeDesired builds the desired state from the agent's inputs now.
func (a *Agent) computeDesired() (desiredState, error) {
	a.mu.Lock()
	cfg := a.cfg
	units := maps.Clone(a.units)
	detected := a.detected
	rotate := a.rotate
	a.rotate = false
	complete := a.unitsKnown || len(cfg.Services) == 0
	a.mu.Unlock()

	want := desiredState{cfg: cfg, keys: cfg.Keys(), svcs: map[string]Service{}, rotate: rotate, complete: complete}
	all := append(slices.Clone(cfg.Services), a.opts.Static...)
	for _, svc := range all {
		want.svcs[svc.Name] = svc
	}
	want.present = presentServices(cfg.Services, a.opts.Static, units)
	want.addrs = SortAddrs(detected, cfg.Networks, cfg.Addrs)
	a.m.unitPresent.Reset()
	for _, svc := range cfg.Services {
		v := 0.0
		if want.present[svc.Name] {
			v = 1
		}
		a.m.unitPresent.WithLabelValues(svc.Name, svc.Unit).Set(v)
	}
	records, err := desiredRecords(want.keys, cfg.Host, want.addrs, all, want.present)
	if err != nil {
		return want, err
	}
	want.records = records
	return want, nil
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
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-a.poke:
			l.state.inputsChanged()
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
	// renewals delivers the held lease's keepalive answers and is closed when
	// they give up (lease.go); nil while no lease is held.
	renewals     <-chan *clientv3.LeaseKeepAliveResponse
	stopRenewals context.CancelFunc
	retry        <-chan time.Time // fires when a retry is due; nil when none is pending
}

// refreshDesired builds the desired state again, tells the hooks what
// became present or absent, and moves to a new lease when the host, prefix
// or TTL changed.
func (l *keepLoop) refreshDesired(ctx context.Context) {
	a := l.a
	want, err := a.computeDesired()
	if err != nil {
		// Normalize checked every input; this is a bug, not a state.
		a.log.Error("cannot build the desired records", "err", err)
		l.state.desiredUnavailable()
		return
	}
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
	l.renewals, l.stopRenewals = renewals, stopRenewals
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
		if want.complete {
			a.readyOnce.Do(func() { close(a.ready) })
		}
	}
}

// renewed takes a keepalive answer; ok false: the renewals gave up.
func (l *keepLoop) renewed(ctx context.Context, r *clientv3.LeaseKeepAliveResponse, ok bool) {
	a := l.a
	if ok && r != nil {
		a.health.alive(time.Now())
		return
	}
	if ctx.Err() != nil {
		return // the renewals ended because the agent stops
	}
	lost := l.state.leaseLost()
	a.m.leaseLosses.Inc()
	a.log.Warn("etcd lease lost (expired or keepalive failed); granting a new one and writing everything again",
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
	l.renewals = nil
	a.m.leaseHeld.Set(0)
	a.health.setLease(false)
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

// observe logs changes of the host's addresses and tells the hooks about
// services that became present or absent; prev.cfg is nil before the first
// desired state.
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
		was, is := prev.present[name], cur.present[name]
		if was == is {
			continue
		}
		svc, ok := cur.svcs[name]
		if !ok {
			svc = prev.svcs[name]
		}
		for _, h := range a.hooks {
			h.presenceChanged(ctx, svc, is)
		}
	}
}

// grant asks etcd for a lease of ttl and starts its renewals (lease.go),
// which stop when ctx ends or the returned cancel is called.
func (a *Agent) grant(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, context.CancelFunc, error) {
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
