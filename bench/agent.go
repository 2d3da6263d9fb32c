package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// agentService is one service in an agent's config.
type agentService struct {
	Name, Unit string
	Election   bool
}

// agentProc is one bin/servicereg process.
type agentProc struct {
	Host    string
	Overlay netip.Addr
	proc    *testkit.Process
}

// agentConfig is the YAML config of an agent on the user manager sd.
func agentConfig(host string, endpoint string, ttl time.Duration, public, overlay netip.Addr, svcs []agentService) string {
	var b strings.Builder
	fmt.Fprintf(&b, "host: %s\netcd:\n  endpoints: [%q]\nprefix: %s\nttl: %s\nsystemd: user\n", host, endpoint, smallPrefix, ttl)
	fmt.Fprintf(&b, "addrs:\n  public: [%q]\n  %s: [%q]\nservices:\n", public, viewNetwork, overlay)
	for _, s := range svcs {
		fmt.Fprintf(&b, "  - name: %s\n    unit: %s\n", s.Name, s.Unit)
		if s.Election {
			b.WriteString("    master_election: true\n")
		}
	}
	return b.String()
}

// startAgent starts bin/servicereg for host (agent number n picks its
// addresses) against sd's user manager; it stops when the part ends.
func startAgent(atEnd *cleanups, cfg Config, env *Env, sd *testkit.Systemd, n int, host string, ttl time.Duration, svcs []agentService) (*agentProc, error) {
	pub := addAddr(netip.MustParseAddr("198.19.0.1"), n)
	ovl := addAddr(netip.MustParseAddr("10.99.0.1"), n)
	path := filepath.Join(env.Dir, "agent-"+host+".yml")
	if err := os.WriteFile(path, []byte(agentConfig(host, env.Etcd.ClientURL, ttl, pub, ovl, svcs)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Servicereg(), "-config", path, "-metrics", "", "-log-level", "warn")
	cmd.Env = append(os.Environ(), sd.Env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("servicereg for %s: %w", host, err)
	}
	a := &agentProc{Host: host, Overlay: ovl, proc: proc}
	atEnd.add(a.Stop)
	return a, nil
}

// Stop stops the agent gracefully (it revokes its lease).
func (a *agentProc) Stop() { a.proc.Stop(10 * time.Second) }

// Kill kills the agent with SIGKILL: its lease lives on until its TTL.
func (a *agentProc) Kill() { a.proc.Kill() }

// Log returns the agent's output so far.
func (a *agentProc) Log() string {
	return a.proc.Out.Tail(1500)
}

// waitDNS queries name until cond holds for the answer or timeout passes;
// it returns when cond first held. It asks again almost at once: the
// propagation it times is about a millisecond.
func waitDNS(ctx context.Context, addr, name string, timeout time.Duration, cond func(*dns.Msg) bool) (time.Time, error) {
	return pollDNS(ctx, addr, name, timeout, 200*time.Microsecond, cond)
}

// hasAddr holds when the answer's A records include ip.
func hasAddr(ip netip.Addr) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		for _, a := range answerAddrs(m) {
			if a == ip {
				return true
			}
		}
		return false
	}
}

// lacksAddr holds when the answer (NOERROR or NXDOMAIN) has no A for ip.
func lacksAddr(ip netip.Addr) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		return (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError) && !hasAddr(ip)(m)
	}
}

// durRow formats percentiles of ds for a table row.
func durRow(ds []time.Duration) []string {
	if len(ds) == 0 {
		return []string{"0", "-", "-", "-", "-"}
	}
	return []string{fmt.Sprint(len(ds)), fmtDur(percentileOf(ds, 0.5)), fmtDur(percentileOf(ds, 0.9)),
		fmtDur(percentileOf(ds, 0.99)), fmtDur(percentileOf(ds, 1))}
}

// agentSetup is what the agent parts share: a rollcall server and a
// systemd user manager.
func agentSetup(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Server, *testkit.Systemd, error) {
	if !env.HasPlugin("rollcall") {
		return nil, nil, skipf("plugin rollcall is not compiled into bin/coredns")
	}
	if _, err := os.Stat(cfg.Servicereg()); err != nil {
		return nil, nil, skipf("no agent binary (%v): build cmd/servicereg", err)
	}
	if _, err := env.EnsureData(ctx, cfg.Small, smallPrefix, true); err != nil {
		return nil, nil, err
	}
	s, err := env.Start(ctx, atEnd, rollcallContender("rollcall", env.Etcd.ClientURL, smallPrefix))
	if err != nil {
		return nil, nil, err
	}
	sd, err := testkit.NewSystemd()
	if errors.Is(err, testkit.ErrNoSystemd) {
		return nil, nil, skipf("%v: this part needs a real systemd user manager", err)
	}
	if err != nil {
		return nil, nil, err
	}
	atEnd.add(sd.Close)
	return s, sd, nil
}

// systemctl runs `systemctl --user` against sd; its error holds the output.
func systemctl(sd *testkit.Systemd, args ...string) error {
	if out, err := sd.TrySystemctl(args...); err != nil {
		return fmt.Errorf("systemctl --user %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// startSleepUnit writes a unit that runs until stopped and starts it.
func startSleepUnit(sd *testkit.Systemd, unit string) error {
	if err := sd.TryWriteUnit(unit, testkit.SleepUnit); err != nil {
		return err
	}
	return systemctl(sd, "start", unit)
}

// partAgent times `systemctl --user start` of a unit until its service
// answers in DNS with a real agent, and stop until it is gone.
func partAgent(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	sec := &Section{Title: fmt.Sprintf("Propagation: unit start/stop to DNS answer, real agent (%d cycles)", cfg.AgentChanges)}
	s, sd, err := agentSetup(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, nil, err
	}
	const svc, unit = "agentprop", "agentprop.service"
	if err := sd.TryWriteUnit(unit, testkit.SleepUnit); err != nil {
		return nil, nil, err
	}
	a, err := startAgent(atEnd, cfg, env, sd, 0, "agent-prop", 10*time.Second, []agentService{{Name: svc, Unit: unit}})
	if err != nil {
		return nil, nil, err
	}
	name := svc + "." + Zone
	var up, down, ctlUp, ctlDown []time.Duration
	for i := 0; i < cfg.AgentChanges; i++ {
		t0 := time.Now()
		if err := systemctl(sd, "start", unit); err != nil {
			return nil, nil, err
		}
		ctlUp = append(ctlUp, time.Since(t0))
		at, err := waitDNS(ctx, s.Addr, name, 30*time.Second, hasAddr(a.Overlay))
		if err != nil {
			return nil, []string{"agent: " + err.Error()}, fmt.Errorf("unit start %d: %w; agent log: %s", i, err, a.Log())
		}
		up = append(up, at.Sub(t0))
		t0 = time.Now()
		if err := systemctl(sd, "stop", unit); err != nil {
			return nil, nil, err
		}
		ctlDown = append(ctlDown, time.Since(t0))
		at, err = waitDNS(ctx, s.Addr, name, 30*time.Second, lacksAddr(a.Overlay))
		if err != nil {
			return nil, []string{"agent: " + err.Error()}, fmt.Errorf("unit stop %d: %w; agent log: %s", i, err, a.Log())
		}
		down = append(down, at.Sub(t0))
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("Propagation `systemctl --user start` -> DNS with a real agent: p50 %s, p99 %s (systemctl itself p50 %s); stop -> gone p50 %s.",
		fmtDur(percentileOf(up, 0.5)), fmtDur(percentileOf(up, 0.99)), fmtDur(percentileOf(ctlUp, 0.5)), fmtDur(percentileOf(down, 0.5))))
	sec.Header = []string{"event", "n", "p50", "p90", "p99", "max", "systemctl itself (p50)"}
	sec.Row(append(append([]string{"`systemctl --user start` -> name answers"}, durRow(up)...), fmtDur(percentileOf(ctlUp, 0.5)))...)
	sec.Row(append(append([]string{"`systemctl --user stop` -> name gone"}, durRow(down)...), fmtDur(percentileOf(ctlDown, 0.5)))...)
	sec.Intro = append(sec.Intro, "bin/servicereg watches a private systemd user manager (as test/testkit starts it) and registers `agentprop` while "+
		"`agentprop.service` is active; rollcall (views on) serves it. Time is from running systemctl to the first UDP answer that shows "+
		"the change, polled every 0.2 ms; it includes systemctl's own run time.")
	return sec, nil, nil
}
