package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// partFailover times how long `<service>-master` takes to name another host
// after a graceful stop of the master's unit, and after SIGKILL of the
// master's agent (which leaves its lease to expire: compare to TTL + 1 s).
func partFailover(ctx context.Context, cfg Config, env *Env, tb *benchTB) (*Section, []string, error) {
	sec := &Section{Title: fmt.Sprintf("Failover (agent lease TTL %v)", cfg.AgentTTL)}
	s, sd := agentSetup(ctx, cfg, env, tb)
	const svc = "fo"
	hosts := []string{"agent-fo-a", "agent-fo-b"}
	units := map[string]string{}
	agents := map[string]*agentProc{}
	start := func(i int) error {
		a, err := startAgent(tb, cfg, env, sd, 10+i, hosts[i], cfg.AgentTTL, []agentService{{Name: svc, Unit: units[hosts[i]], Election: true}})
		agents[hosts[i]] = a
		return err
	}
	for i, h := range hosts {
		units[h] = "fo-" + h + ".service"
		sd.WriteUnit(units[h], testkit.SleepUnit)
		sd.Systemctl("start", units[h])
		if err := start(i); err != nil {
			return nil, nil, err
		}
	}
	master := svc + "-master." + Zone
	cur := func() string {
		m, err := exchange(ctx, s.Addr, master)
		if err != nil {
			return ""
		}
		return masterHost(m, svc)
	}
	// Both instances registered, then a master.
	for _, h := range hosts {
		if _, err := waitDNS(ctx, s.Addr, svc+"."+Zone, 30*time.Second, hasAddr(agents[h].Overlay)); err != nil {
			return nil, nil, fmt.Errorf("instance of %s never answered: %w; agent log: %s", h, err, agents[h].Log())
		}
	}
	sec.Header = []string{"event", "n", "p50", "p90", "p99", "max", "bound"}
	if _, err := waitDNS(ctx, s.Addr, master, 15*time.Second, func(m *dns.Msg) bool { return masterHost(m, svc) != "" }); err != nil {
		why := fmt.Sprintf("`%s` named no master within 15 s of two agents registering the master_election service `%s` "+
			"(the agent in this build does not campaign, or rollcall does not serve its election)", master, svc)
		sec.Row("graceful: `systemctl --user stop` of the master's unit -> new master in DNS", notMeasured(why))
		sec.Row("SIGKILL of the master's agent -> new master in DNS", notMeasured(why))
		sec.Summary = append(sec.Summary, "Failover with the agent: not measured: "+why+".")
		// The election and the DNS side can still be timed with `rollcall
		// elect` as the candidate on each host (the agents keep the
		// instances registered).
		if err := electFailover(ctx, cfg, env, tb, sec, s.Addr, svc, hosts); err != nil {
			sec.Row("`rollcall elect` candidates", notMeasured(err.Error()))
		}
		return sec, nil, nil
	}
	var graceful, killed []time.Duration
	for i := 0; i < cfg.Failovers; i++ {
		m := cur()
		other := hosts[0]
		if m == hosts[0] {
			other = hosts[1]
		}
		t0 := time.Now()
		sd.Systemctl("stop", units[m])
		at, err := waitDNS(ctx, s.Addr, master, 60*time.Second, func(r *dns.Msg) bool { return masterHost(r, svc) == other })
		if err != nil {
			return nil, nil, fmt.Errorf("graceful failover %d: %w", i, err)
		}
		graceful = append(graceful, at.Sub(t0))
		sd.Systemctl("start", units[m])
		if _, err := waitDNS(ctx, s.Addr, svc+"."+Zone, 30*time.Second, hasAddr(agents[m].Overlay)); err != nil {
			return nil, nil, fmt.Errorf("after graceful failover %d: %w", i, err)
		}
	}
	for i := 0; i < cfg.Failovers; i++ {
		m := cur()
		other := hosts[0]
		if m == hosts[0] {
			other = hosts[1]
		}
		idx := 0
		if m == hosts[1] {
			idx = 1
		}
		t0 := time.Now()
		agents[m].Kill()
		at, err := waitDNS(ctx, s.Addr, master, cfg.AgentTTL+60*time.Second, func(r *dns.Msg) bool { return masterHost(r, svc) == other })
		if err != nil {
			return nil, nil, fmt.Errorf("failover after SIGKILL %d: %w", i, err)
		}
		killed = append(killed, at.Sub(t0))
		if err := start(idx); err != nil {
			return nil, nil, err
		}
		if _, err := waitDNS(ctx, s.Addr, svc+"."+Zone, 30*time.Second, hasAddr(agents[m].Overlay)); err != nil {
			return nil, nil, fmt.Errorf("after SIGKILL failover %d: %w", i, err)
		}
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("Failover: graceful stop -> new master p50 %s (max %s); SIGKILL of the master's agent -> new master p50 %s (max %s), bound TTL + 1 s = %v.",
		fmtDur(percentileOf(graceful, 0.5)), fmtDur(percentileOf(graceful, 1)), fmtDur(percentileOf(killed, 0.5)), fmtDur(percentileOf(killed, 1)), cfg.AgentTTL+time.Second))
	sec.Row(append(append([]string{"graceful: `systemctl --user stop` of the master's unit -> new master in DNS"}, durRow(graceful)...), "-")...)
	sec.Row(append(append([]string{"SIGKILL of the master's agent -> new master in DNS"}, durRow(killed)...),
		fmt.Sprintf("TTL + 1 s = %v", cfg.AgentTTL+time.Second))...)
	return sec, nil, nil
}

// masterHost returns the host of the CNAME target <host>.<svc>.Z in a
// <svc>-master answer, or "".
func masterHost(m *dns.Msg, svc string) string {
	for _, rr := range m.Answer {
		if c, ok := rr.(*dns.CNAME); ok {
			host, rest, _ := strings.Cut(c.Target, ".")
			if rest == svc+"."+Zone {
				return host
			}
		}
	}
	return ""
}

// electProc is one `rollcall elect` candidate.
type electProc struct {
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
}

// startElect runs `rollcall elect` for svc as host; its command waits for
// the elect process to go away, so no orphan outlives a SIGKILL.
func startElect(tb *benchTB, cfg Config, env *Env, svc, host string) (*electProc, error) {
	p := &electProc{out: new(testkit.Buffer), done: make(chan struct{})}
	p.cmd = exec.Command(cfg.Rollcall(), "elect", "--endpoints", env.Etcd.ClientURL, "--prefix", smallPrefix,
		"--host", host, "--ttl", fmt.Sprintf("%ds", int(cfg.AgentTTL.Seconds())), "--grace", "1s", svc, "--",
		"/bin/sh", "-c", "while kill -0 $PPID 2>/dev/null; do sleep 0.2; done")
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rollcall elect for %s: %w", host, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.signal(syscall.SIGTERM, 10*time.Second) })
	return p, nil
}

// signal sends sig and waits up to wait for the process to exit, then
// kills it.
func (p *electProc) signal(sig syscall.Signal, wait time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// candidates counts the election keys of svc.
func candidates(ctx context.Context, env *Env, svc string) int {
	keys := registry.MustKeys(smallPrefix)
	r, err := env.Cli.Get(ctx, keys.Election(svc)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return int(r.Count)
}

// electFailover times master changes of svc with a `rollcall elect`
// candidate per host: SIGTERM of the master's (it resigns) and SIGKILL (its
// lease must expire: compare to TTL + 1 s).
func electFailover(ctx context.Context, cfg Config, env *Env, tb *benchTB, sec *Section, addr, svc string, hosts []string) error {
	if _, err := os.Stat(cfg.Rollcall()); err != nil {
		return fmt.Errorf("no rollcall binary: %w", err)
	}
	master := svc + "-master." + Zone
	procs := map[string]*electProc{}
	for _, h := range hosts {
		p, err := startElect(tb, cfg, env, svc, h)
		if err != nil {
			return err
		}
		procs[h] = p
		// Campaign in order, so the first host is master.
		if _, err := waitDNS(ctx, addr, master, 30*time.Second, func(m *dns.Msg) bool { return masterHost(m, svc) != "" }); err != nil {
			return fmt.Errorf("%w; rollcall elect log: %s", err, p.out.Tail(1500))
		}
	}
	waitCandidates := func() error {
		deadline := time.Now().Add(30 * time.Second)
		for candidates(ctx, env, svc) < len(hosts) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the restarted candidate of %s never campaigned", svc)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	if err := waitCandidates(); err != nil {
		return err
	}
	run := func(sig syscall.Signal) ([]time.Duration, error) {
		var lat []time.Duration
		for i := 0; i < cfg.Failovers; i++ {
			m, err := exchange(ctx, addr, master)
			if err != nil {
				return nil, err
			}
			cur := masterHost(m, svc)
			if procs[cur] == nil {
				return nil, fmt.Errorf("master %q is none of the candidates", cur)
			}
			other := hosts[0]
			if cur == hosts[0] {
				other = hosts[1]
			}
			t0 := time.Now()
			if sig == syscall.SIGKILL {
				_ = procs[cur].cmd.Process.Kill()
			} else {
				_ = procs[cur].cmd.Process.Signal(sig)
			}
			at, err := waitDNS(ctx, addr, master, cfg.AgentTTL+60*time.Second, func(r *dns.Msg) bool { return masterHost(r, svc) == other })
			if err != nil {
				return nil, err
			}
			lat = append(lat, at.Sub(t0))
			<-procs[cur].done
			if procs[cur], err = startElect(tb, cfg, env, svc, cur); err != nil {
				return nil, err
			}
			if err := waitCandidates(); err != nil {
				return nil, err
			}
		}
		return lat, nil
	}
	graceful, err := run(syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("graceful: %w", err)
	}
	killed, err := run(syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	sec.Row(append(append([]string{"stand-in: SIGTERM of the master's `rollcall elect` (it resigns) -> new master in DNS"}, durRow(graceful)...), "-")...)
	sec.Row(append(append([]string{"stand-in: SIGKILL of the master's `rollcall elect` (lease expires) -> new master in DNS"}, durRow(killed)...),
		fmt.Sprintf("TTL + 1 s = %v", cfg.AgentTTL+time.Second))...)
	sec.Summary = append(sec.Summary, fmt.Sprintf("Failover with `rollcall elect` as the candidate (stand-in for the agent): resign -> new master p50 %s; "+
		"SIGKILL -> new master p50 %s, max %s (bound TTL + 1 s = %v).", fmtDur(percentileOf(graceful, 0.5)),
		fmtDur(percentileOf(killed, 0.5)), fmtDur(percentileOf(killed, 1)), cfg.AgentTTL+time.Second))
	sec.Note("The stand-in rows run `rollcall elect --ttl %v %s -- CMD` as the candidate of each host (the agents still register the instances): "+
		"the same election keys and the same DNS path, without the agent's own campaign.", cfg.AgentTTL, svc)
	return nil
}
