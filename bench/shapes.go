package main

import (
	"context"
	"fmt"
)

// shapeBreakdown loads rollcall and whoami with one name shape at a time,
// in alternating rounds, so the report can tell the cost of looking a name
// up (equal-size answers) from the cost of sending a bigger answer (a
// service's every address) — whoami's answer is always small.
func shapeBreakdown(ctx context.Context, cfg Config, env *Env, rc, who *Server, qs []Query) (*Section, error) {
	sec := &Section{Title: "rollcall vs whoami by name shape"}
	sec.Header = []string{"name shape", "rollcall qps", "whoami qps", "rollcall / whoami qps (paired median)",
		"rollcall CPU per query", "whoami CPU per query", "whoami / rollcall CPU per query", "rollcall response bytes", "whoami response bytes"}
	rounds := max(1, min(3, cfg.Rounds))
	for k := QService; k <= QMaster; k++ {
		var sub []Query
		for _, q := range qs {
			if q.Kind == k {
				sub = append(sub, q)
			}
		}
		file, err := writeQueryFile(env.Dir, fmt.Sprintf("queries-%d.txt", k), sub)
		if err != nil {
			return nil, err
		}
		st := map[string]*runStats{rc.Name: newRunStats(), who.Name: newRunStats()}
		size := map[string]int{}
		for r := 0; r < rounds; r++ {
			for _, s := range []*Server{rc, who} {
				res, err := loadMeasured(ctx, loadSpec(cfg, env, s, file, queryNames(sub), cfg.ShapeFor), s, st[s.Name])
				if err != nil {
					return nil, fmt.Errorf("load %s with %s names: %w", s.Name, k, err)
				}
				size[s.Name] = res.RespSize
			}
		}
		a, b := st[rc.Name], st[who.Name]
		ca, cb := medianDur(a.cpuPerQuery), medianDur(b.cpuPerQuery)
		sec.Row("`"+k.String()+"`", fmtQPS(median(a.qps)), fmtQPS(median(b.qps)), fmtRatio(pairedRatio(a, b)),
			fmt.Sprintf("%.1f µs", float64(ca)/1e3), fmt.Sprintf("%.1f µs", float64(cb)/1e3), fmtRatio(float64(cb)/float64(ca)),
			fmt.Sprint(size[rc.Name]), fmt.Sprint(size[who.Name]))
	}
	sec.Intro = append(sec.Intro, fmt.Sprintf("%d alternating rounds of %v per shape and server (same servers, same dnsperf settings). "+
		"whoami answers every name with one A (or AAAA) and one SRV record in the additional section; rollcall's `service` answers carry all %d addresses, "+
		"its other shapes one. Response sizes are dnsperf's averages.", rounds, cfg.ShapeFor, cfg.Small.PerService))
	return sec, nil
}
