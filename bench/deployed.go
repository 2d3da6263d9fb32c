package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rollcall/rollcall/test/testkit"
)

// A production server block carries more than the plugin that answers:
// deploy/coredns/Corefile has errors and prometheus, and many add log.
// prometheus and log wrap the response writer to record every reply, which
// once cost rollcall its packed path (plugin/rollcall/recorders.go). The "as
// deployed" part runs every contender with those plugins in front of it,
// side by side with the contender alone, in the same rounds.

// deployment is one way of setting up the contenders' blocks: the plugins
// in front of the contender's.
type deployment struct {
	Name  string // in the table
	Key   string // in server names
	Lines string // Corefile lines; %[1]d is the prometheus port
	Log   bool   // has the log plugin, whose lines go to /dev/null
	Needs string // a plugin of Lines that may not be compiled in, or ""
}

var deployments = []deployment{
	{Name: "alone", Key: "alone"},
	{Name: "errors, prometheus", Key: "ep", Lines: "    errors\n    prometheus 127.0.0.1:%[1]d\n"},
	{Name: "errors, prometheus, log", Key: "epl", Lines: "    errors\n    prometheus 127.0.0.1:%[1]d\n    log\n", Log: true},
	{Name: "errors, prometheus, multisocket 2", Key: "ms", Lines: "    errors\n    prometheus 127.0.0.1:%[1]d\n    multisocket 2\n", Needs: "multisocket"},
}

// deployedTargets are the targets in every deployment: rollcall
// at least level with whoami and 1.5 times file, by qps and by CPU per
// query.
var deployedTargets = map[string]float64{"whoami": 1.00, "file": 1.50}

// asDeployed is contender c with d's plugins in its block; metricsPort is
// prometheus's.
func asDeployed(c Contender, d deployment, metricsPort int) Contender {
	base := c.Corefile
	c.Name = deployedName(c.Name, d)
	c.DiscardStdout = d.Log
	if d.Needs != "" {
		c.Needs = append(slices.Clone(c.Needs), d.Needs)
	}
	if d.Lines == "" {
		return c
	}
	c.Corefile = func(p serverPorts) string {
		head := corefileHead(p)
		return head + fmt.Sprintf(d.Lines, metricsPort) + strings.TrimPrefix(base(p), head)
	}
	return c
}

// deployedName is the name of contender's server behind deployment d.
func deployedName(contender string, d deployment) string { return contender + "-" + d.Key }

// deployedRounds is how many rounds the part runs: fewer than the
// throughput part's, as it loads four times as many servers, but enough
// that one noisy round does not move the paired median past the few
// percent the targets are decided by (with 4, rounds of 0.86 and 1.29
// left the median where the two middle ones fell).
func deployedRounds(cfg Config) int { return max(1, min(cfg.Rounds, 8)) }

// partDeployed measures every contender alone and behind each deployment's
// plugins, all in the same alternating rounds.
func partDeployed(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	sec := &Section{Title: "As deployed: errors, prometheus and log in front of every contender"}
	sec.Header = []string{"plugins in front", "contender", "qps (median)", "server CPU per query (median)",
		"rollcall / this, qps (paired median)", "this / rollcall, CPU per query (paired median)", "p50", "p99", "lost", "not NOERROR"}
	mix, err := prepareSmallMix(ctx, env, cfg.Small)
	if err != nil {
		return nil, nil, err
	}
	plain := []Contender{
		rollcallContender("rollcall", env.Etcd.ClientURL, smallPrefix),
		whoamiContender(),
		fileContender(mix.zone),
		etcdContender(env.Etcd.ClientURL),
	}
	all, err := deployedContenders(plain)
	if err != nil {
		return nil, nil, err
	}
	cs, problems := startContenders(ctx, cfg, env, atEnd, all, mix.qs)
	rcfg := cfg
	rcfg.Rounds = deployedRounds(cfg)
	stats, err := loadRounds(ctx, rcfg, env, cs.servers, mix.qfile, mix.qs)
	if err != nil {
		return nil, problems, err
	}
	problems = append(problems, checkAfterLoad(ctx, cfg, cs, stats, mix.qs)...)
	for _, dep := range deployments {
		deployedRows(sec, dep, plain, cs, stats)
		deployedComparisons(sec, dep, stats)
	}
	if cfg.ProfileFor > 0 {
		sec.Sub = append(sec.Sub, deployedProfile(ctx, cfg, env, cs.servers, stats, mix))
	}
	sec.Intro = append(sec.Intro, deployedIntro(cfg, len(cs.servers), rcfg.Rounds))
	return sec, problems, nil
}

// deployedContenders is every plain contender behind every deployment's
// plugins, deployment by deployment.
func deployedContenders(plain []Contender) ([]Contender, error) {
	var all []Contender
	for _, dep := range deployments {
		for _, c := range plain {
			metricsPort, err := testkit.TryFreePort()
			if err != nil {
				return nil, err
			}
			all = append(all, asDeployed(c, dep, metricsPort))
		}
	}
	return all, nil
}

// deployedRows adds deployment dep's rows to the table, one per contender.
func deployedRows(sec *Section, dep deployment, plain []Contender, cs *contenderServers, stats map[string]*runStats) {
	rc := stats[deployedName("rollcall", dep)]
	for _, c := range plain {
		name := deployedName(c.Name, dep)
		st, ok := stats[name]
		if !ok {
			sec.Row(dep.Name, c.Name, notMeasured(cs.skipped[name]))
			continue
		}
		ratio, cpuRatio := "1.00x", "1.00x"
		switch {
		case rc == nil:
			ratio, cpuRatio = "-", "-"
		case c.Name != "rollcall":
			ratio, cpuRatio = fmtRatio(pairedRatio(rc, st)), fmtRatio(pairedCPURatio(st, rc))
		}
		sec.Row(dep.Name, c.Name, fmtQPS(median(st.qps)), fmt.Sprintf("%.1f µs", float64(medianDur(st.cpuPerQuery))/1e3),
			ratio, cpuRatio, fmtDur(medianDur(st.p50)), fmtDur(medianDur(st.p99)),
			fmt.Sprintf("%d of %d", st.lost, st.lost+st.completed), fmt.Sprint(st.badRcodes()))
	}
}

// deployedComparisons adds to the notes and the summary how rollcall
// compares with each other contender behind deployment dep's plugins,
// against the targets.
func deployedComparisons(sec *Section, dep deployment, stats map[string]*runStats) {
	rc := stats[deployedName("rollcall", dep)]
	if rc == nil {
		return
	}
	var parts []string
	for _, other := range []string{"whoami", "file", "etcd"} {
		st, ok := stats[deployedName(other, dep)]
		if !ok {
			continue
		}
		r, cr := pairedRatio(rc, st), pairedCPURatio(st, rc)
		p := fmt.Sprintf("rollcall / %s %s qps, %s by CPU per query", other, fmtRatio(r), fmtRatio(cr))
		if target, ok := deployedTargets[other]; ok {
			p += deployedVerdict(target, r, cr)
		}
		parts = append(parts, p)
		sec.Note("**%s, rollcall / %s: %s qps** (paired median; per round %s), **%s by CPU per query** (paired median; per round %s)%s.",
			dep.Name, other, fmtRatio(r), roundRatios(rc, st), fmtRatio(cr), roundCPURatios(st, rc), targetNote(other))
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("As deployed, %s: %s.", dep.Name, strings.Join(parts, "; ")))
}

// deployedProfile is where the time goes behind every plugin of the table:
// what prometheus and log cost each contender, and what is left of
// rollcall's lead.
func deployedProfile(ctx context.Context, cfg Config, env *Env, servers []*Server, stats map[string]*runStats, mix *smallMix) *Section {
	var epl []*Server
	for _, s := range servers {
		if strings.HasSuffix(s.Name, "-epl") {
			epl = append(epl, s)
		}
	}
	prof := profileBreakdown(ctx, cfg, env, epl, stats, mix.qfile, mix.qs)
	prof.Title = "Where a query's CPU time goes behind errors, prometheus and log (CPU profiles under load)"
	prof.Intro = append(prof.Intro, "Behind these plugins a contender's own work includes feeding the recorders of prometheus and log "+
		"(a dns.Msg is measured by each as it passes; rollcall fills them from its packed reply); what prometheus and log do with "+
		"what they recorded (metrics, the log line) is outside these columns.")
	return prof
}

// deployedIntro says how the table was measured: nservers servers in
// rounds rounds.
func deployedIntro(cfg Config, nservers, rounds int) string {
	return fmt.Sprintf("The contenders of the throughput table, each in four server blocks: alone (as above), "+
		"behind `errors` and `prometheus` (deploy/coredns/Corefile's block), behind `errors`, `prometheus` and `log` (default format; CoreDNS writes "+
		"the lines to its standard output, here /dev/null), and behind `errors` and `prometheus` with `multisocket 2`. "+
		"All %d servers stay up; %d rounds, each server %v per round in turn (after a %v warm-up each), same query mix, client and checks as the throughput table; "+
		"ratios are paired: the median over rounds of the ratio within a round. "+
		"Targets, for every deployment: rollcall at least 1.00x whoami and 1.50x file, by qps and by server CPU per query. %s",
		nservers, rounds, cfg.Duration, cfg.Warmup, multisocketNote(cfg))
}

// multisocketNote says what the multisocket row can show on this machine.
func multisocketNote(cfg Config) string {
	n := machineCPUs()
	if cfg.Pin.Enabled() {
		return fmt.Sprintf("This machine has only %d cores: CoreDNS runs on CPU %s (GOMAXPROCS=1) and dnsperf on CPU %s, "+
			"so multisocket's two sockets share one CPU here; its row shows what it costs on this machine, not how it scales on more cores.",
			n, cfg.Pin.ServerCPU, cfg.Pin.ClientCPU)
	}
	return fmt.Sprintf("This machine has %d cores, not pinned in this run: CoreDNS and dnsperf share them, "+
		"so the multisocket row says little about how it scales.", n)
}

// pairedCPURatio is the median over rounds of a's CPU per query / b's in
// the same round.
func pairedCPURatio(a, b *runStats) float64 {
	var rs []float64
	for i := 0; i < min(len(a.cpuPerQuery), len(b.cpuPerQuery)); i++ {
		if b.cpuPerQuery[i] > 0 {
			rs = append(rs, float64(a.cpuPerQuery[i])/float64(b.cpuPerQuery[i]))
		}
	}
	return median(rs)
}

// roundCPURatios lists a's CPU per query / b's round by round.
func roundCPURatios(a, b *runStats) string {
	var parts []string
	for i := 0; i < min(len(a.cpuPerQuery), len(b.cpuPerQuery)); i++ {
		if b.cpuPerQuery[i] > 0 {
			parts = append(parts, fmt.Sprintf("%.2f", float64(a.cpuPerQuery[i])/float64(b.cpuPerQuery[i])))
		}
	}
	return strings.Join(parts, ", ")
}

func targetNote(other string) string {
	if t, ok := deployedTargets[other]; ok {
		return fmt.Sprintf("; target >= %.2fx both ways", t)
	}
	return "; reported, not a target"
}

// deployedVerdict says whether both ratios meet target. Differences
// under 5% are within this shared machine's noise between rounds (see
// verdict), and said so rather than called a miss.
func deployedVerdict(target, qps, cpu float64) string {
	t := " (target >= " + fmtRatio(target)
	switch {
	case qps >= target && cpu >= target:
		return t + ": met)"
	case qps >= 0.95*target && cpu >= 0.95*target:
		return t + ": within noise, under 5% short)"
	default:
		return t + ": **missed**)"
	}
}
