package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/servicereg"
	"github.com/rollcall/rollcall/test/testkit"
)

// healthRig is what the health part's measurements share: real agents
// (bin/servicereg on a private systemd user manager) whose HTTP checks
// probe a server in this process, and a rollcall server in front of them.
type healthRig struct {
	cfg    Config
	env    *Env
	dns    *Server
	sd     *testkit.Systemd
	target *checkTarget
}

// unitTag names the health part's units (testkit.UnitName).
const unitTag = "rcbh"

// partHealth measures health checks (docs/DESIGN.md, "Health"): the CPU an
// agent spends on many checks, the etcd writes of flapping checks with and
// without the agent's state-write limit, and the time from a check failing
// to its instance leaving DNS. Each measurement stops its agents before the
// next starts.
func partHealth(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	hc := cfg.Health
	sec := &Section{Title: "Health checks"}
	s, sd, err := agentSetup(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, nil, err
	}
	target, err := startCheckTarget(atEnd)
	if err != nil {
		return nil, nil, err
	}
	r := &healthRig{cfg: cfg, env: env, dns: s, sd: sd, target: target}
	sec.Intro = append(sec.Intro, "Real agents (bin/servicereg processes, one per simulated host) watch a private systemd user manager "+
		"(as test/testkit starts it) whose units are active, and run HTTP checks against a server in the benchmark process, which "+
		"answers 200 or 503 as each measurement needs; the benchmark's own CPU is not the agents'. rollcall (views on) serves the "+
		"agents' records from the embedded etcd.")
	var problems []string
	for _, m := range []struct {
		title string
		run   func(context.Context) (*Section, []string, error)
	}{
		{fmt.Sprintf("Agent CPU: %d HTTP checks every %v", hc.Checks, hc.CheckInterval), r.cpu},
		{fmt.Sprintf("etcd writes of flapping checks: %d hosts, a check every %v", hc.FlapHosts, hc.FlapInterval), r.flap},
		{fmt.Sprintf("Check failure to gone from DNS (interval %v, fall %d, %d failures)", hc.GoneInterval, hc.GoneFall, hc.Gones), r.gone},
	} {
		if ctx.Err() != nil {
			return sec, problems, ctx.Err()
		}
		sub, probs, err := m.run(ctx)
		problems = append(problems, probs...)
		if sub == nil {
			sub = &Section{}
		}
		sub.Title = m.title
		if err != nil {
			sub.Note("**Measurement failed**: %v", err)
			problems = append(problems, fmt.Sprintf("health: %s: %v", m.title, err))
		}
		sec.Sub = append(sec.Sub, sub)
		sec.Summary = append(sec.Summary, sub.Summary...)
	}
	return sec, problems, nil
}

// cpu measures the CPU time of an agent running cfg.Health.Checks HTTP
// checks, beside an agent with the same services and no checks, and a bare
// Go client making the same GETs, over the same window: the first two
// differ by what the checks cost, and the client is the yardstick of one
// check run.
func (r *healthRig) cpu(ctx context.Context) (*Section, []string, error) {
	hc := r.cfg.Health
	sec := &Section{}
	var atEnd cleanups
	defer atEnd.run()
	unit := testkit.UnitName(unitTag, "hccpu")
	if err := startSleepUnit(r.sd, unit); err != nil {
		return nil, nil, err
	}
	defer func() { _ = systemctl(r.sd, "stop", unit) }()
	// Ten checks per service, as a host with a few busy services has.
	const perService = 10
	var checked, bare []checkedService
	for i := 0; i*perService < hc.Checks; i++ {
		name := fmt.Sprintf("hccpu%03d", i)
		var checks []httpCheck
		for j := i * perService; j < min((i+1)*perService, hc.Checks); j++ {
			checks = append(checks, httpCheck{URL: fmt.Sprintf("%s/ok/%s/%d", r.target.URL, name, j), Interval: hc.CheckInterval})
		}
		checked = append(checked, checkedService{Name: name, Unit: unit, Checks: checks})
		bare = append(bare, checkedService{Name: name, Unit: unit})
	}
	a, err := startCheckedAgent(&atEnd, r.cfg, r.env, r.sd, checkedAgent{Host: "hc-cpu", N: 0, Services: checked})
	if err != nil {
		return nil, nil, err
	}
	b, err := startCheckedAgent(&atEnd, r.cfg, r.env, r.sd, checkedAgent{Host: "hc-nochecks", N: 1, Services: bare})
	if err != nil {
		return nil, nil, err
	}
	rate := float64(hc.Checks) / hc.CheckInterval.Seconds()
	ref, err := startHTTPClient(&atEnd, rate, r.target.URL+"/ref/")
	if err != nil {
		return nil, nil, err
	}
	// Every service name answers with the checked agent's instance once
	// its checks passed: the unchecked one is passing from the start, so
	// the service never fails open onto a critical instance.
	for _, svc := range checked {
		if _, err := pollDNS(ctx, r.dns.Addr, svc.Name+"."+Zone, time.Minute, 10*time.Millisecond, hasAddr(a.Overlay)); err != nil {
			return nil, nil, fmt.Errorf("the checks of %s never passed: %w; agent log: %s", svc.Name, err, a.Log())
		}
	}
	if err := waitInstance(ctx, r.dns.Addr, b, bare[0].Name); err != nil {
		return nil, nil, err
	}
	if err := sleepCtx(ctx, hc.CheckInterval); err != nil {
		return nil, nil, err
	}
	pids := []int{a.Pid(), b.Pid(), ref.Cmd.Process.Pid}
	m, err := measureCPU(ctx, hc.Window, pids, []*atomic.Int64{&r.target.ok, &r.target.ref})
	if err != nil {
		return nil, nil, fmt.Errorf("%w; yardstick client's output: %s", err, ref.Out.Tail(500))
	}
	runs, gets := m.counts[0], m.counts[1]
	if runs == 0 || gets == 0 {
		return nil, nil, fmt.Errorf("no check runs (%d) or no yardstick GETs (%d) in the window; agent log: %s; yardstick client's output: %s",
			runs, gets, a.Log(), ref.Out.Tail(500))
	}
	var problems []string
	if rps := m.perSec(runs); rps < rate/2 {
		problems = append(problems, fmt.Sprintf("health cpu: the agent ran %.0f checks/s, under half of the %.0f its %d checks every %v make", rps, rate, hc.Checks, hc.CheckInterval))
	}
	cost := max(m.cpu[0]-m.cpu[1], 0)
	perRun, perGet := cost/time.Duration(runs), m.cpu[2]/time.Duration(gets)
	sec.Header = []string{"process", "checks", "GETs/s", "CPU, % of one core", "CPU per GET", "RSS"}
	sec.Row("agent with checks (hc-cpu)", fmt.Sprint(hc.Checks), fmt.Sprintf("%.1f", m.perSec(runs)), fmtPct(m.share(0)), "-", fmtBytes(m.rss[0]))
	sec.Row("agent without checks (hc-nochecks)", "0", "-", fmtPct(m.share(1)), "-", fmtBytes(m.rss[1]))
	sec.Row("**the checks' cost** (difference)", fmt.Sprint(hc.Checks), fmt.Sprintf("%.1f", m.perSec(runs)), fmtPct(m.share(0)-m.share(1)), fmtDur(perRun), "")
	sec.Row("yardstick: a bare Go HTTP client", "-", fmt.Sprintf("%.1f", m.perSec(gets)), fmtPct(m.share(2)), fmtDur(perGet), fmtBytes(m.rss[2]))
	sec.Summary = append(sec.Summary, fmt.Sprintf("Health checks: an agent running %d HTTP checks every %v uses %s of a core, %s more than without checks: %s of CPU per check run, against %s per GET for a bare Go client.",
		hc.Checks, hc.CheckInterval, fmtPct(m.share(0)), fmtPct(m.share(0)-m.share(1)), fmtDur(perRun), fmtDur(perGet)))
	sec.Intro = append(sec.Intro, fmt.Sprintf("One agent registers %d services (one active unit) with %d HTTP checks in all, %d per service, every %v "+
		"(default timeout, rise and fall; check_concurrency at its default %d); a second agent registers the same services without checks; "+
		"a bare Go client (this program started again: net/http, keep-alives off, as the checks have them) GETs the same server %.0f times "+
		"a second. All three run at the same time; once every check has passed, the CPU time (user + system, all threads, "+
		"/proc/PID/stat) of each over %v is read, as a share of one core, and the GETs the HTTP server answered are counted. The two "+
		"agents differ by the checks' cost; divided by the check runs, the CPU of one run (a new connection, a GET, the state kept, the "+
		"metrics), which the client's CPU per GET puts in proportion.",
		len(checked), hc.Checks, perService, hc.CheckInterval, servicereg.DefaultCheckConcurrency, rate, hc.Window))
	return sec, problems, nil
}

// cpuResult is what measureCPU read over its window: each process's CPU
// time and resident memory, and each counter's increase.
type cpuResult struct {
	cpu    []time.Duration
	rss    []int64
	counts []int64
	secs   float64
}

// share is process i's CPU time as a fraction of one core.
func (m cpuResult) share(i int) float64 { return m.cpu[i].Seconds() / m.secs }

// perSec is a count per second of the window.
func (m cpuResult) perSec(n int64) float64 { return float64(n) / m.secs }

// measureCPU reads the CPU time of pids and the counters, waits window,
// and reads them again.
func measureCPU(ctx context.Context, window time.Duration, pids []int, counters []*atomic.Int64) (cpuResult, error) {
	m := cpuResult{cpu: make([]time.Duration, len(pids)), rss: make([]int64, len(pids)), counts: make([]int64, len(counters))}
	read := func(sign time.Duration) error {
		for i, pid := range pids {
			c, err := procCPU(pid)
			if err != nil {
				return err
			}
			m.cpu[i] += sign * c
		}
		for i, c := range counters {
			m.counts[i] += int64(sign) * c.Load()
		}
		return nil
	}
	if err := read(-1); err != nil {
		return m, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return m, err
	}
	if err := read(1); err != nil {
		return m, err
	}
	m.secs = time.Since(t0).Seconds()
	for i, pid := range pids {
		var err error
		if m.rss[i], err = procRSS(pid); err != nil {
			return m, err
		}
	}
	return m, nil
}

// fmtPct formats a fraction of a core as a percentage.
func fmtPct(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) }

// flapMode is one run of the flap measurement: the agents' state-write
// limit (zero: the agent's defaults).
type flapMode struct {
	name  string
	rate  float64
	burst int
}

// flap measures the etcd writes of hosts whose one check flaps, once with
// the agents' state-write limit at its defaults and once with it as high
// as the agent allows (in effect off).
func (r *healthRig) flap(ctx context.Context) (*Section, []string, error) {
	hc := r.cfg.Health
	sec := &Section{}
	unit := testkit.UnitName(unitTag, "hcflap")
	if err := startSleepUnit(r.sd, unit); err != nil {
		return nil, nil, err
	}
	defer func() { _ = systemctl(r.sd, "stop", unit) }()
	modes := []flapMode{
		{name: fmt.Sprintf("limit on (defaults: %v/s, burst %d)", servicereg.DefaultStateWriteRate, servicereg.DefaultStateWriteBurst)},
		{name: fmt.Sprintf("limit off (%v/s, burst %d)", servicereg.MaxStateWriteRate, servicereg.MaxStateWriteBurst),
			rate: servicereg.MaxStateWriteRate, burst: servicereg.MaxStateWriteBurst},
	}
	sec.Header = []string{"state-write limit", "hosts", "state changes seen/s per host", "etcd puts/s, all hosts", "etcd puts/s per host", "puts per change"}
	var problems []string
	var perHost []float64
	for _, mode := range modes {
		res, err := r.flapRun(ctx, unit, mode)
		if err != nil {
			return sec, problems, fmt.Errorf("%s: %w", mode.name, err)
		}
		n := float64(hc.FlapHosts)
		sec.Row(mode.name, fmt.Sprint(hc.FlapHosts), fmt.Sprintf("%.2f", res.changes/res.secs/n), fmt.Sprintf("%.2f", res.puts/res.secs),
			fmt.Sprintf("%.2f", res.puts/res.secs/n), fmt.Sprintf("%.2f", res.puts/max(res.changes, 1)))
		perHost = append(perHost, res.puts/res.secs/n)
		if mode.rate == 0 {
			// The limit's promise: at most rate writes a second and a
			// burst, per host. Each state write puts one key.
			bound := servicereg.DefaultStateWriteRate*res.secs + float64(servicereg.DefaultStateWriteBurst)
			if res.puts/n > bound {
				problems = append(problems, fmt.Sprintf("health flap: with the limit on, %.1f puts per host in %.1fs, above the limit's %.1f", res.puts/n, res.secs, bound))
			}
		}
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("Flapping checks (%d hosts, a state change every %v): %.2f etcd puts/s per host with the state-write limit at its defaults, %.2f with it off.",
		hc.FlapHosts, hc.FlapInterval, perHost[0], perHost[1]))
	sec.Intro = append(sec.Intro, fmt.Sprintf("%d agents (hosts hc-flap-*) each register one service whose one HTTP check, every %v with rise 1 "+
		"and fall 1, gets 503 and 200 in turn: every run changes the instance's state. Once all are registered and 2 s have passed (the "+
		"burst spent), etcd's own counter of puts (etcd_mvcc_put_total, one per key written) is read over %v; the state changes seen "+
		"are the check runs the HTTP server counted. Then the agents stop and the same runs again with the limit off "+
		"(state_write_rate and state_write_burst at the highest values the agent takes).", hc.FlapHosts, hc.FlapInterval, hc.Window))
	sec.Note("With the limit on, a change waits for a token (%v a second, a burst of %d) and then the latest state goes: a check that "+
		"flapped meanwhile costs one write, or none when it is back where it was. Each agent keeps its own bucket, so the bound is per "+
		"host: etcd takes at most hosts x state_write_rate state writes a second, however fast checks flap.",
		servicereg.DefaultStateWriteRate, servicereg.DefaultStateWriteBurst)
	return sec, problems, nil
}

// flapResult is one flap run: the puts etcd counted and the state changes
// the agents saw, over secs.
type flapResult struct {
	puts, changes, secs float64
}

// flapRun starts the flapping agents with mode's limit, measures over the
// window and stops them.
func (r *healthRig) flapRun(ctx context.Context, unit string, mode flapMode) (flapResult, error) {
	hc := r.cfg.Health
	var res flapResult
	var atEnd cleanups
	defer atEnd.run()
	const svc = "hcflap"
	var agents []*agentProc
	for i := 0; i < hc.FlapHosts; i++ {
		host := fmt.Sprintf("hc-flap-%d", i)
		a, err := startCheckedAgent(&atEnd, r.cfg, r.env, r.sd, checkedAgent{Host: host, N: 10 + i, WriteRate: mode.rate, WriteBurst: mode.burst,
			Services: []checkedService{{Name: svc, Unit: unit, Checks: []httpCheck{{URL: r.target.URL + "/flap/" + host, Interval: hc.FlapInterval, Rise: 1, Fall: 1}}}}})
		if err != nil {
			return res, err
		}
		agents = append(agents, a)
	}
	for _, a := range agents {
		if err := waitInstance(ctx, r.dns.Addr, a, svc); err != nil {
			return res, err
		}
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return res, err
	}
	m0, err := etcdMetrics(ctx, r.env.Etcd.ClientURL)
	if err != nil {
		return res, err
	}
	c0, t0 := r.target.flap.Load(), time.Now()
	if err := sleepCtx(ctx, hc.Window); err != nil {
		return res, err
	}
	m1, err := etcdMetrics(ctx, r.env.Etcd.ClientURL)
	if err != nil {
		return res, err
	}
	res.changes, res.secs = float64(r.target.flap.Load()-c0), time.Since(t0).Seconds()
	res.puts = m1["puts"] - m0["puts"]
	stopAll(agents)
	return res, nil
}

// gone times a check's failure until its instance leaves DNS: one agent's
// check turns 503 while a second agent's instance of the same service
// stays passing (a service with no instance in service would fail open and
// keep serving the failed one).
func (r *healthRig) gone(ctx context.Context) (*Section, []string, error) {
	hc := r.cfg.Health
	sec := &Section{}
	var atEnd cleanups
	defer atEnd.run()
	unit := testkit.UnitName(unitTag, "hcgone")
	if err := startSleepUnit(r.sd, unit); err != nil {
		return nil, nil, err
	}
	defer func() { _ = systemctl(r.sd, "stop", unit) }()
	const svc, path = "hcgone", "/switch/hc-gone"
	a, err := startCheckedAgent(&atEnd, r.cfg, r.env, r.sd, checkedAgent{Host: "hc-gone", N: 50,
		Services: []checkedService{{Name: svc, Unit: unit, Checks: []httpCheck{{URL: r.target.URL + path, Interval: hc.GoneInterval, Fall: hc.GoneFall}}}}})
	if err != nil {
		return nil, nil, err
	}
	peer, err := startCheckedAgent(&atEnd, r.cfg, r.env, r.sd, checkedAgent{Host: "hc-gone-peer", N: 51, Services: []checkedService{{Name: svc, Unit: unit}}})
	if err != nil {
		return nil, nil, err
	}
	name := svc + "." + Zone
	both := func(m *dns.Msg) bool { return hasAddr(a.Overlay)(m) && hasAddr(peer.Overlay)(m) }
	onlyPeer := func(m *dns.Msg) bool { return lacksAddr(a.Overlay)(m) && hasAddr(peer.Overlay)(m) }
	if _, err := pollDNS(ctx, r.dns.Addr, name, time.Minute, 10*time.Millisecond, both); err != nil {
		return nil, nil, fmt.Errorf("both instances never answered: %w; agent log: %s", err, a.Log())
	}
	// The bound: fall runs, each at most an interval + 5 % after the one
	// before, the first at most that after the flip; then the write's trip
	// to DNS.
	bound := time.Duration(float64(hc.GoneInterval) * float64(hc.GoneFall) * 1.05)
	key := registry.MustKeys(smallPrefix).Instance(a.Host, svc)
	var detect, prop, total, back []time.Duration
	var problems []string
	for i := 0; i < hc.Gones; i++ {
		// Flip at a random point of the check's schedule.
		if err := sleepCtx(ctx, rand.N(hc.GoneInterval)); err != nil {
			return nil, nil, err
		}
		critical, err := watchState(ctx, r.env.Cli, key, registry.StateCritical)
		if err != nil {
			return nil, nil, err
		}
		r.target.setDown(path, true)
		t0 := time.Now()
		at, err := pollDNS(ctx, r.dns.Addr, name, bound+30*time.Second, 10*time.Millisecond, onlyPeer)
		if err != nil {
			critical.stop()
			return nil, nil, fmt.Errorf("failure %d: the failed instance never left DNS: %w; agent log: %s", i, err, a.Log())
		}
		total = append(total, at.Sub(t0))
		if w, ok := critical.wait(5 * time.Second); ok {
			detect = append(detect, w.Sub(t0))
			prop = append(prop, max(at.Sub(w), 0))
		}
		if at.Sub(t0) > bound+3*time.Second {
			problems = append(problems, fmt.Sprintf("health gone: failure %d took %v to leave DNS, beyond the bound %v + 3s", i, at.Sub(t0).Round(time.Millisecond), bound))
		}
		r.target.setDown(path, false)
		t1 := time.Now()
		at, err = pollDNS(ctx, r.dns.Addr, name, time.Minute, 10*time.Millisecond, both)
		if err != nil {
			return nil, nil, fmt.Errorf("failure %d: the instance never came back after its check passed again: %w; agent log: %s", i, err, a.Log())
		}
		back = append(back, at.Sub(t1))
	}
	sec.Header = []string{"", "n", "p50", "p90", "p99", "max"}
	sec.Row(append([]string{"check turns 503 -> record critical in etcd"}, durRow(detect)...)...)
	sec.Row(append([]string{"record critical in etcd -> gone from DNS"}, durRow(prop)...)...)
	sec.Row(append([]string{"**check turns 503 -> gone from DNS**"}, durRow(total)...)...)
	sec.Row(append([]string{fmt.Sprintf("check turns 200 -> back in DNS (rise %d)", healthcheck.DefaultRise)}, durRow(back)...)...)
	sec.Summary = append(sec.Summary, fmt.Sprintf("Check failure -> gone from DNS (interval %v, fall %d): p50 %s, p99 %s, max %s; bound interval x fall (+5 %% jitter) = %s plus propagation (p99 %s).",
		hc.GoneInterval, hc.GoneFall, fmtDur(percentileOf(total, 0.5)), fmtDur(percentileOf(total, 0.99)), fmtDur(percentileOf(total, 1)),
		fmtDur(bound), fmtDur(percentileOf(prop, 0.99))))
	sec.Intro = append(sec.Intro, fmt.Sprintf("Two agents register service `%s`: hc-gone with an HTTP check every %v, fall %d, rise %d; hc-gone-peer "+
		"without checks, so the service always has an instance in service and never fails open. At a random point of the check's schedule "+
		"the HTTP server turns hc-gone's check to 503, and `%s` is queried over UDP every 10 ms until hc-gone's address has left the answer; "+
		"a watch on hc-gone's instance key in this process notes when the record turned critical, which splits the time into detection "+
		"(the agent) and propagation (etcd and the plugin). Then the check turns 200 until the instance is back, and again, %d times.",
		svc, hc.GoneInterval, hc.GoneFall, healthcheck.DefaultRise, name, hc.Gones))
	sec.Note("The bound is interval x fall: the first failing run comes at most an interval after the check turns (each run is an interval "+
		"+/- 5 %% after the one before), and fall failures in a row make the instance critical; the agent then writes at once (the "+
		"state-write limit has tokens: each failure here makes two writes several seconds apart), and the write reaches DNS in milliseconds. "+
		"Expect about (fall - 1/2) x interval on average, here %s, and nothing above %s plus the propagation. Times are measured to the "+
		"first answer without the address, so they include up to 10 ms of polling.",
		fmtDur(time.Duration(float64(hc.GoneInterval)*(float64(hc.GoneFall)-0.5))), fmtDur(bound))
	return sec, problems, nil
}

// stateWatch notes when an instance record first turns to a state.
type stateWatch struct {
	seen   chan time.Time // cap 1: when it was seen
	cancel context.CancelFunc
}

// watchState watches key from now on for an instance record in state st.
// Stop it with wait or stop.
func watchState(ctx context.Context, cli *clientv3.Client, key string, st registry.State) (*stateWatch, error) {
	pk, err := registry.MustKeys(smallPrefix).Parse(key)
	if err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &stateWatch{seen: make(chan time.Time, 1), cancel: cancel}
	wch := cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		// Ends when the watch does: at cancel.
		for wr := range wch {
			now := time.Now()
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if in, err := registry.DecodeInstance(pk, ev.Kv.Value); err == nil && in.State.Effective() == st {
					select {
					case w.seen <- now:
					default:
					}
				}
			}
		}
	}()
	return w, nil
}

// wait returns when the state was first seen, waiting up to timeout for
// it, and stops the watch.
func (w *stateWatch) wait(timeout time.Duration) (time.Time, bool) {
	defer w.cancel()
	select {
	case t := <-w.seen:
		return t, true
	case <-time.After(timeout):
		return time.Time{}, false
	}
}

// stop ends the watch.
func (w *stateWatch) stop() { w.cancel() }

// pollDNS asks name every `every` until cond holds for the answer or
// timeout passes, and returns when it first held.
func pollDNS(ctx context.Context, addr, name string, timeout, every time.Duration, cond func(*dns.Msg) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := exchange(ctx, addr, name)
		if err == nil && cond(m) {
			return time.Now(), nil
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if time.Now().After(deadline) {
			got := "no answer"
			if m != nil {
				got = fmt.Sprintf("%s %v", dns.RcodeToString[m.Rcode], m.Answer)
			}
			return time.Time{}, fmt.Errorf("%s: condition not met within %v (last: %s)", name, timeout, got)
		}
		time.Sleep(every)
	}
}
