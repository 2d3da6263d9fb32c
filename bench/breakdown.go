package main

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A CPU profile of each contender under the same load, cut into where a
// query's CPU time goes: the plugin's own work, writing the answer (of
// which packing it and the sendmsg call), reading the query, and the
// garbage collector. Multiplied by the contender's CPU per query, the
// shares say in microseconds what the plugin costs above CoreDNS's floor.

// handlerFrame matches the contender's ServeDNS: the first plugin in the
// chain that answers (rollcall, whoami, file, etcd).
var handlerFrame = regexp.MustCompile(`(^github\.com/rollcall/rollcall/plugin/rollcall|/plugin/(whoami|file|etcd))\.\(?\*?[A-Za-z]+\)?\.ServeDNS$`)

// profileShares are the cumulative shares (0-1) of the frames we report.
type profileShares struct {
	handler, write, pack, sendmsg, read, gc float64
}

// parsePprofCum reads `go tool pprof -top -cum` output into shares.
func parsePprofCum(out string) profileShares {
	var p profileShares
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err != nil {
			continue
		}
		share := pct / 100
		name := strings.Join(f[5:], " ")
		switch {
		case handlerFrame.MatchString(name):
			p.handler = max(p.handler, share)
		case name == "github.com/coredns/coredns/request.(*ScrubWriter).WriteMsg",
			name == "github.com/miekg/dns.(*response).Write":
			// A dns.Msg is written through the first (which calls the
			// second); rollcall's packed answers through the second.
			p.write = max(p.write, share)
		case name == "github.com/miekg/dns.(*Msg).PackBuffer":
			p.pack = share
		case name == "syscall.sendmsg":
			p.sendmsg = share
		case name == "github.com/miekg/dns.(*Server).readUDP":
			p.read = share
		case name == "runtime.gcBgMarkWorker":
			p.gc = share
		}
	}
	return p
}

// profileBreakdown profiles every server under load in turn and returns a
// section with the per-query breakdown, plus rollcall's top functions.
func profileBreakdown(ctx context.Context, cfg Config, env *Env, servers []*Server, stats map[string]*runStats, qfile string, qs []Query) *Section {
	sec := &Section{Title: "Where a query's CPU time goes (CPU profiles under load)"}
	cost := map[string][5]float64{} // µs: total, own, write, read, gc
	sec.Header = []string{"contender", "CPU per query", "plugin's own work", "write answer", "of which pack", "of which sendmsg", "read query", "GC"}
	for _, s := range servers {
		prof := filepath.Join(env.Dir, s.Name+".cpu.pprof")
		if err := profileUnderLoad(ctx, cfg, env, s, qfile, qs, prof); err != nil {
			sec.Row(s.Name, notMeasured(err.Error()))
			continue
		}
		cum, err := pprofTop(ctx, cfg, prof, "-cum", "-nodecount=600")
		if err != nil {
			sec.Row(s.Name, notMeasured(err.Error()))
			continue
		}
		p := parsePprofCum(cum)
		cpq := medianDur(stats[s.Name].cpuPerQuery)
		us := func(share float64) string {
			return fmt.Sprintf("%.2f µs (%.0f%%)", share*float64(cpq)/float64(time.Microsecond), share*100)
		}
		usf := func(share float64) float64 { return share * float64(cpq) / float64(time.Microsecond) }
		cost[contenderOf(s.Name)] = [5]float64{usf(1), usf(max(p.handler-p.write, 0)), usf(p.write), usf(p.read), usf(p.gc)}
		sec.Row(s.Name, fmt.Sprintf("%.2f µs", float64(cpq)/float64(time.Microsecond)),
			us(max(p.handler-p.write, 0)), us(p.write), us(p.pack), us(p.sendmsg), us(p.read), us(p.gc))
		if contenderOf(s.Name) == "rollcall" {
			top, err := pprofTop(ctx, cfg, prof)
			if err == nil {
				sec.Code = top
			}
			// The plugin's own work, callee by callee.
			peek, err := pprofPeek(ctx, cfg, prof, `plugin/rollcall\.\(\*Rollcall\)\.(ServeDNS|respond)$`)
			if err == nil {
				sec.Sub = append(sec.Sub, &Section{Title: "rollcall's own work, callee by callee",
					Notes: []string{"`go tool pprof -peek` of the plugin's ServeDNS and respond in the same profile:"}, Code: peek})
			}
		}
	}
	if r, ok := cost["rollcall"]; ok {
		if w, ok := cost["whoami"]; ok {
			sec.Note("rollcall minus whoami, per query: %+.2f µs CPU in all; plugin's own work %+.2f µs, writing the answer %+.2f µs, "+
				"reading the query %+.2f µs, GC %+.2f µs (the rest is in frames outside these).", r[0]-w[0], r[1]-w[1], r[2]-w[2], r[3]-w[3], r[4]-w[4])
		}
	}
	sec.Intro = append(sec.Intro, fmt.Sprintf("Each contender's CoreDNS profiled through its pprof plugin for %v under the same dnsperf load. "+
		"Shares are cumulative shares of the profile (`go tool pprof -top -cum`) times the contender's median CPU per query from the rounds above: "+
		"\"plugin's own work\" is the contender's ServeDNS minus writing the answer (for etcd it excludes etcd's own CPU); "+
		"\"write answer\" is CoreDNS's ScrubWriter.WriteMsg (size check, Msg.Pack, sendmsg) or, for rollcall's answers packed by the plugin itself, "+
		"miekg/dns's response.Write (sendmsg); \"read query\" is miekg/dns's readUDP (recvmsg); "+
		"GC is runtime.gcBgMarkWorker. Below: rollcall's profile, `go tool pprof -top`.", cfg.ProfileFor))
	return sec
}

// contenderOf is the contender a server runs: its name up to a dash
// ("rollcall-epl" is rollcall behind the "epl" deployment).
func contenderOf(server string) string {
	name, _, _ := strings.Cut(server, "-")
	return name
}
