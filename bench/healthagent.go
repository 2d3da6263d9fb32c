package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rollcall/rollcall/servicereg"
	"github.com/rollcall/rollcall/test/testkit"
)

// checkTarget is the HTTP server the agents' health checks probe, run in
// this process (its CPU is not the agents'). What a path answers:
//
//	/ok/...     always 200
//	/flap/...   503 and 200 in turn, per path: with rise 1 and fall 1 every
//	            run of the check changes its state
//	/switch/... 200, or 503 while the part has turned that path down
//	/ref/...    always 200, for the yardstick client (healthref.go)
//
// It counts the requests of each kind but /switch/: the check runs the
// agents made, and the yardstick's GETs.
type checkTarget struct {
	URL  string // http://127.0.0.1:PORT
	srv  *http.Server
	ok   atomic.Int64
	flap atomic.Int64
	ref  atomic.Int64

	mu      sync.Mutex
	flapped map[string]bool // per /flap/ path: the last answer was 503
	down    map[string]bool // /switch/ paths answering 503
}

// startCheckTarget starts the target on a free loopback port; it stops
// when the part ends.
func startCheckTarget(atEnd *cleanups) (*checkTarget, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("check target: %w", err)
	}
	t := &checkTarget{URL: "http://" + ln.Addr().String(), flapped: map[string]bool{}, down: map[string]bool{}}
	t.srv = &http.Server{Handler: http.HandlerFunc(t.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = t.srv.Serve(ln) }() // ends with Close
	atEnd.add(func() { _ = t.srv.Close() })
	return t, nil
}

func (t *checkTarget) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	code := http.StatusOK
	switch {
	case strings.HasPrefix(p, "/ok/"):
		t.ok.Add(1)
	case strings.HasPrefix(p, "/ref/"):
		t.ref.Add(1)
	case strings.HasPrefix(p, "/flap/"):
		t.flap.Add(1)
		t.mu.Lock()
		t.flapped[p] = !t.flapped[p]
		if t.flapped[p] {
			code = http.StatusServiceUnavailable
		}
		t.mu.Unlock()
	case strings.HasPrefix(p, "/switch/"):
		t.mu.Lock()
		if t.down[p] {
			code = http.StatusServiceUnavailable
		}
		t.mu.Unlock()
	default:
		code = http.StatusNotFound
	}
	w.WriteHeader(code)
}

// setDown turns a /switch/ path down (503) or up (200).
func (t *checkTarget) setDown(path string, down bool) {
	t.mu.Lock()
	t.down[path] = down
	t.mu.Unlock()
}

// checkedService is one service of a checked agent: a unit and its HTTP
// checks.
type checkedService struct {
	Name, Unit string
	Checks     []httpCheck
}

// httpCheck is one HTTP check: the URL and its timing (zero: the agent's
// defaults).
type httpCheck struct {
	URL        string
	Interval   time.Duration
	Rise, Fall int
}

// checkedAgent is what one bin/servicereg of the health part runs with:
// its services and its state-write limit (zero: the agent's defaults).
type checkedAgent struct {
	Host       string
	N          int // picks its addresses
	WriteRate  float64
	WriteBurst int
	Services   []checkedService
}

// yaml is the agent's config file. Every agent gets a control socket of its
// own in dir, so that none of them contends for the default path.
func (c checkedAgent) yaml(endpoint, dir string, public, overlay netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "host: %s\netcd:\n  endpoints: [%q]\nprefix: %s\nsystemd: user\n", c.Host, endpoint, smallPrefix)
	fmt.Fprintf(&b, "control: %s\n", filepath.Join(dir, c.Host+".sock"))
	if c.WriteRate > 0 {
		fmt.Fprintf(&b, "state_write_rate: %v\nstate_write_burst: %d\n", c.WriteRate, c.WriteBurst)
	}
	fmt.Fprintf(&b, "addrs:\n  public: [%q]\n  %s: [%q]\nservices:\n", public, viewNetwork, overlay)
	for _, s := range c.Services {
		fmt.Fprintf(&b, "  - name: %s\n    unit: %s\n", s.Name, s.Unit)
		if len(s.Checks) > 0 {
			b.WriteString("    checks:\n")
		}
		for _, ch := range s.Checks {
			fmt.Fprintf(&b, "      - http: %q\n", ch.URL)
			if ch.Interval > 0 {
				fmt.Fprintf(&b, "        interval: %v\n", ch.Interval)
			}
			if ch.Rise > 0 {
				fmt.Fprintf(&b, "        rise: %d\n", ch.Rise)
			}
			if ch.Fall > 0 {
				fmt.Fprintf(&b, "        fall: %d\n", ch.Fall)
			}
		}
	}
	return b.String()
}

// startCheckedAgent writes c's config, checks it as the agent will, and
// starts bin/servicereg on sd's user manager; it stops when the part ends.
func startCheckedAgent(atEnd *cleanups, cfg Config, env *Env, sd *testkit.Systemd, c checkedAgent) (*agentProc, error) {
	pub := addAddr(netip.MustParseAddr("198.19.64.1"), c.N)
	ovl := addAddr(netip.MustParseAddr("10.99.64.1"), c.N)
	path := filepath.Join(env.Dir, "health-"+c.Host+".yml")
	if err := os.WriteFile(path, []byte(c.yaml(env.Etcd.ClientURL, env.Dir, pub, ovl)), 0o644); err != nil {
		return nil, err
	}
	// A config the agent would refuse is this program's bug: say so here
	// rather than as an agent that never registers.
	if _, err := servicereg.LoadConfig(path); err != nil {
		return nil, fmt.Errorf("agent config for %s: %w", c.Host, err)
	}
	cmd := exec.Command(cfg.Servicereg(), "-config", path, "-metrics", "", "-log-level", "warn")
	cmd.Env = append(os.Environ(), sd.Env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("servicereg for %s: %w", c.Host, err)
	}
	a := &agentProc{Host: c.Host, Overlay: ovl, proc: proc}
	atEnd.add(a.Stop)
	return a, nil
}

// Pid is the agent's process id.
func (a *agentProc) Pid() int { return a.proc.Cmd.Process.Pid }

// waitInstance waits until the instance name <host>.<service> answers with
// a's address: its record is in etcd and served, whatever its state.
func waitInstance(ctx context.Context, dnsAddr string, a *agentProc, service string) error {
	name := a.Host + "." + service + "." + Zone
	if _, err := waitDNS(ctx, dnsAddr, name, time.Minute, hasAddr(a.Overlay)); err != nil {
		return fmt.Errorf("agent %s never registered %s: %w; its log: %s", a.Host, service, err, a.Log())
	}
	return nil
}

// stopAll stops agents at once (each revokes its lease) and waits for all.
func stopAll(agents []*agentProc) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(a.Stop)
	}
	wg.Wait()
}
