package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// partScale loads the big data set into a rollcall server and reports its
// memory, how long its first sync takes, and its throughput next to a
// rollcall server with the small data set (alternating rounds).
func partScale(ctx context.Context, cfg Config, env *Env, tb *benchTB) (*Section, []string, error) {
	big, small := cfg.Big, cfg.Small
	sec := &Section{Title: fmt.Sprintf("Scale: %d instances over %d services", big.Instances(), big.Services)}
	if !env.HasPlugin("rollcall") {
		tb.Skipf("plugin rollcall is not compiled into bin/coredns")
	}
	var problems []string
	if _, err := env.EnsureData(ctx, small, smallPrefix, true); err != nil {
		return nil, nil, err
	}
	wrote, err := env.EnsureData(ctx, big, bigPrefix, false)
	if err != nil {
		return nil, nil, err
	}
	bigQs, smallQs := big.Queries(), small.Queries()

	// Baselines: CoreDNS with whoami (no data), then rollcall small.
	who, err := env.Start(ctx, tb, whoamiContender())
	if err != nil {
		return nil, nil, err
	}
	whoRSS, _ := who.RSS()
	rcSmall, err := env.Start(ctx, tb, rollcallContender("rollcall-small", env.Etcd.ClientURL, smallPrefix))
	if err != nil {
		return nil, nil, err
	}
	if err := CheckAll(ctx, rcSmall.Addr, smallQs, cfg.CheckQueries, checkAddrs); err != nil {
		problems = append(problems, "rollcall-small: "+err.Error())
	}

	// The big one, timed from process start: to ready, and to the first
	// correct answer for the last service's master (polled in parallel).
	c := rollcallContender("rollcall-big", env.Etcd.ClientURL, bigPrefix)
	p := env.ports()
	probe := big.Query(QMaster, big.Services-1, 0)
	s, err := StartServer(c.Name, cfg.Bin, env.Dir, c.Corefile(p), p, cfg.Pin)
	if err != nil {
		return nil, nil, err
	}
	tb.Cleanup(s.Stop)
	answered := make(chan time.Time, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for pctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(pctx, 200*time.Millisecond)
			m, err := exchange(qctx, s.Addr, probe.Name)
			qcancel()
			if err == nil && checkAddrs(probe, m) == nil {
				answered <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	readyAt, err := s.WaitReady(ctx, 5*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	var answerAt time.Time
	select {
	case answerAt = <-answered:
	case <-time.After(time.Minute):
		problems = append(problems, "rollcall-big: no correct answer for "+probe.Name+" within a minute of ready")
	}
	rssReady, _ := s.RSS()
	if err := CheckAll(ctx, s.Addr, bigQs, cfg.CheckQueries, checkAddrs); err != nil {
		problems = append(problems, "rollcall-big: "+err.Error())
	}

	// Throughput, big vs small, in alternating rounds; each with its own
	// query mix (the big one spans all its services).
	bigFile, err := writeQueryFile(env.Dir, "queries-big.txt", bigQs)
	if err != nil {
		return nil, nil, err
	}
	smallFile, err := writeQueryFile(env.Dir, "queries-small.txt", smallQs)
	if err != nil {
		return nil, nil, err
	}
	rounds := max(1, (cfg.Rounds+1)/2)
	stats := map[string]*runStats{"rollcall-small": newRunStats(), "rollcall-big": newRunStats()}
	for r := 0; r < rounds; r++ {
		for _, x := range []struct {
			s     *Server
			file  string
			names []Query
		}{{rcSmall, smallFile, smallQs}, {s, bigFile, bigQs}} {
			names := make([]string, len(x.names))
			for i, q := range x.names {
				names[i] = q.Name
			}
			cpu0, _ := x.s.CPUTime()
			res, err := RunLoad(ctx, LoadSpec{Addr: x.s.Addr, QueryFile: x.file, Names: names, Duration: cfg.Duration,
				Clients: cfg.Clients, Outstand: cfg.Outstanding, Pin: cfg.Pin, Dir: env.Dir, UseGo: cfg.GoLoad})
			if err != nil {
				return nil, problems, fmt.Errorf("load %s: %w", x.s.Name, err)
			}
			cpu1, _ := x.s.CPUTime()
			stats[x.s.Name].add(res)
			if res.Completed > 0 {
				stats[x.s.Name].cpuPerQuery = append(stats[x.s.Name].cpuPerQuery, (cpu1-cpu0)/time.Duration(res.Completed))
			}
			logf("scale round %d %-14s %8.0f qps", r+1, x.s.Name, res.QPS)
		}
	}
	for _, name := range []string{"rollcall-small", "rollcall-big"} {
		if n := stats[name].badRcodes(); n > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d answers not NOERROR under load: %v", name, n, stats[name].rcodes))
		}
	}
	rssAfter, _ := s.RSS()
	smallRSS, _ := rcSmall.RSS()
	liveHeap, heapErr := s.LiveHeap(ctx)
	sb, ss := stats["rollcall-big"], stats["rollcall-small"]

	sec.Intro = append(sec.Intro, fmt.Sprintf("Data set %s under prefix %s (plus the small data set, %s, for comparison), "+
		"each host's keys on its own lease; writing it took %v. Sync times are measured from starting bin/coredns.",
		big, bigPrefix, small, wrote.Round(time.Millisecond)))
	sec.Header = []string{"measure", "value"}
	sec.Row("instances / services / hosts / etcd keys", fmt.Sprintf("%d / %d / %d / %d", big.Instances(), big.Services, big.Hosts(),
		big.Instances()+big.Hosts()+big.Services*min(2, big.PerService)))
	sec.Row("initial sync: start to `ready` 200", fmtDur(readyAt.Sub(s.Started)))
	if !answerAt.IsZero() {
		sec.Row("initial sync: start to first correct answer", fmtDur(answerAt.Sub(s.Started)))
	} else {
		sec.Row("initial sync: start to first correct answer", notMeasured("no correct answer"))
	}
	if heapErr == nil {
		sec.Row("live heap after GC, big data set (the index and all else the process holds)", fmtBytes(liveHeap))
	} else {
		sec.Row("live heap after GC, big data set", notMeasured(heapErr.Error()))
	}
	sec.Row("VmRSS rollcall, big data set, at ready", fmtBytes(rssReady))
	sec.Row("VmRSS rollcall, big data set, after load", fmtBytes(rssAfter))
	sec.Row(fmt.Sprintf("VmRSS rollcall, small data set (%d instances)", small.Instances()), fmtBytes(smallRSS))
	sec.Row("VmRSS CoreDNS with whoami (no data)", fmtBytes(whoRSS))
	if big.Instances() > 0 {
		sec.Row("VmRSS per instance above whoami (big)", fmt.Sprintf("%.0f bytes", float64(rssAfter-whoRSS)/float64(big.Instances())))
	}
	sec.Row("qps rollcall big (median)", fmtQPS(median(sb.qps)))
	sec.Row("qps rollcall small (median)", fmtQPS(median(ss.qps)))
	sec.Row("qps big / small (paired median)", fmtRatio(pairedRatio(sb, ss)))
	cb, cs := medianDur(sb.cpuPerQuery), medianDur(ss.cpuPerQuery)
	sec.Row("server CPU per query big / small (medians)", fmt.Sprintf("%.1f µs / %.1f µs = %s", float64(cb)/1e3, float64(cs)/1e3, fmtRatio(float64(cb)/float64(cs))))
	sec.Row("p50 / p99 big", fmtDur(medianDur(sb.p50))+" / "+fmtDur(medianDur(sb.p99)))
	sec.Row("p50 / p99 small", fmtDur(medianDur(ss.p50))+" / "+fmtDur(medianDur(ss.p99)))
	heapNote := "not measured"
	if heapErr == nil {
		verdict := "met"
		if liveHeap >= 150<<20 {
			verdict = "**missed**"
		}
		heapNote = fmt.Sprintf("%s (target < 150 MB: %s)", fmtBytes(liveHeap), verdict)
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("Scale (%d instances, %d services): initial sync %s to ready; live heap after GC %s; VmRSS %s at ready, %s after load "+
		"(Go's collector lets the heap grow to twice the live data between collections; GOMEMLIMIT bounds it); "+
		"big / small data set: qps %s (paired median), server CPU per query %s.",
		big.Instances(), big.Services, fmtDur(readyAt.Sub(s.Started)), heapNote, fmtBytes(rssReady), fmtBytes(rssAfter),
		fmtRatio(pairedRatio(sb, ss)), fmtRatio(float64(cb)/float64(cs))))
	sec.Note("%d alternating rounds of %v each (small, big); the big mix spans all %d services.", rounds, cfg.Duration, big.Services)
	if cfg.ProfileFor > 0 {
		heap := &Section{Title: "Heap profile of rollcall with the big data set"}
		prof := filepath.Join(env.Dir, "rollcall-big.heap.pprof")
		top := ""
		err := s.HeapProfile(ctx, prof)
		if err == nil {
			top, err = pprofTop(ctx, cfg, prof, "-sample_index=inuse_space")
		}
		if err != nil {
			heap.Note("not measured: %v", err)
		} else {
			heap.Note("In-use heap after the load (`/debug/pprof/heap?gc=1`, `go tool pprof -top -sample_index=inuse_space`): what the index costs. " +
				"VmRSS above also holds garbage not yet returned to the OS (GOGC=100 lets the heap grow to twice the live data).")
			heap.Code = top
		}
		sec.Sub = append(sec.Sub, heap)
	}
	return sec, problems, nil
}
