package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// unitFile is the CoreDNS unit whose settings the central server runs with.
const unitFile = "deploy/coredns.service"

// memoryResult is what the memory part measured.
type memoryResult struct {
	instances int
	unitEnv   []string // the unit's Environment= settings

	centralReady, centralAfter, centralHeap int64 // VmRSS at ready, after the queries; live heap
	hostIdle, hostAfter, hostHeap           int64 // the per-host server's
	queries, answered                       int64 // through the per-host server
	heapErr                                 error
}

// partMemory measures the two tiers' memory: a central rollcall server with
// the big data set, run with deploy/coredns.service's environment, and a
// per-host server that only caches and forwards to it, as
// corefile/two-tier/host.Corefile does, after a spread of queries through
// the per-host one.
func partMemory(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	for _, p := range []string{"rollcall", "cache", "forward"} {
		if !env.HasPlugin(p) {
			return nil, nil, skipf("plugin %s is not compiled into bin/coredns", p)
		}
	}
	res := &memoryResult{instances: cfg.Big.Instances()}
	var err error
	if res.unitEnv, err = unitEnvironment(repoPath(unitFile)); err != nil {
		return nil, nil, err
	}
	if _, err := env.EnsureData(ctx, cfg.Big, bigPrefix, false); err != nil {
		return nil, nil, err
	}
	central, err := startEnvServer(ctx, env, atEnd, rollcallContender("central", env.Etcd.ClientURL, bigPrefix).Corefile, res.unitEnv, "central")
	if err != nil {
		return nil, nil, err
	}
	res.centralReady, _ = central.RSS()
	host, err := startEnvServer(ctx, env, atEnd, func(p serverPorts) string { return hostCorefile(p, central.Addr) }, nil, "per-host")
	if err != nil {
		return nil, nil, err
	}
	res.hostIdle, _ = host.RSS()
	res.queries, res.answered = queryFor(ctx, host.Addr, cfg.Big.Queries(), cfg.Scale.HostQueries, 16)
	res.hostAfter, _ = host.RSS()
	res.centralAfter, _ = central.RSS()
	res.hostHeap, res.heapErr = host.LiveHeap(ctx)
	if res.heapErr == nil {
		res.centralHeap, res.heapErr = central.LiveHeap(ctx)
	}
	env.setMemory(res)
	var problems []string
	if res.answered < res.queries*9/10 {
		problems = append(problems, fmt.Sprintf("memory: the per-host server answered %d of %d queries", res.answered, res.queries))
	}
	return res.section(cfg), problems, nil
}

// startEnvServer starts bin/coredns with a Corefile and extra environment
// and waits until it answers; it stops when the part ends.
func startEnvServer(ctx context.Context, env *Env, atEnd *cleanups, corefile func(serverPorts) string, extra []string, name string) (*Server, error) {
	p, err := env.ports()
	if err != nil {
		return nil, err
	}
	s, err := startServerEnv(name, env.cfg.Bin, env.Dir, corefile(p), p, env.cfg.Pin, false, extra)
	if err != nil {
		return nil, err
	}
	atEnd.add(s.Stop)
	if _, err := s.WaitReady(ctx, 5*time.Minute); err != nil {
		return nil, err
	}
	return s, s.WaitAnswering(ctx, time.Minute)
}

// hostCorefile is the per-host server of the two-tier layout
// (corefile/two-tier/host.Corefile): the zone cached and forwarded to the
// central server, no rollcall, no etcd. The block for other names is left
// out: the benchmark asks none.
func hostCorefile(p serverPorts, central string) string {
	return corefileHead(p) + fmt.Sprintf("    errors\n    cache %d\n    forward . %s\n}\n", ttlSeconds, central)
}

// queryFor asks addr the names of qs, round and round, from workers
// goroutines for d, and returns how many queries went out and how many got
// an answer. The window is kept by the clock, not by a context that ends
// with it: a query sent in its last moment would fail at once, and a
// worker could spin through hundreds of them before it saw the context end.
func queryFor(ctx context.Context, addr string, qs []Query, d time.Duration, workers int) (sent, answered int64) {
	end := time.Now().Add(d)
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				i := next.Add(1) - 1
				qctx, qcancel := context.WithTimeout(ctx, time.Second)
				_, err := exchange(qctx, addr, qs[int(i)%len(qs)].Name)
				qcancel()
				if err == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return next.Load(), ok.Load()
}

// unitEnvironment reads the Environment= settings of a systemd unit file
// (lines commented out are not settings).
func unitEnvironment(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the unit's settings: %w", err)
	}
	defer f.Close()
	var envs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Environment=")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(v) {
			envs = append(envs, strings.Trim(kv, `"`))
		}
	}
	return envs, sc.Err()
}

// repoPath is rel under the repository root: the nearest folder above the
// working directory with a go.mod (make bench runs at the root, go test in
// bench/).
func repoPath(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		return rel
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return rel
		}
		dir = parent
	}
}

// section is the memory part's table and summary.
func (res *memoryResult) section(cfg Config) *Section {
	sec := &Section{Title: fmt.Sprintf("Per-host memory: two tiers, %d instances", res.instances)}
	settings := "none (no Environment= line is active)"
	if len(res.unitEnv) > 0 {
		settings = "`" + strings.Join(res.unitEnv, " ") + "`"
	}
	sec.Intro = append(sec.Intro, fmt.Sprintf("The central server is rollcall with the scale data set (%s), started with %s's environment: %s. "+
		"The per-host server holds no index and no watch: `cache %d` and `forward` to the central server, as corefile/two-tier/host.Corefile. "+
		"%d queries of the scale mix (%d distinct names) went through the per-host server over %v, %d answered.",
		cfg.Big, unitFile, settings, ttlSeconds, res.queries, len(cfg.Big.Queries()), cfg.Scale.HostQueries, res.answered))
	sec.Header = []string{"server", "VmRSS at start", "VmRSS after the queries", "live heap after GC"}
	heap := func(n int64) string {
		if res.heapErr != nil {
			return notMeasured(res.heapErr.Error())
		}
		return fmtBytes(n)
	}
	sec.Row("per-host (cache and forward)", fmtBytes(res.hostIdle), fmtBytes(res.hostAfter), heap(res.hostHeap))
	sec.Row(fmt.Sprintf("central (rollcall, %d instances)", res.instances), fmtBytes(res.centralReady), fmtBytes(res.centralAfter), heap(res.centralHeap))
	sec.Summary = append(sec.Summary, fmt.Sprintf("Per-host memory, two tiers: per-host server (cache only) VmRSS %s after %d queries; central server at %d instances VmRSS %s (live heap %s), with %s's settings (%s).",
		fmtBytes(res.hostAfter), res.queries, res.instances, fmtBytes(res.centralAfter), heap(res.centralHeap), unitFile, settings))
	return sec
}
