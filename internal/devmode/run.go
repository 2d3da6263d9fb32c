package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/servicereg"

	// rollcall's CoreDNS build: the plugins and their order, as bin/coredns.
	_ "github.com/rollcall/rollcall/internal/corednsbuild"
)

// Bounds on start-up and shutdown steps: a step that takes longer is stuck,
// and Run says which.
const (
	etcdStartTimeout  = 60 * time.Second
	agentReadyTimeout = 30 * time.Second
	agentStopTimeout  = 15 * time.Second
	dnsCheckTimeout   = 10 * time.Second
)

// caddyMu serialises caddy.Start and Stop: caddy keeps global state, and
// tests may run more than one dev system in a process.
var caddyMu sync.Mutex

// Run starts etcd, the agent and CoreDNS, prints the banner, and runs until
// ctx ends; then it stops them (DNS, the agent, which revokes its lease,
// etcd) and returns nil. It returns an error, having stopped whatever it
// started, when a port is taken (wrapping ErrPortTaken), when the data
// folder is in use, or when a part fails to start or fails while running.
func Run(ctx context.Context, cfg Config) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := checkPorts(c.portUses()); err != nil {
		return err
	}
	unlock, err := lockDataDir(c.DataDir, c.DataDirFlag)
	if err != nil {
		return err
	}
	defer unlock()

	s := &system{c: c, log: c.Logger}
	defer s.stop()
	switch err := s.start(ctx); {
	case errors.Is(err, errStopped):
		return nil // stopped while starting: not a failure
	case err != nil:
		return err
	}
	return s.wait(ctx)
}

// errStopped is start's error when ctx ended before everything was up.
var errStopped = errors.New("stopped while starting")

// system is the parts of one Run, as they start.
type system struct {
	c   Config
	log *slog.Logger
	// stops holds the stop of each part started, in starting order; stop
	// runs them in reverse.
	stops     []func()
	etcd      *embed.Etcd
	agentDone chan error // the agent's Run result, put back once read
}

// onStop registers the stop of a part just started.
func (s *system) onStop(f func()) { s.stops = append(s.stops, f) }

// stop stops every part started, the last started first.
func (s *system) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// start starts etcd, the agent and CoreDNS in order and prints the banner
// once DNS answers (or warns that it does not yet).
func (s *system) start(ctx context.Context) error {
	if err := s.startEtcd(ctx); err != nil {
		return err
	}
	cli, err := etcdconn.New(etcdconn.Config{Endpoints: []string{s.c.ClientURL}})
	if err != nil {
		return err
	}
	s.onStop(func() { cli.Close() })
	host, err := s.startAgent(ctx, cli)
	if err != nil {
		return err
	}
	if err := s.startDNS(); err != nil {
		return err
	}
	if err := checkDNS(ctx, s.c); err != nil {
		s.log.Warn("DNS does not answer for the demo service yet", "err", err)
	}
	fmt.Fprint(s.c.Out, s.c.Banner(host))
	return nil
}

// startEtcd starts the embedded etcd.
func (s *system) startEtcd(ctx context.Context) error {
	etcd, err := startEtcd(ctx, s.c)
	if err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		return err
	}
	s.etcd = etcd
	s.onStop(func() {
		etcd.Close()
		s.log.Info("etcd stopped", "data", s.c.DataDir)
	})
	s.log.Info("etcd started", "client", s.c.ClientURL, "data", s.c.DataDir, "log", filepath.Join(s.c.DataDir, "etcd.log"))
	return nil
}

// startAgent runs the agent and waits until it has registered this host,
// whose name it returns.
func (s *system) startAgent(ctx context.Context, cli *clientv3.Client) (string, error) {
	agent, host, err := newAgent(s.c, cli)
	if err != nil {
		return "", err
	}
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	s.agentDone = make(chan error, 1)
	go func() { s.agentDone <- agent.Run(agentCtx) }()
	s.onStop(func() {
		stopAgent()
		select {
		case err := <-s.agentDone:
			if err != nil {
				s.log.Error("agent stopped with an error", "err", err)
			} else {
				s.log.Info("agent stopped; its lease is revoked")
			}
		case <-time.After(agentStopTimeout):
			s.log.Error("agent did not stop in time; its keys expire with its lease", "after", agentStopTimeout)
		}
	})
	select {
	case <-agent.Ready():
	case err := <-s.agentDone:
		s.agentDone <- err // for the stop above
		return "", fmt.Errorf("agent: %w", errOrExit(err))
	case <-ctx.Done():
		return "", errStopped
	case <-time.After(agentReadyTimeout):
		return "", fmt.Errorf("agent did not register host %s within %v: see the log above", host, agentReadyTimeout)
	}
	s.log.Info("agent registered", "host", host, "service", DemoService)
	return host, nil
}

// startDNS starts CoreDNS in this process.
func (s *system) startDNS() error {
	inst, err := startCoreDNS(s.c)
	if err != nil {
		return err
	}
	s.onStop(func() {
		caddyMu.Lock()
		inst.Stop()
		inst.Wait()
		// Stop does not run the plugins' OnShutdown: without this the
		// rollcall plugin's etcd watch stays open and holds etcd's
		// shutdown for its request timeout.
		errs := inst.ShutdownCallbacks()
		caddyMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			s.log.Warn("CoreDNS shutdown", "err", err)
		}
		s.log.Info("DNS stopped")
	})
	return nil
}

// wait runs until ctx ends (nil) or a part fails (its error).
func (s *system) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.log.Info("stopping")
		return nil
	case err := <-s.agentDone:
		s.agentDone <- err // for the agent's stop
		return fmt.Errorf("agent: %w", errOrExit(err))
	case err := <-s.etcd.Err():
		return fmt.Errorf("etcd: %w", err)
	}
}

func errOrExit(err error) error {
	if err == nil {
		return errors.New("stopped unexpectedly")
	}
	return err
}

// lockDataDir creates dir and holds an exclusive lock on a file in it, so a
// second `rollcall dev` on the same folder fails at once instead of waiting
// on etcd's own lock.
func lockDataDir(dir, flag string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder %s: %w", dir, err)
	}
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data folder lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data folder %s is in use by another rollcall dev (%v): stop it, or choose another folder with %s", dir, err, flag)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// startEtcd starts a one-member etcd in c.DataDir/etcd, logging to
// c.DataDir/etcd.log, and waits until it serves.
func startEtcd(ctx context.Context, c Config) (*embed.Etcd, error) {
	cu, _ := url.Parse(c.ClientURL)
	pu, _ := url.Parse(c.PeerURL)
	ec := embed.NewConfig()
	ec.Name = "dev"
	ec.Dir = filepath.Join(c.DataDir, "etcd")
	ec.ListenClientUrls = []url.URL{*cu}
	ec.AdvertiseClientUrls = []url.URL{*cu}
	ec.ListenPeerUrls = []url.URL{*pu}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	ec.InitialClusterToken = "rollcall-dev"
	// etcd logs a lot, and at error level on every normal shutdown: its
	// log goes to a file, so the terminal shows rollcall's state changes.
	ec.LogOutputs = []string{filepath.Join(c.DataDir, "etcd.log")}
	ec.LogLevel = "info"
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd (data %s, log %s): %w", ec.Dir, ec.LogOutputs[0], err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed while starting (log %s): %w", ec.LogOutputs[0], err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("stopped while etcd was starting: %w", ctx.Err())
	case <-time.After(etcdStartTimeout):
		e.Close()
		return nil, fmt.Errorf("etcd not ready after %v: see %s", etcdStartTimeout, ec.LogOutputs[0])
	}
}

// newAgent makes the dev agent: the services config's units (if any, when
// systemd is reachable) plus the demo service, always present, on this host
// with its detected addresses, or 127.0.0.1 when it has none that another
// host could use.
func newAgent(c Config, cli *clientv3.Client) (*servicereg.Agent, string, error) {
	acfg := &servicereg.Config{}
	if c.ServicesConfig != "" {
		loaded, err := servicereg.LoadConfig(c.ServicesConfig)
		if err != nil {
			return nil, "", fmt.Errorf("services config: %w", err)
		}
		acfg = loaded
	}
	if c.Host != "" {
		acfg.Host = c.Host
	}
	// The dev agent writes to the embedded etcd, whatever the file says.
	acfg.Etcd = servicereg.EtcdConfig{Endpoints: []string{c.ClientURL}}
	acfg.Prefix = c.Prefix
	acfg.TTL = c.TTL
	detected, err := servicereg.DetectAddrs()
	if err != nil {
		c.Logger.Warn("cannot detect this host's addresses", "err", err)
	}
	if len(servicereg.SortAddrs(detected, acfg.Networks, acfg.Addrs)) == 0 {
		acfg.Addrs = registry.Addrs{registry.PublicNetwork: {netip.MustParseAddr("127.0.0.1")}}
	}
	var static []servicereg.Service
	demoConfigured := false
	for _, s := range acfg.Services {
		demoConfigured = demoConfigured || s.Name == DemoService
	}
	if !demoConfigured {
		static = append(static, servicereg.Service{Name: DemoService})
	}
	agent, err := servicereg.New(acfg, servicereg.Options{
		Logger:    c.Logger.With("part", "agent"),
		Static:    static,
		NoSystemd: len(acfg.Services) == 0,
		Client:    cli,
	})
	if err != nil {
		return nil, "", fmt.Errorf("agent: %w", err)
	}
	return agent, agent.Config().Host, nil
}

// startCoreDNS starts CoreDNS in-process with c's Corefile.
func startCoreDNS(c Config) (*caddy.Instance, error) {
	caddyMu.Lock()
	defer caddyMu.Unlock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	corefile := c.Corefile()
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		return nil, fmt.Errorf("start CoreDNS on %s: %w\nCorefile:\n%s", c.DNSAddr, err, corefile)
	}
	return inst, nil
}

// checkDNS asks the DNS server for the demo service until it answers with
// an address, so that the banner's dig command works when it is printed.
func checkDNS(ctx context.Context, c Config) error {
	name := DemoService + "." + c.Zone
	ctx, cancel := context.WithTimeout(ctx, dnsCheckTimeout)
	defer cancel()
	cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	retry := backoff.New(dnsCheckRetry)
	var last error
	for {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := cl.ExchangeContext(ctx, m, c.DNSAddr)
		switch {
		case err != nil:
			last = err
		case r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0:
			return nil
		default:
			last = fmt.Errorf("%s: %s with %d answers", name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		if retry.Wait(ctx) != nil {
			return last
		}
	}
}

// dnsCheckRetry paces checkDNS's questions: the server answers within a
// second or two of starting, so the cap stays short.
var dnsCheckRetry = backoff.Policy{Min: 50 * time.Millisecond, Base: 100 * time.Millisecond, Max: 500 * time.Millisecond}
