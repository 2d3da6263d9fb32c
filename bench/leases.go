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

	// err: what stopped the run before it measured everything (the cluster
	// would not start, a member's metrics could not be read): the row says
	// so and the next run goes on.
	err error

	startup      time.Duration // from the first grant to every agent registered
	startupCores float64       // etcd's CPU meanwhile
	registerErr  error         // not every agent registered in time: the rest is measured with those that did
	running      int           // agents started

	steady        bool    // the steady state was measured
	keepalives    float64 // LeaseKeepAlive messages etcd received per second (all members)
	renewedEtcd   float64 // renewals etcd's leader applied per second
	renewedAgents float64 // renewals the agents saw succeed per second
	latency       *Histogram
	failures      int64   // renewals that failed during the interval (each retried)
	etcdCores     float64 // etcd's CPU over the interval
	selfCores     float64 // this program's (every agent)
	etcdRSS       int64

	// Before the restart: the leases the agents saw run out (no renewal
	// for a whole TTL by their clock) and those etcd revoked (expired).
	// Must be 0.
	lapsedAgents, revoked int64

	outageBack    time.Duration // etcd restart: from members ready to every agent renewed again
	outageErr     error
	outageLapsed  int64 // agents that went a whole TTL without a renewal (by their clock) over the restart
	outageRegrant int64 // agents that etcd told their lease was gone, and that granted a new one
	outageGrants  int64 // grants etcd answered after the restart (more than regrants: a write found the new lease gone)
	outageRevoked int64 // leases etcd revoked after the restart
	keysLeft      int64 // host records left at the end
	keysErr       error // they could not be counted
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
// be none), then restarts the cluster and times the agents' return. A run
// that cannot measure something says so in its row and the next run goes
// on; only the benchmark being stopped ends the part.
func partLeases(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	keys, err := registry.NewKeys(leasesPrefix)
	if err != nil {
		return nil, nil, err
	}
	var results, model []*leaseResult
	var problems []string
	for _, n := range cfg.Scale.Agents {
		res := leaseRun(ctx, cfg, env, keys, n)
		results = append(results, res)
		if ctx.Err() != nil {
			return leasesSection(cfg, results), problems, ctx.Err()
		}
		if res.err != nil {
			logf("leases: %d agents: %v", n, res.err)
		}
		// The model extrapolates from runs that had every agent renewing.
		if res.steady && res.registerErr == nil {
			model = append(model, res)
		}
	}
	env.setLeases(model)
	return leasesSection(cfg, results), problems, nil
}

// leaseRun runs n simulated agents on a fresh cluster. What it could not
// measure it notes in the result (err, registerErr, outageErr, keysErr).
func leaseRun(ctx context.Context, cfg Config, env *Env, keys registry.Keys, n int) *leaseResult {
	var atEnd cleanups
	defer atEnd.run()
	res := &leaseResult{n: n, clients: (n + cfg.Scale.AgentsPer - 1) / cfg.Scale.AgentsPer, latency: NewHistogram()}
	cl, err := newProcCluster(ctx, env.Dir, 3, cfg.Pin.ServerCPU)
	if err != nil {
		res.err = fmt.Errorf("etcd cluster: %w", err)
		return res
	}
	atEnd.add(cl.Close)
	logf("leases: %d simulated agents on %d clients", n, res.clients)
	before, err := cl.MemberMetrics(ctx)
	if err != nil {
		res.err = err
		return res
	}
	c0, t0 := cl.CPU(), time.Now()
	farm, stop, err := startFarm(ctx, n, cfg.Scale.AgentsPer, registerAtOnce, cl.ReaderEndpoints(), keys, registerWithin(n))
	if farm == nil {
		res.err = err
		return res
	}
	atEnd.add(stop)
	res.registerErr, res.running = err, len(farm.agents)
	if err != nil {
		logf("leases: %v", err)
	}
	res.startup = time.Since(t0)
	res.startupCores = cores(cl.CPU()-c0, res.startup)
	// Steady state: every agent past its first renewal.
	if res.err = sleepCtx(ctx, agentTTL/3+time.Second); res.err != nil {
		return res
	}
	if res.err = res.measureSteady(ctx, cfg, cl, farm); res.err != nil {
		return res
	}
	steady, err := cl.MemberMetrics(ctx)
	if err != nil {
		res.err = fmt.Errorf("after the steady state: %w", err)
		return res
	}
	res.steady = true
	res.lapsedAgents, res.revoked = farm.lapsed.Load(), maxRevoked(before, steady)
	logf("leases: %d agents: %.0f renewals/s, etcd %.2f cores, %d lapsed (agents), %d revoked (etcd)", n, res.renewedAgents, res.etcdCores, res.lapsedAgents, res.revoked)
	if res.registerErr != nil {
		// An etcd that could not register them all would tell nothing
		// more from a restart.
		res.outageErr = fmt.Errorf("not restarted: %w", res.registerErr)
		res.keysLeft, res.keysErr = countKeys(ctx, cl, keys.All())
		return res
	}
	if !res.measureOutage(ctx, cfg, cl, farm) {
		return res // the members did not come back: nothing more to read
	}
	// A lease nobody renews any more expires within its TTL (plus the
	// election timeout a new leader adds): wait that long before counting
	// what etcd revoked and what is left.
	if res.err = sleepCtx(ctx, agentTTL+2*time.Second); res.err != nil {
		return res
	}
	after, err := cl.MemberMetrics(ctx)
	if err != nil {
		res.err = fmt.Errorf("after the restart: %w", err)
		return res
	}
	res.outageRevoked = maxRevoked(steady, after)
	res.keysLeft, res.keysErr = countKeys(ctx, cl, keys.All())
	logf("leases: %d agents after the restart: %v to all renewed (%v), %d lapsed by their clock, %d told their lease was gone, %d grants, %d revoked, %d of %d host records left (%v)",
		n, res.outageBack, res.outageErr, res.outageLapsed, res.outageRegrant, res.outageGrants, res.outageRevoked, res.keysLeft, n, res.keysErr)
	return res
}

// measureSteady reads etcd's counters and CPU over the measuring interval.
func (res *leaseResult) measureSteady(ctx context.Context, cfg Config, cl *procCluster, farm *agentFarm) error {
	m0, err := cl.Metrics(ctx)
	if err != nil {
		return fmt.Errorf("before the steady state: %w", err)
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
		return fmt.Errorf("after the steady state: %w", err)
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
// again). etcd expires nothing while down and gives every lease a fresh TTL
// when a new leader takes over, so no lease should be lost, however long
// the outage and the restart are by the agents' clocks: they renew on. It
// returns false when the members did not start again.
func (res *leaseResult) measureOutage(ctx context.Context, cfg Config, cl *procCluster, farm *agentFarm) bool {
	regrants, grants, lapsed := farm.regrants.Load(), farm.grants.Load(), farm.lapsed.Load()
	defer func() {
		res.outageRegrant = farm.regrants.Load() - regrants
		res.outageGrants = farm.grants.Load() - grants
		res.outageLapsed = farm.lapsed.Load() - lapsed
	}()
	if err := cl.Restart(ctx, cfg.Scale.Outage, true); err != nil {
		res.outageErr = fmt.Errorf("restart: %w", err)
		return false
	}
	back := time.Now()
	backAt := back.Sub(farm.base)
	const within = 6 * agentTTL
	deadline := back.Add(within)
	for {
		n := farm.renewedSince(backAt)
		if n == len(farm.agents) {
			res.outageBack = time.Since(back)
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			res.outageErr = fmt.Errorf("%d of %d agents renewed within %v of etcd's return", n, len(farm.agents), within)
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		"(servicereg/lease.go: a single renewal every TTL/3 on a stream of its own, %v timeout, retries from 50 ms up to TTL/10, jittered; past the lease's deadline "+
		"by the agent's clock the renewals go on, each waited for up to TTL/3 and their retry window growing to TTL/2, since etcd may still hold the lease, and only etcd's \"lease not found\" makes the agent grant a new one and rewrite its record); "+
		"each agent's first renewal comes at a random point of the first TTL/3, so that the renewals "+
		"are spread as those of hosts started at different times. %d agents share one etcd client (one connection per member), so 30,000 agents are 300 clients: "+
		"enough connections that every member serves many, without the 90,000 sockets 30,000 real hosts would hold (those cost etcd memory and an HTTP/2 ping per "+
		"connection every 5 s, not renewals). At most %d agents register at once, and registering gives up after 2 min plus 2 ms per agent (the runs past it "+
		"are measured with the agents registered by then and not restarted). The cluster is three etcd processes (bench/etcdmember)%s. "+
		"Counters come from every member's /metrics: keepalive messages are LeaseKeepAlive messages received (grpc_server_msg_received_total), "+
		"renewals etcd_debugging_lease_renewed_total (the leader's), revoked leases etcd_debugging_lease_revoked_total (the most any member counted). "+
		"The measuring interval is %v, after every agent's first renewal. Then every member is killed for %v and started again: "+
		"\"all renewed\" is from the members being ready until every agent has renewed (or registered again); \"lapsed\" the agents that went a whole TTL "+
		"without a renewal by their own clock (the outage plus the restart), \"told gone\" those etcd answered \"lease not found\" (each granted a new lease), "+
		"\"grants\" the grants etcd answered, \"revoked\" the leases etcd expired, counted with the host records left a TTL later. "+
		"\"Lapsed leases\" are those of the steady state, before the restart: the agents' view (no renewal for a whole TTL) and etcd's (revoked).",
		agentTTL, agentRenewTimeout.Round(time.Millisecond), cfg.Scale.AgentsPer, registerAtOnce, pinNote(cfg), cfg.Scale.LeaseFor, cfg.Scale.Outage))
	sec.Header = []string{"agents", "clients", "all registered", "etcd CPU registering", "keepalives/s (etcd)", "renewals/s (etcd / agents)",
		"renewal p50 / p99", "failed renewals", "etcd CPU", "this process CPU", "etcd RSS (3 members)", "lapsed leases (agents / etcd)",
		"after restart: all renewed", "after restart: lapsed / told gone / grants / revoked", "host records left"}
	for _, r := range results {
		registered := fmtDur(r.startup)
		if r.registerErr != nil {
			registered = r.registerErr.Error()
		}
		if !r.steady {
			why := "not measured"
			if r.err != nil {
				why = notMeasured(r.err.Error())
			}
			if r.running == 0 {
				registered = why
			}
			sec.Row(fmt.Sprint(r.n), fmt.Sprint(r.clients), registered, why, "", "", "", "", "", "", "", "", "", "", "")
			continue
		}
		back := fmtDur(r.outageBack)
		switch {
		case r.outageErr != nil:
			back = notMeasured(r.outageErr.Error())
		case r.err != nil:
			back += " (then " + notMeasured(r.err.Error()) + ")"
		}
		left := fmt.Sprintf("%d of %d", r.keysLeft, r.n)
		if r.keysErr != nil || (r.err != nil && r.keysLeft == 0) {
			left = notMeasured("not counted")
			if r.keysErr != nil {
				left = notMeasured(r.keysErr.Error())
			}
		}
		outage := fmt.Sprintf("%d / %d / %d / %d", r.outageLapsed, r.outageRegrant, r.outageGrants, r.outageRevoked)
		if r.registerErr != nil {
			outage = "not restarted"
		}
		sec.Row(fmt.Sprint(r.n), fmt.Sprint(r.clients), registered, fmtCores(r.startupCores), fmt.Sprintf("%.0f", r.keepalives),
			fmt.Sprintf("%.0f / %.0f", r.renewedEtcd, r.renewedAgents),
			fmtDur(r.latency.Percentile(0.5))+" / "+fmtDur(r.latency.Percentile(0.99)), fmt.Sprint(r.failures),
			fmtCores(r.etcdCores), fmtCores(r.selfCores), fmtBytes(r.etcdRSS), fmt.Sprintf("%d / %d", r.lapsedAgents, r.revoked),
			back, outage, left)
	}
	cpus := runtime.NumCPU()
	for _, r := range results {
		if r.steady && r.selfCores >= 0.9*float64(cpus) {
			sec.Note("At %d agents this process used all its CPU (%s of %d): the simulated agents themselves may then renew late, which real hosts, each with its own CPU, would not.",
				r.n, fmtCores(r.selfCores), cpus)
		}
	}
	for _, r := range results {
		if !r.steady {
			why := "not measured"
			if r.err != nil {
				why = r.err.Error()
			}
			sec.Summary = append(sec.Summary, fmt.Sprintf("Leases: %d simulated agents (TTL %v): **not measured**: %s.", r.n, agentTTL, why))
			continue
		}
		verdict := "met"
		if r.lapsedAgents > 0 || r.revoked > 0 || r.registerErr != nil {
			verdict = "**missed**"
		}
		who := fmt.Sprintf("%d simulated agents", r.n)
		if r.registerErr != nil {
			who = fmt.Sprintf("%d simulated agents (%d started: %v)", r.n, r.running, r.registerErr)
		}
		line := fmt.Sprintf("Leases: %s (TTL %v): %.0f renewals/s, etcd %s, renewal p99 %s, lapsed leases %d (agents) / %d (etcd) (target 0: %s)",
			who, agentTTL, r.renewedAgents, fmtCores(r.etcdCores), fmtDur(r.latency.Percentile(0.99)), r.lapsedAgents, r.revoked, verdict)
		back := "all renewed within " + fmtDur(r.outageBack)
		if r.outageErr != nil {
			back = r.outageErr.Error()
		}
		if r.registerErr != nil {
			line += "; not restarted."
		} else {
			line += fmt.Sprintf("; after an etcd restart %s, %d agents past their lease's TTL by their clock, %d told their lease was gone, %d grants, %d leases revoked by etcd.",
				back, r.outageLapsed, r.outageRegrant, r.outageGrants, r.outageRevoked)
		}
		sec.Summary = append(sec.Summary, line)
	}
	return sec
}
