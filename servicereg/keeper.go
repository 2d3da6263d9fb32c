package servicereg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// snapshot is the desired state at one moment, computed from the agent's
// inputs (config, unit states, detected addresses) by pure functions.
type snapshot struct {
	cfg     *Config
	keys    registry.Keys
	svcs    map[string]Service // configured and static, by name
	present map[string]bool
	addrs   registry.Addrs
	records map[string]string // key -> JSON value
	rotate  bool
	// complete: every input was known when the snapshot was taken (systemd
	// has answered, or there is nothing to ask it), so writing it is the
	// first full registration.
	complete bool
}

func (a *Agent) desired() (snapshot, error) {
	a.mu.Lock()
	cfg := a.cfg
	units := maps.Clone(a.units)
	detected := a.detected
	rotate := a.rotate
	a.rotate = false
	complete := a.unitsKnown || len(cfg.Services) == 0
	a.mu.Unlock()

	s := snapshot{cfg: cfg, keys: cfg.Keys(), svcs: map[string]Service{}, rotate: rotate, complete: complete}
	all := append(slices.Clone(cfg.Services), a.opts.Static...)
	for _, svc := range all {
		s.svcs[svc.Name] = svc
	}
	s.present = presentServices(cfg.Services, a.opts.Static, units)
	s.addrs = SortAddrs(detected, cfg.Networks, cfg.Addrs)
	a.m.unitPresent.Reset()
	for _, svc := range cfg.Services {
		v := 0.0
		if s.present[svc.Name] {
			v = 1
		}
		a.m.unitPresent.WithLabelValues(svc.Name, svc.Unit).Set(v)
	}
	recs, err := desiredRecords(s.keys, cfg.Host, s.addrs, all, s.present)
	if err != nil {
		return s, err
	}
	s.records = recs
	return s, nil
}

// keep is the agent's main loop. It owns the lease: it grants one, keeps it
// alive, and after every change of the inputs (a poke), every lease grant and
// every resync interval it reconciles etcd with the desired state. Every
// failure is retried with backoff, so an etcd outage, a lost lease or a
// partition heal by themselves. On return it revokes the lease.
func (a *Agent) keep(ctx context.Context) {
	var (
		lease    clientv3.LeaseID
		ka       <-chan *clientv3.LeaseKeepAliveResponse
		kaCancel = context.CancelFunc(func() {})
		bo       = backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
		retry    <-chan time.Time
		dirty    = true
		snap     snapshot
		havePrev bool
		prevSnap snapshot
		written  = map[string]bool{} // services registered by the last good reconcile
		failing  bool
	)
	verify := time.NewTicker(a.resyncEvery)
	defer verify.Stop()

	trouble := func(op string, err error) {
		a.m.etcdErrors.WithLabelValues(op).Inc()
		err = a.explain(ctx, op, err, !failing)
		a.health.fail(err)
		if !failing {
			if !isDenied(err) { // explain logged a refusal already
				a.log.Warn("etcd operation failed; retrying with backoff", "op", op, "err", err)
			}
			failing = true
		}
		retry = time.After(retryDelay(bo.next(), snap.cfg.TTL))
	}
	fine := func() {
		a.health.ok(time.Now())
		if failing {
			a.log.Info("etcd reachable again")
			failing = false
		}
		bo.reset()
	}
	dropLease := func() {
		kaCancel()
		ka, lease = nil, 0
		a.m.leaseHeld.Set(0)
		a.health.setLease(false)
		clear(written)
		for _, h := range a.hooks {
			h.leaseChanged(ctx, 0)
		}
	}

	for ctx.Err() == nil {
		if dirty {
			s, err := a.desired()
			if err != nil {
				// Normalize checked every input; this is a bug, not a state.
				a.log.Error("cannot build the desired records", "err", err)
			} else {
				snap = s
				a.observe(ctx, havePrev, prevSnap, snap)
				prevSnap, havePrev = snap, true
			}
			if snap.rotate && lease != 0 {
				a.revoke(lease)
				a.log.Info("host, prefix or ttl changed: moved to a new lease", "host", snap.cfg.Host, "prefix", snap.cfg.Prefix)
				dropLease()
			}
		}
		if snap.cfg == nil {
			// No desired state could be built yet (logged above); wait
			// for the next change.
			select {
			case <-ctx.Done():
			case <-a.poke:
			}
			continue
		}
		if lease == 0 && retry == nil {
			id, kch, cancel, err := a.grant(ctx, snap.cfg.TTL)
			if err != nil {
				trouble("grant", err)
			} else {
				lease, ka, kaCancel = id, kch, cancel
				fine()
				a.m.leaseHeld.Set(1)
				a.m.leaseGrants.Inc()
				a.health.setLease(true)
				a.log.Info("etcd lease granted", "lease", fmt.Sprintf("%x", int64(id)), "ttl", snap.cfg.TTL)
				for _, h := range a.hooks {
					h.leaseChanged(ctx, id)
				}
				dirty = true
			}
		}
		if lease != 0 && dirty && retry == nil && snap.records != nil {
			err := a.reconcile(ctx, lease, snap)
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				a.m.leaseLosses.Inc()
				a.log.Warn("etcd lease is gone; granting a new one", "lease", fmt.Sprintf("%x", int64(lease)))
				dropLease()
				continue // grant at once; a failing grant backs off
			case err != nil:
				trouble("write", err)
			default:
				fine()
				a.cleared()
				dirty = false
				a.m.lastWrite.SetToCurrentTime()
				a.logRegistered(snap, written)
				if snap.complete {
					a.readyOnce.Do(func() { close(a.ready) })
				}
			}
		}

		select {
		case <-ctx.Done():
		case <-a.poke:
			dirty = true
		case <-retry:
			retry = nil
			dirty = true
		case <-verify.C:
			dirty = true
		case reply := <-a.ping:
			close(reply)
		case r, ok := <-ka:
			if ok && r != nil {
				a.health.alive(time.Now())
				continue
			}
			if ctx.Err() != nil {
				break // the keepalive ended because the agent stops
			}
			a.m.leaseLosses.Inc()
			a.log.Warn("etcd lease lost (expired or keepalive failed); granting a new one and writing everything again",
				"lease", fmt.Sprintf("%x", int64(lease)))
			dropLease()
			dirty = true
		}
	}
	kaCancel()
	for _, h := range a.hooks {
		h.leaseChanged(ctx, 0)
	}
	if lease != 0 {
		a.revoke(lease)
		a.log.Info("stopped: lease revoked, this host's names are gone", "host", snap.cfg.Host)
	}
	a.m.leaseHeld.Set(0)
}

// observe logs changes of the host's addresses and tells the hooks about
// services that became present or absent.
func (a *Agent) observe(ctx context.Context, havePrev bool, prev, cur snapshot) {
	if !havePrev || !equalAddrs(prev.addrs, cur.addrs) {
		n := 0
		for _, as := range cur.addrs {
			n += len(as)
		}
		a.m.addrs.Set(float64(n))
		if n == 0 {
			a.log.Warn("no usable host address detected: the host record has none; list them under addrs: in the config")
		} else {
			a.log.Info("host addresses", "addrs", fmt.Sprint(cur.addrs))
		}
	}
	if len(a.hooks) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(cur.svcs))
	for n := range prev.svcs {
		if _, ok := cur.svcs[n]; !ok {
			names = append(names, n)
		}
	}
	for _, n := range names {
		was, is := prev.present[n], cur.present[n]
		if was == is {
			continue
		}
		svc, ok := cur.svcs[n]
		if !ok {
			svc = prev.svcs[n]
		}
		for _, h := range a.hooks {
			h.presenceChanged(ctx, svc, is)
		}
	}
}

// logRegistered logs each service that was registered or deregistered by the
// reconcile that just succeeded.
func (a *Agent) logRegistered(s snapshot, written map[string]bool) {
	n := 0
	for name := range s.svcs {
		if s.present[name] {
			n++
			if !written[name] {
				a.log.Info("registered", "service", name, "host", s.cfg.Host)
				written[name] = true
			}
		}
	}
	for name := range written {
		if !s.present[name] {
			a.log.Info("deregistered", "service", name, "host", s.cfg.Host)
			delete(written, name)
		}
	}
	a.m.registered.Set(float64(n))
}

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
		a.log.Warn("could not revoke the lease; its keys go when it expires", "lease", fmt.Sprintf("%x", int64(lease)), "err", err)
	}
}

// reconcile makes this host's subtree in etcd equal to the desired records:
// it reads what is there, writes what is missing, different or on another
// lease, and deletes the host's own host and instance keys that should not be
// there. Keys of other hosts are never touched (the range is the host's own
// subtree), nor keys of shapes it does not know.
func (a *Agent) reconcile(ctx context.Context, lease clientv3.LeaseID, s snapshot) error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), etcdOpTimeout)
	defer cancel()
	host := s.cfg.Host
	dir := s.keys.HostDir(host)
	resp, err := a.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return onKey("read", dir, err)
	}
	type have struct {
		value string
		lease clientv3.LeaseID
	}
	actual := make(map[string]have, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		actual[string(kv.Key)] = have{string(kv.Value), clientv3.LeaseID(kv.Lease)}
	}
	keys := slices.Collect(maps.Keys(s.records))
	sort.Strings(keys)
	for _, k := range keys {
		v := s.records[k]
		if h, ok := actual[k]; ok && h.value == v && h.lease == lease {
			continue
		}
		if _, err := a.cli.Put(ctx, k, v, clientv3.WithLease(lease)); err != nil {
			return onKey("write", k, err)
		}
	}
	for k := range actual {
		if _, want := s.records[k]; want {
			continue
		}
		key, err := s.keys.Parse(k)
		if err != nil || key.Host != host || (key.Kind != registry.KindHost && key.Kind != registry.KindInstance) {
			continue
		}
		if _, err := a.cli.Delete(ctx, k); err != nil {
			return onKey("delete stray", k, err)
		}
	}
	return nil
}
