package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// readersPrefix is where the readers part writes its data set, in its own
// etcd cluster.
const readersPrefix = "/rcreaders"

// Targets of the readers part (issue #17).
const (
	targetLagP99   = 100 * time.Millisecond
	targetRecovery = 30 * time.Second
)

// fleetResult is what one fleet of readers measured.
type fleetResult struct {
	n      int
	jitter time.Duration // the readers' re-list jitter bound; 0 none
	err    error         // why the fleet was not measured (too little memory)

	added         int           // readers started for this fleet (the rest were there)
	sync          time.Duration // from starting them to every one listed
	syncEtcd      float64       // etcd's CPU meanwhile, in cores
	syncSelf      float64       // this process's
	etcdPerList   time.Duration // etcd CPU per list of the prefix
	readerPerList time.Duration // this process's CPU per list (decoding, the index)
	heapPerReader int64         // this process's live heap per reader, after the lists

	measuredLag    bool
	load           writeLoad
	lag            *Histogram // from a write's Put sent to each reader serving it
	lagResp        *Histogram // from the Put's response
	missed         int        // (reader, write) pairs never applied
	etcdCores      float64    // etcd's CPU over the lag phase, in cores
	selfCores      float64    // this process's (readers and writer)
	readerPerEvent time.Duration
	lagFailed      int64 // reads the readers saw fail during the lag phase
	recoveries     []recovery
}

// recovery is how one fleet came back from one event.
type recovery struct {
	event       string          // "etcd restart", "compaction during an outage"
	allCurrent  time.Duration   // from etcd back (members ready) to every reader current
	perReader   []time.Duration // from etcd back to each reader current
	lists       int64           // lists of the prefix meanwhile
	failedReads int64           // reads sent after etcd was back that failed: the request errors
	errSamples  []string        // the first of them
	etcdCores   float64         // etcd's CPU from back to all current, in cores
	selfCores   float64         // this process's
	err         error
}

// readersRun is the readers part: a 3-node cluster of etcd processes with
// the data set, and fleets of readers run against it in turn.
type readersRun struct {
	cfg     Config
	cluster *procCluster
	admin   *clientv3.Client
	keys    registry.Keys
	wrote   time.Duration
	results []*fleetResult
	cpus    int // CPUs this process may run on
}

// partReaders measures N simulated DNS readers (the plugin's loader, each
// with its own etcd client) on one prefix under a steady write load: the lag
// from a write to each reader serving it and etcd's CPU, then the time until
// every reader is current again after an etcd restart and after a
// compaction made during an outage, with and without re-list jitter.
//
// One fleet grows through the sizes asked for (readers already listed stay),
// then a fleet of the largest size without jitter runs the recoveries again.
// A fleet that would not fit the machine's free memory is not measured.
func partReaders(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	defer quietPlugin()()
	defer memoryLimit()()
	// The fleets' heap back to the OS when the part ends, for what runs next.
	defer debug.FreeOSMemory()
	run := &readersRun{cfg: cfg, cpus: runtime.NumCPU()}
	var err error
	if run.keys, err = registry.NewKeys(readersPrefix); err != nil {
		return nil, nil, err
	}
	if err := run.setup(ctx, env, atEnd); err != nil {
		return nil, nil, err
	}
	jittered := newFleet(run.cluster.ReaderEndpoints(), readersPrefix, cfg.Scale.RelistJitter)
	atEnd.add(jittered.Close)
	for _, n := range cfg.Scale.Readers {
		res, err := run.fleet(ctx, jittered, n, true)
		run.results = append(run.results, res)
		if err != nil {
			return run.section(), nil, err
		}
	}
	jittered.Close()
	debug.FreeOSMemory() // the closed fleet's heap, before the next one is sized
	// The same recoveries with no jitter at all, for the largest fleet
	// that fits the free memory now: what the jitter buys.
	unjittered := newFleet(run.cluster.ReaderEndpoints(), readersPrefix, -1)
	atEnd.add(unjittered.Close)
	sizes := cfg.Scale.Readers
	n := sizes[0]
	for i := len(sizes) - 1; i > 0; i-- {
		if run.fits(unjittered, sizes[i]) == nil {
			n = sizes[i]
			break
		}
	}
	res, err := run.fleet(ctx, unjittered, n, false)
	run.results = append(run.results, res)
	if err != nil {
		return run.section(), nil, err
	}
	unjittered.Close()
	env.setReaders(run.results)
	var problems []string
	for _, r := range run.results {
		if r.missed > 0 {
			problems = append(problems, fmt.Sprintf("readers: %d readers: %d writes never served by some reader", r.n, r.missed))
		}
	}
	return run.section(), problems, nil
}

// setup starts the cluster (its members on the server CPU when pinning, so
// that etcd and this program's readers do not share a CPU) and writes the
// data set through the admin ports.
func (run *readersRun) setup(ctx context.Context, env *Env, atEnd *cleanups) error {
	cl, err := newProcCluster(ctx, env.Dir, 3, run.cfg.Pin.ServerCPU)
	if err != nil {
		return err
	}
	atEnd.add(cl.Close)
	run.cluster = cl
	if run.admin, err = cl.AdminClient(); err != nil {
		return err
	}
	atEnd.add(func() { run.admin.Close() })
	t0 := time.Now()
	if err := run.cfg.Scale.ReaderData.WriteRollcall(ctx, run.admin, readersPrefix); err != nil {
		return fmt.Errorf("write the readers' data set: %w", err)
	}
	run.wrote = time.Since(t0)
	return nil
}

// fleet grows f to n readers, measures their lag under the write load
// (when lag), then their recoveries. A fleet too large for the free memory
// is skipped, with why in its result's err (no error returned).
func (run *readersRun) fleet(ctx context.Context, f *fleet, n int, lag bool) (*fleetResult, error) {
	res := &fleetResult{n: n, jitter: max(f.jitter, 0), lag: NewHistogram(), lagResp: NewHistogram(), measuredLag: lag}
	if res.err = run.fits(f, n); res.err != nil {
		logf("readers: %d readers: %v", n, res.err)
		return res, nil
	}
	logf("readers: %d readers, re-list jitter %v", n, res.jitter)
	res.added = n - len(f.readers)
	h0 := liveHeap()
	c0, s0, t0 := run.cluster.CPU(), selfCPU(), time.Now()
	if err := f.grow(ctx, n, 30*time.Minute); err != nil {
		res.err = err
		return res, err
	}
	res.sync = time.Since(t0)
	etcdCPU, selfUsed := run.cluster.CPU()-c0, selfCPU()-s0
	res.syncEtcd, res.syncSelf = cores(etcdCPU, res.sync), cores(selfUsed, res.sync)
	if res.added > 0 {
		res.etcdPerList, res.readerPerList = etcdCPU/time.Duration(res.added), selfUsed/time.Duration(res.added)
		res.heapPerReader = (liveHeap() - h0) / int64(res.added)
	}
	if lag {
		if err := run.measureLag(ctx, f, res); err != nil {
			res.err = err
			return res, err
		}
	}
	for _, ev := range []string{eventRestart, eventCompaction} {
		rc := run.recover(ctx, f, ev)
		logf("readers: %d readers, %s: all current %v after etcd was back (%v)", n, ev, rc.allCurrent.Round(time.Millisecond), rc.err)
		res.recoveries = append(res.recoveries, rc)
	}
	return res, nil
}

// perReaderGuess is the heap a reader of d is taken to need before one is
// measured: about 1.2 KB per instance, as measured at 10,000 instances.
func perReaderGuess(d Dataset) int64 { return 1200 * int64(d.Instances()) }

// fits says why growing f to n readers would not fit the free memory, or
// nil. The need is the readers' heap and half as much again for the lists'
// garbage and the collector's headroom (memoryLimit keeps the heap close).
func (run *readersRun) fits(f *fleet, n int) error {
	per := perReaderGuess(run.cfg.Scale.ReaderData)
	for _, r := range run.results {
		if r.heapPerReader > 0 {
			per = r.heapPerReader
		}
	}
	need := 3 * per * int64(n-len(f.readers)) / 2
	// What this process holds but no longer uses (the lists' garbage, a
	// closed fleet) is available too: hand it back before asking.
	debug.FreeOSMemory()
	avail, err := memAvailable()
	if err != nil {
		return nil // cannot tell: try
	}
	if need > avail*3/4 {
		return fmt.Errorf("%d more readers need about %s of memory (%s each, and half as much again), %s is available", n-len(f.readers), fmtBytes(need), fmtBytes(per), fmtBytes(avail))
	}
	return nil
}

// measureLag runs the write load and notes when each reader serves each
// write.
func (run *readersRun) measureLag(ctx context.Context, f *fleet, res *fleetResult) error {
	time.Sleep(time.Second) // the lists' garbage collected, the watches settled
	c0, s0, t0 := run.cluster.CPU(), selfCPU(), time.Now()
	fr0 := f.FailedReads()
	f.record(true)
	stopProfile := run.profileSelf(fmt.Sprintf("readers-%d.cpu.pprof", res.n))
	wl, err := writeAtRate(ctx, run.admin, run.cfg.Scale.ReaderData, run.keys, f.base, run.cfg.Scale.WriteRate, run.cfg.Scale.LagFor)
	stopProfile()
	if err != nil {
		return err
	}
	res.load = wl
	if len(wl.writes) > 0 {
		// A fleet this process cannot keep up with drains its backlog
		// here: every write is served in the end, or the fleet is broken.
		if _, err := f.waitCurrent(ctx, wl.writes[len(wl.writes)-1].rev, 20*time.Minute); err != nil {
			return fmt.Errorf("after the write load: %w", err)
		}
	}
	el := time.Since(t0)
	selfUsed := selfCPU() - s0
	res.etcdCores, res.selfCores = cores(run.cluster.CPU()-c0, el), cores(selfUsed, el)
	if events := len(wl.writes) * len(f.readers); events > 0 {
		res.readerPerEvent = selfUsed / time.Duration(events)
	}
	f.record(false)
	res.missed = f.lags(wl.writes, res.lag, res.lagResp)
	res.lagFailed = f.FailedReads() - fr0
	logf("readers: %d readers: %d writes at %.0f/s, lag p50 %v p99 %v, etcd %.2f cores, this process %.2f cores", res.n, len(wl.writes),
		float64(len(wl.writes))/wl.took.Seconds(), res.lag.Percentile(0.5), res.lag.Percentile(0.99), res.etcdCores, res.selfCores)
	return nil
}

// profileSelf CPU-profiles this process (the readers and the writer) into
// name under -keep-profiles, until the returned function runs; without
// -keep-profiles it does nothing.
func (run *readersRun) profileSelf(name string) (stop func()) {
	if run.cfg.KeepProfiles == "" {
		return func() {}
	}
	if err := os.MkdirAll(run.cfg.KeepProfiles, 0o755); err != nil {
		logf("readers: no profile: %v", err)
		return func() {}
	}
	f, err := os.Create(filepath.Join(run.cfg.KeepProfiles, name))
	if err != nil {
		logf("readers: no profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		logf("readers: no profile: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// The recovery events.
const (
	eventRestart    = "etcd restart"
	eventCompaction = "compaction during an outage"
)

// recover takes the cluster through one event and times the readers'
// return: from the members being ready again until every reader serves a
// write made then.
//
// "etcd restart": every member is killed for the outage and started again;
// the readers' watches resume from their revisions. "compaction during an
// outage": the members come back with the readers' ports closed, writes are
// made and compacted away, and the members restart with the readers' ports
// open: every reader's watch finds its revisions compacted and lists again,
// after its jitter.
func (run *readersRun) recover(ctx context.Context, f *fleet, event string) recovery {
	rc := recovery{event: event}
	lists0 := f.Lists()
	run.cluster.Stop()
	down := time.Now()
	if event == eventCompaction {
		if rc.err = run.compactUnseen(ctx); rc.err != nil {
			return rc
		}
	}
	if wait := run.cfg.Scale.Outage - time.Since(down); wait > 0 {
		time.Sleep(wait)
	}
	if rc.err = run.cluster.Start(ctx, true); rc.err != nil {
		return rc
	}
	back := time.Now()
	c0, s0 := run.cluster.CPU(), selfCPU()
	f.countErrors()
	rev, err := markerWrite(ctx, run.cluster.AdminEndpoints(), run.keys, time.Minute)
	if err != nil {
		rc.err = err
		return rc
	}
	f.track(rev)
	all, err := f.waitCurrent(ctx, rev, 30*time.Minute)
	end := time.Now()
	rc.err = err
	rc.allCurrent = all.Sub(back)
	if err != nil {
		rc.allCurrent = end.Sub(back)
	}
	backAt := back.Sub(f.base)
	for _, at := range f.reached() {
		rc.perReader = append(rc.perReader, max(at-backAt, 0))
	}
	rc.lists = f.Lists() - lists0
	rc.failedReads, rc.errSamples = f.takeErrors()
	rc.etcdCores, rc.selfCores = cores(run.cluster.CPU()-c0, end.Sub(back)), cores(selfCPU()-s0, end.Sub(back))
	// Let the readers settle (progress, garbage) before what comes next.
	time.Sleep(2 * time.Second)
	return rc
}

// compactUnseen brings the cluster up with the readers' ports closed,
// writes, compacts up to that write, and stops the cluster again: every
// reader's watch then needs revisions etcd no longer has.
func (run *readersRun) compactUnseen(ctx context.Context) error {
	if err := run.cluster.Start(ctx, false); err != nil {
		return err
	}
	// Two writes: a compaction at a revision keeps that revision, and the
	// readers' watches resume at the first write's.
	var rev int64
	for range 2 {
		var err error
		if rev, err = markerWrite(ctx, run.cluster.AdminEndpoints(), run.keys, time.Minute); err != nil {
			return err
		}
	}
	cli, err := run.cluster.AdminClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := cli.Compact(cctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact to %d: %w", rev, err)
	}
	run.cluster.Stop()
	return nil
}

// cores is CPU time used over a wall-clock interval, in cores.
func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	d, _ := procCPU(os.Getpid())
	return d
}

// fmtJitter names a re-list jitter bound for a table.
func fmtJitter(j time.Duration) string {
	if j <= 0 {
		return "none"
	}
	return "up to " + j.String()
}

// section is the readers part's tables, notes and summary.
func (run *readersRun) section() *Section {
	cfg := run.cfg
	d := cfg.Scale.ReaderData
	sec := &Section{Title: fmt.Sprintf("Readers at scale: %s simulated DNS readers on a 3-node etcd", joinInts(cfg.Scale.Readers))}
	sec.Intro = append(sec.Intro, fmt.Sprintf("Each reader is the plugin's own loader (`rollcall.Reader`: regwatch list-then-watch decoded into the state and one index), "+
		"with its own etcd client, in this program. The data set, %s (%d instances, %d keys) under %s, is in a 3-node etcd cluster "+
		"of separate processes (bench/etcdmember, etcd %s), so that etcd's CPU time is read apart from the readers'%s; writing it took %v. "+
		"A writer changes instance records at %d writes/s for %v (at most %d Puts in flight). A write's lag is from just before its Put to a reader serving its revision, "+
		"over every reader and every write: it includes etcd's commit (the Put's own time, beside). \"After the response\" is from the Put's answer instead "+
		"(0 when the reader was first).",
		d, d.Instances(), d.Instances()+d.Hosts()+d.Services*min(2, d.PerService), readersPrefix, modVersion("go.etcd.io/etcd/server/v3"),
		pinNote(cfg), run.wrote.Round(time.Millisecond), cfg.Scale.WriteRate, cfg.Scale.LagFor, writesInFlight))
	sec.Header = []string{"readers", "writes asked / done per s", "Put p50 / p99", "lag p50", "lag p99", "lag max", "after the response p99",
		"etcd CPU", "this process CPU", "reader CPU per event", "failed reads"}
	for _, r := range run.results {
		switch {
		case !r.measuredLag:
		case r.err != nil:
			sec.Row(fmt.Sprint(r.n), notMeasured(r.err.Error()))
		default:
			rate := 0.0
			if r.load.took > 0 {
				rate = float64(len(r.load.writes)) / r.load.took.Seconds()
			}
			sec.Row(fmt.Sprint(r.n), fmt.Sprintf("%d / %.0f", cfg.Scale.WriteRate, rate),
				fmtDur(r.load.latency.Percentile(0.5))+" / "+fmtDur(r.load.latency.Percentile(0.99)),
				fmtDur(r.lag.Percentile(0.5)), fmtDur(r.lag.Percentile(0.99)), fmtDur(r.lag.Percentile(1)), fmtDur(r.lagResp.Percentile(0.99)),
				fmtCores(r.etcdCores), fmtCores(r.selfCores), fmtDur(r.readerPerEvent), fmt.Sprint(r.lagFailed+int64(r.load.errs)))
		}
	}
	sec.Note("CPU in cores: CPU time over wall time (etcd: its three processes together; this process: every reader and the writer, on %d CPU(s)). "+
		"\"reader CPU per event\": this process's CPU over the load per write per reader (decoding the event, rebuilding one service's answers). "+
		"\"failed reads\": the readers' reads of etcd that failed under the load (list pages, the revision reads beside the watch), plus the writer's failed Puts.", run.cpus)
	for _, r := range run.results {
		if run.saturated(r) {
			sec.Note("At %d readers this process used all its CPU (%s of %d): the readers' own work (%s per event per reader, %s per write for the fleet), not etcd, bounds the lag and the rate; "+
				"real readers each have a host's CPU.", r.n, fmtCores(r.selfCores), run.cpus, fmtDur(r.readerPerEvent), fmtDur(r.readerPerEvent*time.Duration(r.n)))
		}
	}
	sec.Sub = append(sec.Sub, run.listingSection(), run.recoverySection())
	sec.Summary = append(sec.Summary, run.summary()...)
	return sec
}

// saturated reports whether this process used all its CPU under r's write
// load: the readers' own work then set the lag, not etcd.
func (run *readersRun) saturated(r *fleetResult) bool {
	return r.measuredLag && r.err == nil && r.selfCores >= 0.9*float64(run.cpus)
}

// listingSection is the table of what starting the readers cost.
func (run *readersRun) listingSection() *Section {
	sec := &Section{Title: "Readers: listing and memory"}
	sec.Intro = append(sec.Intro, "Each fleet size is reached by starting the readers it lacks, all at once; each lists the prefix (in pages) and decodes it into its state and index. "+
		"Per list: the CPU time etcd and this process spent meanwhile, divided by the readers started.")
	sec.Header = []string{"readers", "re-list jitter", "started", "all listed after", "etcd CPU per list", "reader CPU per list", "heap per reader", "etcd / this process CPU meanwhile"}
	for _, r := range run.results {
		if r.err != nil || r.added == 0 {
			continue
		}
		sec.Row(fmt.Sprint(r.n), fmtJitter(r.jitter), fmt.Sprint(r.added), fmtDur(r.sync), fmtDur(r.etcdPerList), fmtDur(r.readerPerList),
			fmtBytes(r.heapPerReader), fmtCores(r.syncEtcd)+" / "+fmtCores(r.syncSelf))
	}
	return sec
}

// recoverySection is the table of recoveries.
func (run *readersRun) recoverySection() *Section {
	cfg := run.cfg
	sec := &Section{Title: "Readers: recovery after an etcd restart and after a compaction"}
	sec.Intro = append(sec.Intro, fmt.Sprintf("Every member is killed for %v. \"%s\": the members start again and every reader's watch resumes from its revision. "+
		"\"%s\": the members first come back with the readers' client ports closed (the readers still see an outage), writes are made and compacted away, "+
		"and the members restart with the readers' ports open, so that every reader's watch needs revisions etcd no longer has and lists the prefix again, "+
		"after its random re-list delay. Times are from the members being ready again to every reader serving a write made then.",
		cfg.Scale.Outage, eventRestart, eventCompaction))
	sec.Header = []string{"readers", "re-list jitter", "event", "all current after etcd back", "per reader p50 / p99", "lists", "etcd / this process CPU meanwhile", "failed reads"}
	for _, r := range run.results {
		if r.err != nil {
			sec.Row(fmt.Sprint(r.n), fmtJitter(r.jitter), "-", notMeasured(r.err.Error()))
			continue
		}
		for _, rc := range r.recoveries {
			row := []string{fmt.Sprint(r.n), fmtJitter(r.jitter), rc.event}
			if rc.err != nil {
				row = append(row, notMeasured(rc.err.Error()))
			} else {
				row = append(row, fmtDur(rc.allCurrent))
			}
			row = append(row, fmtDur(percentileOf(rc.perReader, 0.5))+" / "+fmtDur(percentileOf(rc.perReader, 0.99)),
				fmt.Sprint(rc.lists), fmtCores(rc.etcdCores)+" / "+fmtCores(rc.selfCores), fmt.Sprint(rc.failedReads))
			sec.Row(row...)
		}
	}
	sec.Note("\"failed reads\": reads of etcd the readers sent after the members were ready that failed (a list page or a revision read refused or timed out): the request errors. " +
		"Reads sent while etcd was down fail as expected and are not counted.")
	for _, r := range run.results {
		for _, rc := range r.recoveries {
			if rc.event == eventCompaction && rc.selfCores >= 0.8*float64(run.cpus) {
				sec.Note("%d readers (jitter %s), %s: this process was busy %s of its %d CPU(s): decoding %d lists one after another on it, not etcd (%s), "+
					"set the time, and a list page that waited behind them past its request timeout (10 s) failed. Real readers list on their own hosts, at once.",
					r.n, fmtJitter(r.jitter), rc.event, fmtCores(rc.selfCores), run.cpus, rc.lists, fmtCores(rc.etcdCores))
			}
			if len(rc.errSamples) > 0 {
				sec.Note("%d readers (jitter %s), %s: the first failed reads: %s.", r.n, fmtJitter(r.jitter), rc.event, strings.Join(rc.errSamples, "; "))
			}
		}
	}
	return sec
}

// summary is the part's lines of the report's summary, with the targets.
func (run *readersRun) summary() []string {
	var out []string
	for _, r := range run.results {
		if r.err != nil {
			out = append(out, fmt.Sprintf("Readers: %d readers not measured: %v.", r.n, r.err))
			continue
		}
		if !r.measuredLag {
			continue
		}
		verdict := "met"
		if r.lag.Percentile(0.99) >= targetLagP99 {
			verdict = "**missed**"
		}
		if run.saturated(r) {
			verdict += fmt.Sprintf(", with this process CPU-bound: %s per event per reader", fmtDur(r.readerPerEvent))
		}
		line := fmt.Sprintf("Readers: %d simulated DNS readers under %d writes/s: lag p50 %s, p99 %s (target < %v: %s), etcd %s",
			r.n, run.cfg.Scale.WriteRate, fmtDur(r.lag.Percentile(0.5)), fmtDur(r.lag.Percentile(0.99)), targetLagP99, verdict, fmtCores(r.etcdCores))
		var recs []string
		for _, rc := range r.recoveries {
			recs = append(recs, recoveryVerdict(rc))
		}
		out = append(out, line+"; "+strings.Join(recs, "; ")+".")
	}
	for _, r := range run.results {
		if r.measuredLag || r.err != nil {
			continue
		}
		var recs []string
		for _, rc := range r.recoveries {
			recs = append(recs, recoveryVerdict(rc))
		}
		out = append(out, fmt.Sprintf("Readers without re-list jitter (%d): %s.", r.n, strings.Join(recs, "; ")))
	}
	return out
}

// recoveryVerdict says how one recovery compares with its target.
func recoveryVerdict(rc recovery) string {
	if rc.err != nil {
		return rc.event + ": **not all current**: " + rc.err.Error()
	}
	verdict := "met"
	if rc.allCurrent >= targetRecovery || rc.failedReads > 0 {
		verdict = "**missed**"
	}
	return fmt.Sprintf("%s: all current %s after etcd was back, %d lists, %d failed reads (target < %v, no errors: %s)",
		rc.event, fmtDur(rc.allCurrent), rc.lists, rc.failedReads, targetRecovery, verdict)
}

// pinNote says where etcd and the readers ran.
func pinNote(cfg Config) string {
	if !cfg.Pin.Enabled() {
		return " (no pinning: they share the machine's CPUs)"
	}
	return fmt.Sprintf(" (the three members on CPU %s, this program with the readers and the writer on CPU %s)", cfg.Pin.ServerCPU, cfg.Pin.ClientCPU)
}

// fmtCores formats CPU use in cores.
func fmtCores(c float64) string { return fmt.Sprintf("%.2f cores", c) }

// joinInts formats counts as "100, 500, 1000".
func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, fmt.Sprint(n))
	}
	return strings.Join(s, ", ")
}
