package main

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"

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
		return masterHost(m, agents)
	}
	// Both instances registered, then a master.
	for _, h := range hosts {
		if _, err := waitDNS(ctx, s.Addr, svc+"."+Zone, 30*time.Second, hasAddr(agents[h].Overlay)); err != nil {
			return nil, nil, fmt.Errorf("instance of %s never answered: %w; agent log: %s", h, err, agents[h].Log())
		}
	}
	sec.Header = []string{"event", "n", "p50", "p90", "p99", "max", "bound"}
	if _, err := waitDNS(ctx, s.Addr, master, 15*time.Second, func(m *dns.Msg) bool { return masterHost(m, agents) != "" }); err != nil {
		why := fmt.Sprintf("`%s` named no master within 15 s of two agents registering the master_election service `%s` "+
			"(the agent in this build does not campaign, or rollcall does not serve its election)", master, svc)
		sec.Row("graceful: `systemctl --user stop` of the master's unit -> new master in DNS", notMeasured(why))
		sec.Row("SIGKILL of the master's agent -> new master in DNS", notMeasured(why))
		sec.Summary = append(sec.Summary, "Failover with the agent: not measured: "+why+".")
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
		at, err := waitDNS(ctx, s.Addr, master, 60*time.Second, func(r *dns.Msg) bool { return masterHost(r, agents) == other })
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
		at, err := waitDNS(ctx, s.Addr, master, cfg.AgentTTL+60*time.Second, func(r *dns.Msg) bool { return masterHost(r, agents) == other })
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

// masterHost returns the host whose address a <svc>-master A answer holds
// (the master's own A record, in the bench client's view), or "".
func masterHost(m *dns.Msg, agents map[string]*agentProc) string {
	addrs := answerAddrs(m)
	if len(addrs) != 1 {
		return ""
	}
	for h, a := range agents {
		if a != nil && a.Overlay == addrs[0] {
			return h
		}
	}
	return ""
}
