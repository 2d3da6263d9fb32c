package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// failoverService is the master_election service of the failover part.
const failoverService = "fo"

// partFailover times how long `<service>-master` takes to name another host
// after a graceful stop of the master's unit, and after SIGKILL of the
// master's agent (which leaves its lease to expire: compare to TTL + 1 s).
func partFailover(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	sec := &Section{Title: fmt.Sprintf("Failover (agent lease TTL %v)", cfg.AgentTTL)}
	fp, err := startFailoverPair(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, nil, err
	}
	sec.Header = []string{"event", "n", "p50", "p90", "p99", "max", "bound"}
	if _, err := waitDNS(ctx, fp.s.Addr, fp.masterName(), 15*time.Second, func(m *dns.Msg) bool { return masterHost(m, fp.agents) != "" }); err != nil {
		why := fmt.Sprintf("`%s` named no master within 15 s of two agents registering the master_election service `%s` "+
			"(the agent in this build does not campaign, or rollcall does not serve its election)", fp.masterName(), failoverService)
		sec.Row("graceful: `systemctl --user stop` of the master's unit -> new master in DNS", notMeasured(why))
		sec.Row("SIGKILL of the master's agent -> new master in DNS", notMeasured(why))
		sec.Summary = append(sec.Summary, "Failover with the agent: not measured: "+why+".")
		return sec, nil, nil
	}
	graceful, err := fp.failovers(ctx, cfg.Failovers, false)
	if err != nil {
		return nil, nil, err
	}
	killed, err := fp.failovers(ctx, cfg.Failovers, true)
	if err != nil {
		return nil, nil, err
	}
	bound := cfg.AgentTTL + time.Second
	sec.Summary = append(sec.Summary, fmt.Sprintf("Failover: graceful stop -> new master p50 %s (max %s); SIGKILL of the master's agent -> new master p50 %s (max %s), bound TTL + 1 s = %v.",
		fmtDur(percentileOf(graceful, 0.5)), fmtDur(percentileOf(graceful, 1)), fmtDur(percentileOf(killed, 0.5)), fmtDur(percentileOf(killed, 1)), bound))
	sec.Row(append(append([]string{"graceful: `systemctl --user stop` of the master's unit -> new master in DNS"}, durRow(graceful)...), "-")...)
	sec.Row(append(append([]string{"SIGKILL of the master's agent -> new master in DNS"}, durRow(killed)...),
		fmt.Sprintf("TTL + 1 s = %v", bound))...)
	return sec, nil, nil
}

// failoverPair is the failover part's set-up: two hosts, each with a unit
// of failoverService and an agent campaigning for its master, and the
// rollcall server that names the master.
type failoverPair struct {
	cfg    Config
	env    *Env
	atEnd  *cleanups
	s      *Server
	sd     *testkit.Systemd
	hosts  []string
	units  map[string]string     // by host
	agents map[string]*agentProc // by host
}

// startFailoverPair starts both hosts' units and agents and waits until
// both instances answer in DNS.
func startFailoverPair(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*failoverPair, error) {
	s, sd, err := agentSetup(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, err
	}
	fp := &failoverPair{cfg: cfg, env: env, atEnd: atEnd, s: s, sd: sd,
		hosts: []string{"agent-fo-a", "agent-fo-b"}, units: map[string]string{}, agents: map[string]*agentProc{}}
	for i, h := range fp.hosts {
		fp.units[h] = "fo-" + h + ".service"
		if err := startSleepUnit(sd, fp.units[h]); err != nil {
			return nil, err
		}
		if err := fp.startAgent(i); err != nil {
			return nil, err
		}
	}
	for _, h := range fp.hosts {
		if err := fp.waitRegistered(ctx, h); err != nil {
			return nil, fmt.Errorf("instance of %s never answered: %w; agent log: %s", h, err, fp.agents[h].Log())
		}
	}
	return fp, nil
}

// startAgent starts the agent of host i (again, after a kill).
func (fp *failoverPair) startAgent(i int) error {
	h := fp.hosts[i]
	a, err := startAgent(fp.atEnd, fp.cfg, fp.env, fp.sd, 10+i, h, fp.cfg.AgentTTL,
		[]agentService{{Name: failoverService, Unit: fp.units[h], Election: true}})
	fp.agents[h] = a
	return err
}

// masterName is the name that answers the master's address.
func (fp *failoverPair) masterName() string { return failoverService + "-master." + Zone }

// waitRegistered waits until host's instance answers in DNS.
func (fp *failoverPair) waitRegistered(ctx context.Context, host string) error {
	_, err := waitDNS(ctx, fp.s.Addr, failoverService+"."+Zone, 30*time.Second, hasAddr(fp.agents[host].Overlay))
	return err
}

// failovers fails the master over n times, by stopping its unit or, with
// kill, by SIGKILL of its agent, and returns how long each took to show in
// DNS.
func (fp *failoverPair) failovers(ctx context.Context, n int, kill bool) ([]time.Duration, error) {
	how := "graceful"
	if kill {
		how = "SIGKILL"
	}
	var ds []time.Duration
	for i := 0; i < n; i++ {
		d, err := fp.failover(ctx, kill)
		if err != nil {
			return nil, fmt.Errorf("%s failover %d: %w", how, i, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// failover stops the master once (its unit, or with kill its agent) and
// returns the time until DNS named the other host master; then it brings
// the old master back, a standby now, and waits until it answers again.
func (fp *failoverPair) failover(ctx context.Context, kill bool) (time.Duration, error) {
	m, err := exchange(ctx, fp.s.Addr, fp.masterName())
	if err != nil {
		return 0, err
	}
	idx := 0
	switch masterHost(m, fp.agents) {
	case fp.hosts[0]:
	case fp.hosts[1]:
		idx = 1
	default:
		return 0, errors.New(fp.masterName() + " names no master")
	}
	master, other := fp.hosts[idx], fp.hosts[1-idx]
	t0 := time.Now()
	timeout := 60 * time.Second
	if kill {
		fp.agents[master].Kill()
		timeout += fp.cfg.AgentTTL
	} else if err := systemctl(fp.sd, "stop", fp.units[master]); err != nil {
		return 0, err
	}
	at, err := waitDNS(ctx, fp.s.Addr, fp.masterName(), timeout, func(r *dns.Msg) bool { return masterHost(r, fp.agents) == other })
	if err != nil {
		return 0, err
	}
	if kill {
		err = fp.startAgent(idx)
	} else {
		err = systemctl(fp.sd, "start", fp.units[master])
	}
	if err != nil {
		return 0, err
	}
	if err := fp.waitRegistered(ctx, master); err != nil {
		return 0, fmt.Errorf("after the failover: %w", err)
	}
	return at.Sub(t0), nil
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
