package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// scaleRun is what the scale part measures: rollcall with the big data set
// (from process start to ready and to a first correct answer, its memory,
// its throughput) beside rollcall with the small one and whoami with none.
type scaleRun struct {
	bigQs, smallQs     []Query       // the query mixes of the two data sets
	wrote              time.Duration // writing the big data set into etcd
	whoRSS, smallRSS   int64         // VmRSS of whoami and of rollcall-small
	small, big         *Server
	readyAt, answerAt  time.Time // answerAt is zero when no answer came
	rssReady, rssAfter int64     // the big one's VmRSS at ready and after the load
	liveHeap           int64
	heapErr            error
	rounds             int
	stats              map[string]*runStats // by server name
}

// partScale loads the big data set into a rollcall server and reports its
// memory, how long its first sync takes, and its throughput next to a
// rollcall server with the small data set (alternating rounds).
func partScale(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	if !env.HasPlugin("rollcall") {
		return nil, nil, skipf("plugin rollcall is not compiled into bin/coredns")
	}
	run := scaleRun{bigQs: cfg.Big.Queries(), smallQs: cfg.Small.Queries()}
	if _, err := env.EnsureData(ctx, cfg.Small, smallPrefix, true); err != nil {
		return nil, nil, err
	}
	wrote, err := env.EnsureData(ctx, cfg.Big, bigPrefix, false)
	if err != nil {
		return nil, nil, err
	}
	run.wrote = wrote
	problems, err := run.startBaselines(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, nil, err
	}
	probs, err := run.startBig(ctx, cfg, env, atEnd)
	problems = append(problems, probs...)
	if err != nil {
		return nil, nil, err
	}
	probs, err = run.loadBigAndSmall(ctx, cfg, env)
	problems = append(problems, probs...)
	if err != nil {
		return nil, problems, err
	}
	run.rssAfter, _ = run.big.RSS()
	run.smallRSS, _ = run.small.RSS()
	run.liveHeap, run.heapErr = run.big.LiveHeap(ctx)
	sec := run.section(cfg)
	if cfg.ProfileFor > 0 {
		sec.Sub = append(sec.Sub, bigHeapProfile(ctx, cfg, env, run.big))
	}
	return sec, problems, nil
}

// startBaselines starts CoreDNS with whoami (no data) and rollcall with the
// small data set, and checks the latter's answers.
func (run *scaleRun) startBaselines(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) ([]string, error) {
	who, err := env.Start(ctx, atEnd, whoamiContender())
	if err != nil {
		return nil, err
	}
	run.whoRSS, _ = who.RSS()
	run.small, err = env.Start(ctx, atEnd, rollcallContender("rollcall-small", env.Etcd.ClientURL, smallPrefix))
	if err != nil {
		return nil, err
	}
	if err := CheckAll(ctx, run.small.Addr, run.smallQs, cfg.CheckQueries, checkAddrs); err != nil {
		return []string{"rollcall-small: " + err.Error()}, nil
	}
	return nil, nil
}

// startBig starts rollcall with the big data set, timed from process start:
// to ready, and to the first correct answer for the last service's master
// (polled in parallel); then it checks the answers.
func (run *scaleRun) startBig(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) ([]string, error) {
	big := cfg.Big
	c := rollcallContender("rollcall-big", env.Etcd.ClientURL, bigPrefix)
	p, err := env.ports()
	if err != nil {
		return nil, err
	}
	s, err := StartServer(c.Name, cfg.Bin, env.Dir, c.Corefile(p), p, cfg.Pin)
	if err != nil {
		return nil, err
	}
	atEnd.add(s.Stop)
	run.big = s
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	probe := big.Query(QMaster, big.Services-1, 0)
	answered := firstCorrectAnswer(pctx, s.Addr, probe)
	if run.readyAt, err = s.WaitReady(ctx, 5*time.Minute); err != nil {
		return nil, err
	}
	var problems []string
	select {
	case run.answerAt = <-answered:
	case <-time.After(time.Minute):
		problems = append(problems, "rollcall-big: no correct answer for "+probe.Name+" within a minute of ready")
	}
	run.rssReady, _ = s.RSS()
	if err := CheckAll(ctx, s.Addr, run.bigQs, cfg.CheckQueries, checkAddrs); err != nil {
		problems = append(problems, "rollcall-big: "+err.Error())
	}
	return problems, nil
}

// firstCorrectAnswer asks addr for q until the answer is right, and then
// sends the time on the channel; it gives up when ctx ends.
func firstCorrectAnswer(ctx context.Context, addr string, q Query) <-chan time.Time {
	answered := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			m, err := exchange(qctx, addr, q.Name)
			qcancel()
			if err == nil && checkAddrs(q, m) == nil {
				answered <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return answered
}

// loadBigAndSmall loads the big and the small server in alternating
// rounds, each with its own query mix (the big one spans all its
// services).
func (run *scaleRun) loadBigAndSmall(ctx context.Context, cfg Config, env *Env) ([]string, error) {
	bigFile, err := writeQueryFile(env.Dir, "queries-big.txt", run.bigQs)
	if err != nil {
		return nil, err
	}
	smallFile, err := writeQueryFile(env.Dir, "queries-small.txt", run.smallQs)
	if err != nil {
		return nil, err
	}
	run.rounds = max(1, (cfg.Rounds+1)/2)
	run.stats = map[string]*runStats{run.small.Name: newRunStats(), run.big.Name: newRunStats()}
	specs := []LoadSpec{
		loadSpec(cfg, env, run.small, smallFile, queryNames(run.smallQs), cfg.Duration),
		loadSpec(cfg, env, run.big, bigFile, queryNames(run.bigQs), cfg.Duration),
	}
	for r := 0; r < run.rounds; r++ {
		for i, s := range []*Server{run.small, run.big} {
			res, err := loadMeasured(ctx, specs[i], s, run.stats[s.Name])
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", s.Name, err)
			}
			logf("scale round %d %-14s %8.0f qps", r+1, s.Name, res.QPS)
		}
	}
	var problems []string
	for _, s := range []*Server{run.small, run.big} {
		if n := run.stats[s.Name].badRcodes(); n > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d answers not NOERROR under load: %v", s.Name, n, run.stats[s.Name].rcodes))
		}
	}
	return problems, nil
}

// section is the scale part's table, summary and notes.
func (run *scaleRun) section(cfg Config) *Section {
	big, small := cfg.Big, cfg.Small
	sec := &Section{Title: fmt.Sprintf("Scale: %d instances over %d services", big.Instances(), big.Services)}
	sb, ss := run.stats[run.big.Name], run.stats[run.small.Name]
	sec.Intro = append(sec.Intro, fmt.Sprintf("Data set %s under prefix %s (plus the small data set, %s, for comparison), "+
		"each host's keys on its own lease; writing it took %v. Sync times are measured from starting bin/coredns.",
		big, bigPrefix, small, run.wrote.Round(time.Millisecond)))
	sec.Header = []string{"measure", "value"}
	sec.Row("instances / services / hosts / etcd keys", fmt.Sprintf("%d / %d / %d / %d", big.Instances(), big.Services, big.Hosts(),
		big.Instances()+big.Hosts()+big.Services*min(2, big.PerService)))
	sec.Row("initial sync: start to `ready` 200", fmtDur(run.readyAt.Sub(run.big.Started)))
	if !run.answerAt.IsZero() {
		sec.Row("initial sync: start to first correct answer", fmtDur(run.answerAt.Sub(run.big.Started)))
	} else {
		sec.Row("initial sync: start to first correct answer", notMeasured("no correct answer"))
	}
	if run.heapErr == nil {
		sec.Row("live heap after GC, big data set (the index and all else the process holds)", fmtBytes(run.liveHeap))
		sec.Row("live heap per instance (big)", fmt.Sprintf("%.0f bytes", float64(run.liveHeap)/float64(big.Instances())))
	} else {
		sec.Row("live heap after GC, big data set", notMeasured(run.heapErr.Error()))
	}
	sec.Row("VmRSS rollcall, big data set, at ready", fmtBytes(run.rssReady))
	sec.Row("VmRSS rollcall, big data set, after load", fmtBytes(run.rssAfter))
	sec.Row(fmt.Sprintf("VmRSS rollcall, small data set (%d instances)", small.Instances()), fmtBytes(run.smallRSS))
	sec.Row("VmRSS CoreDNS with whoami (no data)", fmtBytes(run.whoRSS))
	if big.Instances() > 0 {
		sec.Row("VmRSS per instance above whoami (big)", fmt.Sprintf("%.0f bytes", float64(run.rssAfter-run.whoRSS)/float64(big.Instances())))
	}
	sec.Row("qps rollcall big (median)", fmtQPS(median(sb.qps)))
	sec.Row("qps rollcall small (median)", fmtQPS(median(ss.qps)))
	sec.Row("qps big / small (paired median)", fmtRatio(pairedRatio(sb, ss)))
	cb, cs := medianDur(sb.cpuPerQuery), medianDur(ss.cpuPerQuery)
	sec.Row("server CPU per query big / small (medians)", fmt.Sprintf("%.1f µs / %.1f µs = %s", float64(cb)/1e3, float64(cs)/1e3, fmtRatio(float64(cb)/float64(cs))))
	sec.Row("p50 / p99 big", fmtDur(medianDur(sb.p50))+" / "+fmtDur(medianDur(sb.p99)))
	sec.Row("p50 / p99 small", fmtDur(medianDur(ss.p50))+" / "+fmtDur(medianDur(ss.p99)))
	sec.Summary = append(sec.Summary, run.summary(cfg, float64(cb)/float64(cs)))
	sec.Note("%d alternating rounds of %v each (small, big); the big mix spans all %d services.", run.rounds, cfg.Duration, big.Services)
	return sec
}

// summary is the scale part's line of the report's summary; cpuRatio is
// big / small server CPU per query.
func (run *scaleRun) summary(cfg Config, cpuRatio float64) string {
	heapNote := "not measured"
	if run.heapErr == nil {
		verdict := "met"
		if run.liveHeap >= 150<<20 {
			verdict = "**missed**"
		}
		heapNote = fmt.Sprintf("%s (target < 150 MB: %s)", fmtBytes(run.liveHeap), verdict)
	}
	return fmt.Sprintf("Scale (%d instances, %d services): initial sync %s to ready; live heap after GC %s; VmRSS %s at ready, %s after load "+
		"(Go's collector lets the heap grow to twice the live data between collections; GOMEMLIMIT bounds it); "+
		"big / small data set: qps %s (paired median), server CPU per query %s.",
		cfg.Big.Instances(), cfg.Big.Services, fmtDur(run.readyAt.Sub(run.big.Started)), heapNote, fmtBytes(run.rssReady), fmtBytes(run.rssAfter),
		fmtRatio(pairedRatio(run.stats[run.big.Name], run.stats[run.small.Name])), fmtRatio(cpuRatio))
}

// bigHeapProfile is the in-use heap profile of s, the big data set's
// server, after the load.
func bigHeapProfile(ctx context.Context, cfg Config, env *Env, s *Server) *Section {
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
	return heap
}
