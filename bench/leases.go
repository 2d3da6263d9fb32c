package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// leasesPrefix is where the simulated agents write their host records.
const leasesPrefix = "/rcleases"

// registerAtOnce bounds the simulated agents registering at the same time:
// hosts boot over minutes, not all in one instant.
const registerAtOnce = 64

// leaseResult is what one run of simulated agents measured.
type leaseResult struct {
	n, clients int

	startup      time.Duration // from the first grant to every agent registered
	startupCores float64       // etcd's CPU meanwhile
	registerErr  error         // not every agent registered in time: the rest is measured with those that did
	running      int           // agents started

	keepalives    float64 // LeaseKeepAlive messages etcd received per second (all members)
	renewedEtcd   float64 // renewals etcd's leader applied per second
	renewedAgents float64 // renewals the agents saw succeed per second
	latency       *Histogram
	failures      int64   // renewals that failed during the interval (each retried)
	etcdCores     float64 // etcd's CPU over the interval
	selfCores     float64 // this program's (every agent)
	etcdRSS       int64

	// Before the restart: the leases the agents saw run out (no renewal
	// for a whole TTL, or gone) and those etcd revoked (expired). Must be 0.
	lapsedAgents, revoked int64

	outageBack    time.Duration // etcd restart: from members ready to every agent renewed again
	outageErr     error
	outageRegrant int64 // agents that gave their lease up after the restart and granted a new one
	outageRevoked int64 // leases etcd revoked after the restart
	keysLeft      int64 // host records left at the end
}

// maxRevoked is the most leases any member revoked since before (each
// member applies every revocation).
func maxRevoked(before, after []map[string]float64) int64 {
	var n int64
	for i := range after {
		n = max(n, int64(after[i]["leases revoked"]-before[i]["leases revoked"]))
	}
	return n
}

// partLeases runs simulated agents, one lease each (TTL 10 s) renewed as
// servicereg renews it, on a 3-node etcd cluster of separate processes, and
// measures the keepalives etcd takes, its CPU and the leases that lapse (must
// be none), then restarts the cluster and times the agents' return.
func partLeases(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	keys, err := registry.NewKeys(leasesPrefix)
	if err != nil {
		return nil, nil, err
	}
	var results []*leaseResult
	var problems []string
	for _, n := range cfg.Scale.Agents {
		res, err := leaseRun(ctx, cfg, env, keys, n)
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			return leasesSection(cfg, results), problems, err
		}
	}
	env.setLeases(results)
	return leasesSection(cfg, results), problems, nil
}

// leaseRun runs n simulated agents on a fresh cluster.
func leaseRun(ctx context.Context, cfg Config, env *Env, keys registry.Keys, n int) (*leaseResult, error) {
	var atEnd cleanups
	defer atEnd.run()
	cl, err := newProcCluster(ctx, env.Dir, 3, cfg.Pin.ServerCPU)
	if err != nil {
		return nil, err
	}
	atEnd.add(cl.Close)
	res := &leaseResult{n: n, clients: (n + cfg.Scale.AgentsPer - 1) / cfg.Scale.AgentsPer, latency: NewHistogram()}
	logf("leases: %d simulated agents on %d clients", n, res.clients)
	before, err := cl.MemberMetrics(ctx)
	if err != nil {
		return nil, err
	}
	c0, t0 := cl.CPU(), time.Now()
	farm, stop, err := startFarm(ctx, n, cfg.Scale.AgentsPer, registerAtOnce, cl.ReaderEndpoints(), keys, registerWithin(n))
	if farm == nil {
		return nil, err
	}
	atEnd.add(stop)
	res.registerErr, res.running = err, len(farm.agents)
	if err != nil {
		logf("leases: %v", err)
	}
	res.startup = time.Since(t0)
	res.startupCores = cores(cl.CPU()-c0, res.startup)
	// Steady state: every agent past its first renewal.
	if err := sleepCtx(ctx, agentTTL/3+time.Second); err != nil {
		return res, err
	}
	if err := res.measureSteady(ctx, cfg, cl, farm); err != nil {
		return res, err
	}
	steady, err := cl.MemberMetrics(ctx)
	if err != nil {
		return res, err
	}
	res.lapsedAgents, res.revoked = farm.lapsed.Load(), maxRevoked(before, steady)
	logf("leases: %d agents: %.0f renewals/s, etcd %.2f cores, %d lapsed (agents), %d revoked (etcd)", n, res.renewedAgents, res.etcdCores, res.lapsedAgents, res.revoked)
	if res.registerErr != nil {
		// An etcd that could not register them all would tell nothing
		// more from a restart.
		res.outageErr = fmt.Errorf("not restarted: %w", res.registerErr)
		res.keysLeft, err = countKeys(ctx, cl, keys.All())
		return res, err
	}
	res.measureOutage(ctx, cfg, cl, farm)
	// A lease given up meanwhile expires within its TTL: wait that long
	// before counting what etcd revoked and what is left.
	if err := sleepCtx(ctx, agentTTL+time.Second); err != nil {
		return res, err
	}
	after, err := cl.MemberMetrics(ctx)
	if err != nil {
		return res, err
	}
	res.outageRevoked = maxRevoked(steady, after)
	res.keysLeft, err = countKeys(ctx, cl, keys.All())
	logf("leases: %d agents after the restart: %v to all renewed (%v), %d granted again, %d revoked, %d of %d host records left",
		n, res.outageBack, res.outageErr, res.outageRegrant, res.outageRevoked, res.keysLeft, n)
	return res, err
}

// measureSteady reads etcd's counters and CPU over the measuring interval.
func (res *leaseResult) measureSteady(ctx context.Context, cfg Config, cl *procCluster, farm *agentFarm) error {
	m0, err := cl.Metrics(ctx)
	if err != nil {
		return err
	}
	c0, s0, r0, f0, t0 := cl.CPU(), selfCPU(), farm.renewals.Load(), farm.failures.Load(), time.Now()
	farm.mu.Lock()
	farm.latency = NewHistogram()
	farm.mu.Unlock()
	if err := sleepCtx(ctx, cfg.Scale.LeaseFor); err != nil {
		return err
	}
	m1, err := cl.Metrics(ctx)
	if err != nil {
		return err
	}
	el := time.Since(t0)
	secs := el.Seconds()
	res.keepalives = (m1["keepalive messages"] - m0["keepalive messages"]) / secs
	res.renewedEtcd = (m1["lease renewals"] - m0["lease renewals"]) / secs
	res.renewedAgents = float64(farm.renewals.Load()-r0) / secs
	res.failures = farm.failures.Load() - f0
	res.etcdCores, res.selfCores = cores(cl.CPU()-c0, el), cores(selfCPU()-s0, el)
	res.etcdRSS = cl.RSS()
	farm.mu.Lock()
	res.latency = farm.latency
	farm.mu.Unlock()
	return nil
}

// measureOutage stops every member for the outage and times, from the
// members being ready again, until every agent has renewed (or registered
// again). The outage is shorter than the TTL, and etcd gives every lease a
// fresh TTL when a new leader takes over, so no lease should be lost.
func (res *leaseResult) measureOutage(ctx context.Context, cfg Config, cl *procCluster, farm *agentFarm) {
	regrants := farm.regrants.Load()
	if res.outageErr = cl.Restart(ctx, cfg.Scale.Outage, true); res.outageErr != nil {
		return
	}
	back := time.Now()
	backAt := back.Sub(farm.base)
	const within = 6 * agentTTL
	deadline := back.Add(within)
	for {
		n := farm.renewedSince(backAt)
		if n == len(farm.agents) {
			res.outageBack = time.Since(back)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			res.outageErr = fmt.Errorf("%d of %d agents renewed within %v of etcd's return", n, len(farm.agents), within)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.outageRegrant = farm.regrants.Load() - regrants
}

// registerWithin bounds how long n agents may take to register: a healthy
// etcd registers thousands a second, so more means it is overwhelmed by the
// renewals of those already registered, and more time would not help.
func registerWithin(n int) time.Duration { return 2*time.Minute + time.Duration(n)*2*time.Millisecond }

// countKeys counts the keys under prefix.
func countKeys(ctx context.Context, cl *procCluster, prefix string) (int64, error) {
	cli, err := cl.AdminClient()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count keys under %s: %w", prefix, err)
	}
	return resp.Count, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leasesSection is the leases part's table, notes and summary.
func leasesSection(cfg Config, results []*leaseResult) *Section {
	sec := &Section{Title: fmt.Sprintf("Agents' leases at scale: %s simulated agents, lease TTL %v, on a 3-node etcd", joinInts(cfg.Scale.Agents), agentTTL)}
	sec.Intro = append(sec.Intro, fmt.Sprintf("Each simulated agent grants one lease (TTL %v), writes its host record on it and renews it as servicereg does "+
		"(servicereg/lease.go: a single renewal every TTL/3 on a stream of its own, %v timeout, retries from 50 ms up to TTL/10 until the lease's deadline; "+
		"a lost lease is granted again and the record rewritten); each agent's first renewal comes at a random point of the first TTL/3, so that the renewals "+
		"are spread as those of hosts started at different times. %d agents share one etcd client (one connection per member), so 30,000 agents are 300 clients: "+
		"enough connections that every member serves many, without the 90,000 sockets 30,000 real hosts would hold (those cost etcd memory and an HTTP/2 ping per "+
		"connection every 5 s, not renewals). At most %d agents register at once. The cluster is three etcd processes (bench/etcdmember)%s. "+
		"Counters come from every member's /metrics: keepalive messages are LeaseKeepAlive messages received (grpc_server_msg_received_total), "+
		"renewals etcd_debugging_lease_renewed_total (the leader's), revoked leases etcd_debugging_lease_revoked_total (the most any member counted). "+
		"The measuring interval is %v, after every agent's first renewal. Then every member is killed for %v and started again: "+
		"\"all renewed\" is from the members being ready until every agent has renewed (or registered again), \"granted again\" the agents that gave their lease up "+
		"meanwhile (no renewal for a whole TTL, by the agent's clock) and registered anew, \"revoked\" the leases etcd expired, counted with the host records left a TTL later. "+
		"\"Lapsed leases\" are those of the steady state, before the restart: the agents' view (no renewal for a whole TTL) and etcd's (revoked).",
		agentTTL, agentRenewTimeout.Round(time.Millisecond), cfg.Scale.AgentsPer, registerAtOnce, pinNote(cfg), cfg.Scale.LeaseFor, cfg.Scale.Outage))
	sec.Header = []string{"agents", "clients", "all registered", "etcd CPU registering", "keepalives/s (etcd)", "renewals/s (etcd / agents)",
		"renewal p50 / p99", "failed renewals", "etcd CPU", "this process CPU", "etcd RSS (3 members)", "lapsed leases (agents / etcd)",
		"after restart: all renewed", "after restart: leases granted again / revoked", "host records left"}
	for _, r := range results {
		back := fmtDur(r.outageBack)
		if r.outageErr != nil {
			back = notMeasured(r.outageErr.Error())
		}
		registered := fmtDur(r.startup)
		if r.registerErr != nil {
			registered = r.registerErr.Error()
		}
		sec.Row(fmt.Sprint(r.n), fmt.Sprint(r.clients), registered, fmtCores(r.startupCores), fmt.Sprintf("%.0f", r.keepalives),
			fmt.Sprintf("%.0f / %.0f", r.renewedEtcd, r.renewedAgents),
			fmtDur(r.latency.Percentile(0.5))+" / "+fmtDur(r.latency.Percentile(0.99)), fmt.Sprint(r.failures),
			fmtCores(r.etcdCores), fmtCores(r.selfCores), fmtBytes(r.etcdRSS), fmt.Sprintf("%d / %d", r.lapsedAgents, r.revoked),
			back, fmt.Sprintf("%d / %d", r.outageRegrant, r.outageRevoked), fmt.Sprintf("%d of %d", r.keysLeft, r.n))
	}
	cpus := runtime.NumCPU()
	for _, r := range results {
		if r.selfCores >= 0.9*float64(cpus) {
			sec.Note("At %d agents this process used all its CPU (%s of %d): the simulated agents themselves may then renew late, which real hosts, each with its own CPU, would not.",
				r.n, fmtCores(r.selfCores), cpus)
		}
	}
	for _, r := range results {
		verdict := "met"
		if r.lapsedAgents > 0 || r.revoked > 0 || r.registerErr != nil {
			verdict = "**missed**"
		}
		back := "all renewed within " + fmtDur(r.outageBack)
		if r.outageErr != nil {
			back = r.outageErr.Error()
		}
		sec.Summary = append(sec.Summary, fmt.Sprintf("Leases: %d simulated agents (TTL %v): %.0f renewals/s, etcd %s, renewal p99 %s, lapsed leases %d (agents) / %d (etcd) (target 0: %s); "+
			"after an etcd restart %s, %d leases given up and granted again, %d revoked by etcd.",
			r.n, agentTTL, r.renewedAgents, fmtCores(r.etcdCores), fmtDur(r.latency.Percentile(0.99)), r.lapsedAgents, r.revoked, verdict, back, r.outageRegrant, r.outageRevoked))
	}
	return sec
}
