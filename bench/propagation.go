package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// propService is the name changed by the propagation part; it is not in the
// generated data sets.
const propService = "prop"

// partPropagation times etcd writes until the DNS answer changes: for
// rollcall (the watch path) and, as a reference, the etcd plugin (which
// reads etcd on every query, so it sees a write at once, at the price of
// its throughput).
func partPropagation(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	d := cfg.Small
	sec := &Section{Title: fmt.Sprintf("Propagation: etcd write to DNS answer (%d changes)", cfg.Changes)}
	if _, err := env.EnsureData(ctx, d, smallPrefix, true); err != nil {
		return nil, nil, err
	}
	host := d.Host(0)
	targets, err := propagationTargets(ctx, env, host)
	if err != nil {
		return nil, nil, err
	}
	qs := d.Queries()
	qfile, err := writeQueryFile(env.Dir, "queries-small.txt", qs)
	if err != nil {
		return nil, nil, err
	}
	sec.Header = []string{"contender", "changes", "p50", "p90", "p99", "max", "mean"}
	var problems []string
	for _, tg := range targets {
		if !env.HasPlugin(tg.c.Plugin) {
			sec.Row(tg.c.Name, notMeasured("plugin "+tg.c.Plugin+" is not compiled into bin/coredns"))
			continue
		}
		s, err := env.Start(ctx, atEnd, tg.c)
		if err != nil {
			return nil, nil, err
		}
		problems = append(problems, timePropagation(ctx, cfg, env, sec, s, tg, qfile, qs)...)
		s.Stop()
	}
	sec.Intro = append(sec.Intro, fmt.Sprintf("Each change writes a new address for `%s.%s` (rollcall: the instance record of %s/%s with an "+
		"`addrs` override, on a lease; etcd plugin: its SkyDNS key), then queries the name over UDP in a loop until the answer is the new "+
		"address. Time is from just before the etcd Put to that answer, so it includes the Put's own round trip. \"Under full load\": "+
		"the same while dnsperf saturates the server with the throughput query mix, so the probe's queries queue behind it.", propService, Zone, host, propService))
	return sec, problems, nil
}

// propTarget is a contender of the propagation part and how to change the
// address of propService in its data.
type propTarget struct {
	c     Contender
	write func(ctx context.Context, ip netip.Addr) error
}

// propagationTargets are rollcall, whose instance record of host for
// propService is written on a lease, and the etcd plugin, whose SkyDNS key
// is written.
func propagationTargets(ctx context.Context, env *Env, host string) ([]propTarget, error) {
	keys := registry.MustKeys(smallPrefix)
	lease, err := env.Cli.Grant(ctx, leaseTTL)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	return []propTarget{
		{rollcallContender("rollcall", env.Etcd.ClientURL, smallPrefix), func(ctx context.Context, ip netip.Addr) error {
			v, err := registry.EncodeInstance(&registry.Instance{Service: propService, Host: host,
				Addrs: registry.Addrs{registry.PublicNetwork: {ip}, viewNetwork: {ip}}})
			if err != nil {
				return err
			}
			_, err = env.Cli.Put(ctx, keys.Instance(host, propService), string(v), clientv3.WithLease(lease.ID))
			return err
		}},
		{etcdContender(env.Etcd.ClientURL), func(ctx context.Context, ip netip.Addr) error {
			v, _ := json.Marshal(skyRecord{Host: ip.String(), TTL: ttlSeconds})
			_, err := env.Cli.Put(ctx, skyPath(host+"."+propService+"."+Zone), string(v))
			return err
		}},
	}, nil
}

// timePropagation times tg's changes at server s, idle and then while the
// load saturates it, and adds a row for each to sec; it returns what went
// wrong.
func timePropagation(ctx context.Context, cfg Config, env *Env, sec *Section, s *Server, tg propTarget, qfile string, qs []Query) []string {
	lat, err := timeChanges(ctx, cfg.Changes, s.Addr, tg.write)
	if err != nil {
		sec.Row(tg.c.Name, notMeasured(err.Error()))
		return []string{fmt.Sprintf("propagation %s: %v", tg.c.Name, err)}
	}
	sec.Summary = append(sec.Summary, fmt.Sprintf("Propagation etcd write -> DNS, %s: p50 %s, p99 %s over %d changes (idle server).",
		tg.c.Name, fmtDur(percentileOf(lat, 0.5)), fmtDur(percentileOf(lat, 0.99)), len(lat)))
	sec.Row(latencyRow(tg.c.Name+", idle", lat)...)

	// The same while dnsperf keeps the server saturated: the probe
	// queries queue behind the load, as a client's would.
	n := min(cfg.Changes, 200)
	lat, err = underLoad(ctx, cfg, env, s, qfile, qs, func() ([]time.Duration, error) {
		return timeChanges(ctx, n, s.Addr, tg.write)
	})
	if err != nil {
		sec.Row(tg.c.Name+", under full load", notMeasured(err.Error()))
		return []string{fmt.Sprintf("propagation %s under load: %v", tg.c.Name, err)}
	}
	sec.Row(latencyRow(tg.c.Name+", under full load", lat)...)
	return nil
}

// latencyRow is a row of the propagation table: name, how many, the
// percentiles and the mean of lat (not empty).
func latencyRow(name string, lat []time.Duration) []string {
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	return []string{name, fmt.Sprint(len(lat)), fmtDur(percentileOf(lat, 0.5)), fmtDur(percentileOf(lat, 0.9)),
		fmtDur(percentileOf(lat, 0.99)), fmtDur(percentileOf(lat, 1)), fmtDur(sum / time.Duration(len(lat)))}
}

// timeChanges makes n changes with write and times each until addr answers
// with the new address.
func timeChanges(ctx context.Context, n int, addr string, write func(context.Context, netip.Addr) error) ([]time.Duration, error) {
	q := Query{Kind: QService, Name: propService + "." + Zone}
	var lat []time.Duration
	for i := 0; i < n; i++ {
		ip := addAddr(netip.MustParseAddr("10.200.0.1"), i%60000)
		q.Want = []netip.Addr{ip}
		t0 := time.Now()
		if err := write(ctx, ip); err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		deadline := t0.Add(30 * time.Second)
		for {
			m, err := exchange(ctx, addr, q.Name)
			if err == nil && checkAddrs(q, m) == nil {
				lat = append(lat, time.Since(t0))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("change %d: %s did not answer %s within 30s", i, q.Name, ip)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return lat, nil
}

// underLoad runs f while dnsperf (or the Go load generator) saturates s
// with the query mix, and stops the load when f returns.
func underLoad[T any](ctx context.Context, cfg Config, env *Env, s *Server, qfile string, qs []Query, f func() (T, error)) (T, error) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Killed by cancel when f is done; its result is not wanted.
		_, _ = RunLoad(lctx, loadSpec(cfg, env, s, qfile, queryNames(qs), 10*time.Minute))
	}()
	// Let the load reach its steady state first.
	time.Sleep(300 * time.Millisecond)
	v, err := f()
	cancel()
	<-done
	return v, err
}
