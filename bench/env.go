package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// Env is what every part shares: one embedded etcd (in this process) with
// the data sets written into it once, the binaries, and a work folder.
type Env struct {
	cfg  Config
	Etcd *testkit.Etcd
	Cli  *clientv3.Client
	Dir  string

	mu      sync.Mutex
	written map[string]bool // data sets written, by prefix
	plugins map[string]bool // plugins compiled into bin/coredns
	model   modelInputs     // what the scale parts measured, for the model part
}

// modelInputs is what the readers, leases and memory parts measured, for
// the model that extrapolates them (model.go); nil when a part did not run.
type modelInputs struct {
	readers []*fleetResult
	leases  []*leaseResult
	memory  *memoryResult
}

func (e *Env) setReaders(r []*fleetResult) { e.mu.Lock(); e.model.readers = r; e.mu.Unlock() }
func (e *Env) setLeases(r []*leaseResult)  { e.mu.Lock(); e.model.leases = r; e.mu.Unlock() }
func (e *Env) setMemory(r *memoryResult)   { e.mu.Lock(); e.model.memory = r; e.mu.Unlock() }

// modelIn returns what the scale parts measured so far.
func (e *Env) modelIn() modelInputs {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model
}

// Prefixes of the data sets in etcd.
const (
	smallPrefix = "/rollcall" // the throughput data set (and propagation)
	bigPrefix   = "/rcbig"    // the scale data set
)

// NewEnv makes the work folder, starts etcd and lists bin/coredns's
// plugins; Close stops etcd and removes the folder.
func NewEnv(cfg Config) (_ *Env, err error) {
	e := &Env{cfg: cfg, written: map[string]bool{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Dir, err = os.MkdirTemp("", "rollcall-bench"); err != nil {
		return nil, err
	}
	if e.Etcd, err = testkit.NewEtcd(); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	if e.Cli, err = e.Etcd.NewClient(); err != nil {
		return nil, err
	}
	if e.plugins, err = corednsPlugins(filepath.Join(cfg.Bin, "coredns")); err != nil {
		return nil, err
	}
	return e, nil
}

// Close closes the client, stops etcd and removes the work folder.
func (e *Env) Close() {
	if e.Cli != nil {
		e.Cli.Close()
	}
	if e.Etcd != nil {
		e.Etcd.Close()
	}
	if e.Dir != "" {
		os.RemoveAll(e.Dir)
	}
}

// corednsPlugins lists the plugins compiled into a coredns binary.
func corednsPlugins(bin string) (map[string]bool, error) {
	out, err := exec.Command(bin, "-plugins").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -plugins: %w (run `make build`)", bin, err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		// Older CoreDNS prints "dns.<name>", newer just the name.
		name := strings.TrimPrefix(strings.TrimSpace(l), "dns.")
		if name != "" && !strings.Contains(name, " ") && !strings.HasSuffix(name, ":") {
			m[name] = true
		}
	}
	return m, nil
}

// HasPlugin reports whether bin/coredns has the plugin compiled in.
func (e *Env) HasPlugin(name string) bool { return e.plugins[name] }

// missingPlugin names the first plugin contender c needs that bin/coredns
// lacks, or "".
func (e *Env) missingPlugin(c Contender) string {
	for _, p := range append([]string{c.Plugin}, c.Needs...) {
		if !e.HasPlugin(p) {
			return p
		}
	}
	return ""
}

// EnsureData writes data set d under prefix (rollcall layout) once; for
// the small prefix it also writes the SkyDNS copy for the etcd plugin.
// It returns how long the writes took (0 when already written).
func (e *Env) EnsureData(ctx context.Context, d Dataset, prefix string, sky bool) (time.Duration, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written[prefix] {
		return 0, nil
	}
	t0 := time.Now()
	if err := d.WriteRollcall(ctx, e.Cli, prefix); err != nil {
		return 0, fmt.Errorf("write %s under %s: %w", d, prefix, err)
	}
	if sky {
		if err := putAll(ctx, e.Cli, d.SkyDNSKeys(ttlSeconds)); err != nil {
			return 0, fmt.Errorf("write the SkyDNS copy of %s: %w", d, err)
		}
	}
	e.written[prefix] = true
	return time.Since(t0), nil
}

// ZoneFile writes the file plugin's zone for d and returns its path.
func (e *Env) ZoneFile(d Dataset) (string, error) {
	p := filepath.Join(e.Dir, fmt.Sprintf("db.%d.%d", d.Services, d.PerService))
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.WriteFile(p, []byte(d.ZoneFile(ttlSeconds)), 0o644); err != nil {
		return "", fmt.Errorf("write zone file: %w", err)
	}
	return p, nil
}

// ports hands out a server's ports.
func (e *Env) ports() (serverPorts, error) {
	var p serverPorts
	for _, port := range []*int{&p.DNS, &p.Ready, &p.Pprof} {
		var err error
		if *port, err = testkit.TryFreePort(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Start starts a contender's server and waits until it is ready; the
// server stops when the part ends (atEnd).
func (e *Env) Start(ctx context.Context, atEnd *cleanups, c Contender) (*Server, error) {
	p, err := e.ports()
	if err != nil {
		return nil, err
	}
	s, err := startServer(c.Name, e.cfg.Bin, e.Dir, c.Corefile(p), p, e.cfg.Pin, c.DiscardStdout)
	if err != nil {
		return nil, err
	}
	atEnd.add(s.Stop)
	if _, err := s.WaitReady(ctx, 5*time.Minute); err != nil {
		return nil, err
	}
	if err := s.WaitAnswering(ctx, time.Minute); err != nil {
		return nil, err
	}
	return s, nil
}
