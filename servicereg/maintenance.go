package servicereg

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/registry"
)

// Maintenance (docs/DESIGN.md, "Health"): an operator takes a host, or one
// service on it, out of service with `rollcall maint`, which writes
// registry.Maintenance records under P/maintenance/<host>[/<service>]. The
// DNS plugin reads them to serve; the agent reads its own host's to stop
// campaigning for master (master.go) and to show them in /status. It never
// writes them (hosts may not: deploy/rbac.sh).
//
// The agent follows them with internal/regwatch, the project's one
// list-then-watch loop, rather than a bare watch as ownwatch.go does: a
// bare watch would miss records written before it started and, after a
// compaction, deletes made while it was away; regwatch lists first and
// lists again after a compaction, so the agent's copy is always etcd's.

// maintProgressEvery paces regwatch's freshness read for this watch. The
// loader of the DNS plugin reads every 2s because stale answers cost
// clients; here staleness costs at most a late resignation, and every
// host runs one, so a fleet of agents adds little load to etcd.
const maintProgressEvery = 30 * time.Second

// maintenanceBook is the agent's copy of its host's maintenance records.
type maintenanceBook struct {
	mu sync.Mutex
	// known: the first list is in. Until then the agent does not campaign:
	// a host in maintenance must not win an election while it starts.
	known   bool
	records map[string]registry.Maintenance // by service; "" is the whole host
}

// snapshot returns whether the records are known, and a copy of them.
func (m *maintenanceBook) snapshot() (bool, map[string]registry.Maintenance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known, maps.Clone(m.records)
}

// forget drops the records before the watch starts over (the host or the
// prefix changed on reload): until the next list nothing is known.
func (m *maintenanceBook) forget() {
	m.mu.Lock()
	m.known, m.records = false, nil
	m.mu.Unlock()
}

// maintenanceFor returns the maintenance in force for service at now, and
// its scope ("host" or "service"); nil when none. The host's wins: it
// takes every service out.
func maintenanceFor(recs map[string]registry.Maintenance, service string, now time.Time) (*registry.Maintenance, string) {
	if m, ok := recs[""]; ok && m.Active(now) {
		return &m, "host"
	}
	if m, ok := recs[service]; ok && m.Active(now) {
		return &m, "service"
	}
	return nil, ""
}

// nextMaintenanceEnd returns the earliest end of a maintenance still in
// force at now (zero: none ends by itself), when the agent must look
// again: an expired record counts as absent without anyone deleting it.
func nextMaintenanceEnd(recs map[string]registry.Maintenance, now time.Time) time.Time {
	var next time.Time
	for _, m := range recs {
		if m.Until == 0 || !m.Active(now) {
			continue
		}
		if end := time.Unix(m.Until, 0); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// watchMaintenance follows this host's maintenance records until ctx ends,
// starting over when a reload moves the host's subtree.
func (a *Agent) watchMaintenance(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.Lock()
		k, host := a.cfg.Keys(), a.cfg.Host
		a.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.followMaintenance(wctx, k, host)
		}()
		select {
		case <-ctx.Done():
		case <-a.rewatchMaint:
		}
		cancel()
		<-done
		a.maint.forget()
	}
}

// followMaintenance runs one regwatch.Watcher on the host's maintenance
// records. Its prefix, P/maintenance/<host>, also holds the keys of hosts
// whose names start with this one's (host1 and host10): keys of other
// hosts are ignored, not counted as bad.
func (a *Agent) followMaintenance(ctx context.Context, k registry.Keys, host string) {
	apply := func(key string, value []byte, deleted bool, recs map[string]registry.Maintenance) {
		pk, err := k.Parse(key)
		if err != nil {
			a.m.maintSkipped.Inc()
			a.log.Warn("maintenance key skipped: not a key rollcall knows", "key", key, "err", err)
			return
		}
		if pk.Kind != registry.KindMaintenance || pk.Host != host {
			return
		}
		if deleted {
			delete(recs, pk.Service)
			return
		}
		m, err := registry.DecodeMaintenance(pk, value)
		if err != nil {
			// A bad value over a good one removes the good one: etcd no
			// longer holds it (docs/DESIGN.md, "Keys").
			delete(recs, pk.Service)
			a.m.maintSkipped.Inc()
			a.log.Warn("maintenance record skipped: malformed; it counts as absent until fixed", "key", key, "err", err)
			return
		}
		recs[pk.Service] = *m
	}
	w, err := regwatch.New(a.cli, regwatch.Config{Prefix: k.Maintenance(host, ""), ProgressEvery: maintProgressEvery}, regwatch.Callbacks{
		OnList: func(kvs []*mvccpb.KeyValue, _ int64) {
			recs := map[string]registry.Maintenance{}
			for _, kv := range kvs {
				apply(string(kv.Key), kv.Value, false, recs)
			}
			a.maint.mu.Lock()
			a.maint.known, a.maint.records = true, recs
			a.maint.mu.Unlock()
			a.maintChanged()
		},
		OnEvents: func(evs []*clientv3.Event, _ int64) {
			a.maint.mu.Lock()
			recs := maps.Clone(a.maint.records)
			if recs == nil {
				recs = map[string]registry.Maintenance{}
			}
			for _, ev := range evs {
				apply(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete, recs)
			}
			a.maint.records = recs
			a.maint.mu.Unlock()
			a.maintChanged()
		},
		OnStatus: func(s regwatch.Status, why error) {
			if s == regwatch.Unreachable && why != nil {
				a.log.Debug("maintenance watch: etcd unreachable; keeping the last records", "err", why)
			}
		},
	})
	if err != nil {
		a.log.Error("cannot watch maintenance records", "err", err)
		return
	}
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("maintenance watch ended", "err", err)
	}
}

// maintChanged wakes the main loop to decide the elections again. It does
// not set anything to write: maintenance changes no record of the agent's.
func (a *Agent) maintChanged() {
	select {
	case a.recompute <- struct{}{}:
	default:
	}
}
