package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/registry"
)

// simAgent is one simulated host: a lease of agentTTL carrying its host
// record, renewed as servicereg renews it (servicereg/lease.go), and
// granted again with its record rewritten when etcd says it is gone (as the
// agent's main loop does). It does nothing else: no systemd, no instances.
type simAgent struct {
	host string
	cli  *clientv3.Client
	keys registry.Keys
	farm *agentFarm

	lastOK atomic.Int64 // when the last renewal succeeded, as an offset from the farm's zero
}

// agentFarm is the simulated agents of one run and what they counted.
type agentFarm struct {
	base   time.Time
	agents []*simAgent

	renewals  atomic.Int64 // renewals that succeeded
	failures  atomic.Int64 // renewals that failed (each retried)
	lapsed    atomic.Int64 // times an agent went a whole TTL without a renewal (by its clock; it renews on)
	regrants  atomic.Int64 // leases granted again after etcd said one was gone
	grants    atomic.Int64 // grants etcd answered, first registrations included
	writeErrs atomic.Int64 // grants and host-record writes that failed (each retried)

	mu      sync.Mutex
	latency *Histogram // of the renewals that succeeded
}

// The agent's lease timing, as servicereg uses it (servicereg/lease.go:
// renewals every TTL/3, each bounded by renewTimeout, failures retried by
// renewRetry, and past the lease's deadline bounded by lapsedTimeout and
// retried by lapsedRetry; servicereg/retry.go: grants and writes retried by
// retryPolicy, each bounded by etcdOpTimeout). The functions there are the
// agent's own, unexported; these are the same numbers for the default TTL.
const agentTTL = 10 * time.Second

var (
	agentRenewTimeout  = max(agentTTL/6, 500*time.Millisecond)
	agentLapsedTimeout = max(agentTTL/3, agentRenewTimeout)
	agentRenewRetry    = backoff.Policy{Min: 50 * time.Millisecond, Base: 200 * time.Millisecond, Max: max(agentTTL/10, 200*time.Millisecond)}
	agentLapsedRetry   = backoff.Policy{Min: agentRenewRetry.Min, Base: agentRenewRetry.Max, Max: max(agentTTL/2, agentRenewRetry.Max)}
	agentWriteRetry    = backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: min(5*time.Second, agentTTL/2)}
	agentOpTimeout     = 5 * time.Second
)

// run registers the agent and keeps its lease alive until ctx ends; ready
// is called once, after the first registration.
//
// The first renewal comes at a random point of the first TTL/3, not at its
// end: the agents of a run register within seconds of each other, and would
// otherwise renew in bursts, where real hosts, started at any time, renew
// spread evenly over the period.
func (a *simAgent) run(ctx context.Context, ready func()) {
	first := true
	for ctx.Err() == nil {
		id, err := a.register(ctx)
		if err != nil {
			return // ctx ended
		}
		wait := agentTTL / 3
		if first {
			ready()
			first = false
			wait = rand.N(wait) + time.Millisecond
		}
		if a.keepAlive(ctx, id, wait) {
			a.farm.regrants.Add(1)
		}
	}
}

// register grants a lease and writes the host record on it, as the agent's
// main loop does: a failed grant or write is retried with the agent's
// back-off (reset by a grant), a write on the same lease unless etcd says the
// lease is gone, until both succeed or ctx ends.
func (a *simAgent) register(ctx context.Context) (clientv3.LeaseID, error) {
	retry := backoff.New(agentWriteRetry)
	ttl := int64(agentTTL / time.Second)
	v, err := registry.EncodeHost(&registry.Host{Name: a.host, Addrs: registry.Addrs{registry.PublicNetwork: {netip.MustParseAddr("198.51.100.7")}}})
	if err != nil {
		return 0, err
	}
	var id clientv3.LeaseID
	for {
		if id == 0 {
			gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), agentOpTimeout)
			l, err := a.cli.Grant(gctx, ttl)
			cancel()
			if err == nil {
				id = l.ID
				a.farm.grants.Add(1)
				retry.Reset()
			}
		}
		if id != 0 {
			pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), agentOpTimeout)
			_, err = a.cli.Put(pctx, a.keys.Host(a.host), string(v), clientv3.WithLease(id))
			cancel()
			if err == nil {
				a.lastOK.Store(int64(time.Since(a.farm.base)))
				return id, nil
			}
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				id = 0
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		a.farm.writeErrs.Add(1)
		if retry.Wait(ctx) != nil {
			return 0, ctx.Err()
		}
	}
}

// keepAlive renews lease id every TTL/3 as servicereg does (the first
// renewal after wait), each renewal a single request on a stream of its
// own, until ctx ends (false) or etcd says the lease is gone (true). A whole
// TTL without a renewal is counted as a lapse, once, and the renewals go on:
// etcd may still hold the lease (a new leader gives every lease a fresh TTL).
func (a *simAgent) keepAlive(ctx context.Context, id clientv3.LeaseID, wait time.Duration) bool {
	deadline := time.Now().Add(agentTTL)
	lapsed := false
	timeout := agentRenewTimeout
	retry := backoff.New(agentRenewRetry)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		r, err := a.cli.KeepAliveOnce(rctx, id)
		cancel()
		switch {
		case err == nil:
			now := time.Now()
			deadline = sent.Add(time.Duration(r.TTL) * time.Second)
			lapsed = false
			wait, timeout = agentTTL/3, agentRenewTimeout
			retry = backoff.New(agentRenewRetry)
			a.lastOK.Store(int64(now.Sub(a.farm.base)))
			a.farm.renewals.Add(1)
			a.farm.mu.Lock()
			a.farm.latency.Add(now.Sub(sent))
			a.farm.mu.Unlock()
			continue
		case ctx.Err() != nil:
			return false
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			a.farm.failures.Add(1)
			return true
		}
		a.farm.failures.Add(1)
		wait = retry.Next()
		if !lapsed && !time.Now().Before(deadline) {
			lapsed = true
			a.farm.lapsed.Add(1)
			retry = backoff.New(agentLapsedRetry)
			wait, timeout = retry.Next(), agentLapsedTimeout
		}
		if !lapsed {
			wait = min(wait, time.Until(deadline))
		}
	}
}

// startFarm starts n simulated agents of hosts "a-<i>" under keys, perClient
// to an etcd client of endpoints, at most limit registering at once, and
// waits until every one has registered. Stop ends them (cancel ctx) and
// closes the clients with the returned function. When within passes first
// (an etcd that cannot keep up with the agents already running), it stops
// starting agents and returns the farm of those started, with an error
// saying how many registered; only ctx ending returns no farm.
func startFarm(ctx context.Context, n, perClient, limit int, endpoints []string, keys registry.Keys, within time.Duration) (*agentFarm, func(), error) {
	farm := &agentFarm{base: time.Now(), latency: NewHistogram()}
	var clis []*clientv3.Client
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() {
		cancel()
		wg.Wait()
		for _, c := range clis {
			c.Close()
		}
	}
	for i := 0; i < n; i++ {
		if i%perClient == 0 {
			cli, err := newBenchClient(endpoints)
			if err != nil {
				stop()
				return nil, nil, err
			}
			clis = append(clis, cli)
		}
		farm.agents = append(farm.agents, &simAgent{host: fmt.Sprintf("a-%05d", i), cli: clis[len(clis)-1], keys: keys, farm: farm})
	}
	// A context, not a timer's channel: both loops below wait on it, and a
	// closed channel is seen by every receive.
	dctx, dcancel := context.WithTimeout(ctx, within)
	defer dcancel()
	deadline := dctx.Done()
	sem := make(chan struct{}, limit)
	var registered atomic.Int64
	launched := 0
launch:
	for _, a := range farm.agents {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			stop()
			return nil, nil, ctx.Err()
		case <-deadline:
			break launch
		}
		launched++
		wg.Go(func() {
			// Once registered, or once given up when ctx ends first.
			var once sync.Once
			ready := func() {
				once.Do(func() {
					<-sem
					registered.Add(1)
				})
			}
			a.run(rctx, ready)
			ready()
		})
	}
	farm.agents = farm.agents[:launched]
	for registered.Load() < int64(launched) {
		select {
		case <-ctx.Done():
			stop()
			return nil, nil, ctx.Err()
		case <-deadline:
			return farm, stop, fmt.Errorf("%d of %d agents registered within %v: etcd did not keep up with those already renewing", registered.Load(), n, within)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if launched < n {
		return farm, stop, fmt.Errorf("%d of %d agents registered within %v: etcd did not keep up with those already renewing", launched, n, within)
	}
	return farm, stop, nil
}

// renewedSince counts the agents whose last renewal (or registration)
// succeeded after the offset at.
func (farm *agentFarm) renewedSince(at time.Duration) int {
	n := 0
	for _, a := range farm.agents {
		if time.Duration(a.lastOK.Load()) > at {
			n++
		}
	}
	return n
}
