package main

import (
	"context"
	"fmt"
	"time"
)

// The fleet the model extrapolates to, and the central servers of its
// two-tier layout.
const (
	modelHosts   = 10000
	modelCentral = 3
)

// partModel extrapolates what the readers, leases and memory parts measured
// in this run to 10,000 hosts, one tier (a rollcall server on every host,
// each a reader of etcd) against two tiers (a few central rollcall servers,
// a cache-only server on every host). It measures nothing itself.
func partModel(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	in := env.modelIn()
	if len(in.readers) == 0 {
		return nil, nil, skipf("the model needs the readers part (and, for memory and leases, the memory and leases parts) in the same run: -parts memory,readers,leases,model")
	}
	return modelSection(cfg, in), nil, nil
}

// linFit fits y = a + b·x by least squares; with one point, b is y/x.
func linFit(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	if len(xs) == 1 {
		return 0, ys[0] / xs[0]
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return sy / n, 0
	}
	b = (n*sxy - sx*sy) / d
	return (sy - b*sx) / n, b
}

// modelEtcdCores is the CPU the model gives etcd for serving readers: three
// members of four cores each, as reads (lists, watches, revision reads) are
// served by whichever member a reader is connected to.
const modelEtcdCores = 12

// readerModel is what the model takes from the readers part.
type readerModel struct {
	largest, smallest *fleetResult // of the jittered fleets measured under the write load
	cpuA, cpuB        float64      // etcd cores = cpuA + cpuB·readers, under the write load
	listCPU           float64      // etcd CPU seconds per list of the prefix
	readerList        float64      // a reader's own CPU seconds per list (decoding, the index)
	resumeCPU         float64      // etcd CPU seconds per reader resuming after a restart
}

func fitReaders(rs []*fleetResult) (readerModel, bool) {
	var m readerModel
	var ns, cpu []float64
	for _, r := range rs {
		if !r.measuredLag || r.err != nil {
			continue
		}
		if m.smallest == nil || r.n < m.smallest.n {
			m.smallest = r
		}
		if m.largest == nil || r.n > m.largest.n {
			m.largest = r
		}
		ns = append(ns, float64(r.n))
		cpu = append(cpu, r.etcdCores)
	}
	if len(ns) == 0 {
		return m, false
	}
	m.cpuA, m.cpuB = linFit(ns, cpu)
	// The costs of one list, from the fleet that started the most readers.
	var most *fleetResult
	for _, r := range rs {
		if r.err == nil && r.added > 0 && (most == nil || r.added > most.added) {
			most = r
		}
	}
	if most != nil {
		m.listCPU, m.readerList = most.etcdPerList.Seconds(), most.readerPerList.Seconds()
	}
	for _, rc := range m.largest.recoveries {
		if rc.event == eventRestart && rc.err == nil {
			m.resumeCPU = rc.etcdCores * rc.allCurrent.Seconds() / float64(m.largest.n)
		}
	}
	return m, true
}

// at evaluates a + b·n, never below zero.
func at(a, b float64, n int) float64 { return max(a+b*float64(n), 0) }

// recoveryOf is a fleet's time to all current after event, in seconds (0
// when not measured).
func recoveryOf(r *fleetResult, event string) float64 {
	for _, rc := range r.recoveries {
		if rc.event == event && rc.err == nil {
			return rc.allCurrent.Seconds()
		}
	}
	return 0
}

// secs formats seconds as a duration.
func secs(s float64) string { return fmtDur(time.Duration(s * 1e9)) }

// modelSection is the model's table, with its inputs and assumptions.
func modelSection(cfg Config, in modelInputs) *Section {
	sec := &Section{Title: fmt.Sprintf("Model: %d hosts, one tier against two tiers", modelHosts)}
	m, ok := fitReaders(in.readers)
	if !ok {
		sec.Note("No jittered fleet was measured: nothing to extrapolate.")
		return sec
	}
	l, w, jitter := m.largest, cfg.Scale.WriteRate, cfg.Scale.RelistJitter.Seconds()
	sec.Intro = append(sec.Intro, fmt.Sprintf("From this run's readers part (fleets of %s readers of %d instances under %d writes/s), leases part and memory part. "+
		"One tier: a rollcall server on each of the %d hosts, each an etcd reader. Two tiers: %d central rollcall servers (the only readers) and a "+
		"cache-only server on every host (corefile/two-tier). etcd's CPU for its readers is a straight line fitted to the fleets (least squares): "+
		"%.3f + %.5f x readers cores. Times are etcd's work over the CPU the model gives it, %d cores (three members of four; every member serves reads), "+
		"not this machine's simulation, whose single CPU for every reader's decoding bounds its own times.",
		joinInts(cfg.Scale.Readers), cfg.Scale.ReaderData.Instances(), w, modelHosts, modelCentral, m.cpuA, m.cpuB, modelEtcdCores))
	sec.Header = []string{"at " + fmt.Sprint(modelHosts) + " hosts", "one tier: " + fmt.Sprint(modelHosts) + " readers", fmt.Sprintf("two tiers: %d readers + %d caches", modelCentral, modelHosts), "measured here"}
	cpu1, cpu2 := max(at(m.cpuA, m.cpuB, modelHosts), l.etcdCores), at(m.cpuA, m.cpuB, modelCentral)
	sec.Row(fmt.Sprintf("etcd CPU for the readers at %d writes/s (watch events, revision reads, progress requests)", w), fmtCores(cpu1), fmtCores(cpu2),
		fmt.Sprintf("%s at %d readers", fmtCores(l.etcdCores), l.n))
	sec.Row("watch events etcd sends per second", fmtQPS(float64(modelHosts*w)), fmtQPS(float64(modelCentral*w)), fmtQPS(float64(l.n*w))+fmt.Sprintf(" at %d readers", l.n))
	lag1 := fmt.Sprintf("about %s, while etcd has the cores", fmtDur(l.lag.Percentile(0.99)))
	if cpu1 >= modelEtcdCores {
		lag1 = fmt.Sprintf("falls behind without bound: the fan-out needs %s, more than %d", fmtCores(cpu1), modelEtcdCores)
	}
	sec.Row("write to DNS: lag p99", lag1, fmt.Sprintf("%s + up to the cache TTL (%d s) for an answer a host has cached", fmtDur(m.smallest.lag.Percentile(0.99)), ttlSeconds),
		fmt.Sprintf("%s at %d readers, %s at %d", fmtDur(m.smallest.lag.Percentile(0.99)), m.smallest.n, fmtDur(l.lag.Percentile(0.99)), l.n))
	relist := func(n int) float64 { return float64(n)*m.listCPU/modelEtcdCores + m.readerList + jitter }
	sec.Row("all current after a compaction (every reader lists again)",
		fmt.Sprintf("%s (%s of etcd CPU)", secs(relist(modelHosts)), secs(m.listCPU*modelHosts)), secs(relist(modelCentral)),
		fmt.Sprintf("%s at %d readers (%s of etcd CPU and %s of a reader's per list)", secs(recoveryOf(l, eventCompaction)), l.n, secs(m.listCPU), secs(m.readerList)))
	restart := func(n int, floor float64) float64 { return max(float64(n)*m.resumeCPU/modelEtcdCores, floor) }
	sec.Row("all current after an etcd restart (watches resume)", secs(restart(modelHosts, recoveryOf(l, eventRestart))),
		secs(restart(modelCentral, recoveryOf(m.smallest, eventRestart))),
		fmt.Sprintf("%s at %d readers (%s of etcd CPU per reader)", secs(recoveryOf(l, eventRestart)), l.n, secs(m.resumeCPU)))
	sec.Row(memoryRow(in, m)...)
	sec.Row(leasesRow(in)...)
	sec.Note("Assumptions. (1) etcd's CPU grows linearly with its readers: each costs a watch that etcd sends every event to, and a revision read and a progress "+
		"request every 2 s; the fit is over %s readers and %d is %.0fx the largest fleet, so the one-tier figures are lower bounds (etcd's bookkeeping of many "+
		"watchers grows too). The CPU figures are this shared machine's; etcd ran on %s. "+
		"(2) A lag stays near what was measured only while etcd has the CPU its fan-out needs; past that, every reader falls further behind. "+
		"(3) After a compaction every reader lists the prefix again: etcd serves every list whether the re-lists are jittered or not, so the time is at least "+
		"their etcd CPU over its cores, plus one reader's own decoding (on its own host) and the jitter bound (%v); the jitter lowers the peak, not the total. "+
		"(4) A restart costs each reader a revision read and a new watch (the etcd CPU per reader is the largest fleet's, over its recovery), and at least the "+
		"time measured (the readers' retry back-off). (5) Two tiers: the %d central servers are %d readers whatever the number of hosts; each host's cache "+
		"adds up to its TTL of staleness and one hop (a LAN round trip) to a miss, and holds only the answers its host asks for. "+
		"(6) Agents' leases are the same in both layouts: one lease per host, a renewal every TTL/3.",
		joinInts(cfg.Scale.Readers), modelHosts, float64(modelHosts)/float64(l.n), etcdWhere(cfg), cfg.Scale.RelistJitter, modelCentral, modelCentral)
	sec.Summary = append(sec.Summary, fmt.Sprintf("Model, %d hosts: one tier (%d readers) needs %s of etcd CPU for its readers at %d writes/s, two tiers (%d central readers) %s; "+
		"after a compaction one tier is current again in about %s, two tiers in %s (etcd on %d cores).",
		modelHosts, modelHosts, fmtCores(cpu1), w, modelCentral, fmtCores(cpu2), secs(relist(modelHosts)), secs(relist(modelCentral)), modelEtcdCores))
	return sec
}

// etcdWhere says what CPU etcd had in this run.
func etcdWhere(cfg Config) string {
	if cfg.Pin.Enabled() {
		return "one CPU (" + cfg.Pin.ServerCPU + ") for its three members"
	}
	return fmt.Sprintf("the machine's %d CPUs, shared with the readers", machineCPUs())
}

// memoryRow is the model's memory per host: the whole index on every host
// against a cache.
func memoryRow(in modelInputs, m readerModel) []string {
	if mem := in.memory; mem != nil {
		return []string{fmt.Sprintf("memory per host (registry of %d instances)", mem.instances),
			fmtBytes(mem.centralAfter) + " VmRSS (the whole index)", fmtBytes(mem.hostAfter) + " VmRSS (cache only)",
			fmt.Sprintf("central %s, per-host %s (memory part)", fmtBytes(mem.centralAfter), fmtBytes(mem.hostAfter))}
	}
	return []string{"memory per host (readers' data set)", fmtBytes(m.largest.heapPerReader) + " of heap (the whole index)",
		"not measured (run the memory part)", fmt.Sprintf("%s heap per reader", fmtBytes(m.largest.heapPerReader))}
}

// leasesRow is the agents' lease load at modelHosts, the same in both
// layouts.
func leasesRow(in modelInputs) []string {
	renewals := float64(modelHosts) / agentTTL.Seconds() * 3
	if len(in.leases) == 0 {
		return []string{"agents' renewals (both layouts)", fmt.Sprintf("%.0f/s", renewals), fmt.Sprintf("%.0f/s", renewals), "not measured (run the leases part)"}
	}
	var ns, cpu []float64
	for _, r := range in.leases {
		ns = append(ns, float64(r.n))
		cpu = append(cpu, r.etcdCores)
	}
	a, b := linFit(ns, cpu)
	last := in.leases[len(in.leases)-1]
	c := fmtCores(at(a, b, modelHosts))
	for _, r := range in.leases {
		if r.n == modelHosts {
			c = fmtCores(r.etcdCores) + " (measured)"
		}
	}
	return []string{"agents' renewals and etcd CPU for them (both layouts)", fmt.Sprintf("%.0f/s, %s", renewals, c), fmt.Sprintf("%.0f/s, %s", renewals, c),
		fmt.Sprintf("%.0f/s, %s at %d agents", last.renewedAgents, fmtCores(last.etcdCores), last.n)}
}
