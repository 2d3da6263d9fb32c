package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// etcdMetrics reads the counters of etcd's /metrics that say how much the
// agents write and keep alive.
func etcdMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("etcd metrics: %w", err)
	}
	defer resp.Body.Close()
	return parseMetrics(bufio.NewScanner(resp.Body))
}

// metricKeys names the counters the etcd load part reports: the metric,
// a label that must be present ("" for none), and a short name.
var metricKeys = []struct{ metric, label, name string }{
	{"etcd_mvcc_put_total", "", "puts"},
	{"etcd_mvcc_txn_total", "", "txns"},
	{"etcd_mvcc_delete_total", "", "deletes"},
	{"etcd_mvcc_range_total", "", "ranges"},
	{"etcd_debugging_lease_granted_total", "", "leases granted"},
	{"etcd_debugging_lease_renewed_total", "", "lease renewals"},
	{"etcd_debugging_lease_revoked_total", "", "leases revoked"},
	{"grpc_server_msg_received_total", `grpc_method="LeaseKeepAlive"`, "keepalive messages"},
}

// parseMetrics sums the counters of metricKeys in Prometheus text format.
func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	out := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, labels, _ := strings.Cut(f[0], "{")
		for _, k := range metricKeys {
			if name != k.metric || !strings.Contains(labels, k.label) {
				continue
			}
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				out[k.name] += v
			}
		}
	}
	return out, sc.Err()
}

// partEtcdLoad starts N agents (one lease each) and measures, from etcd's
// own counters, the writes and keepalives they cause in steady state.
func partEtcdLoad(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	const ttl = 10 * time.Second
	const perAgent = 3
	sec := &Section{Title: fmt.Sprintf("etcd load: %d agents, %d services each, lease TTL %v", cfg.Agents, perAgent, ttl)}
	s, sd, err := agentSetup(ctx, cfg, env, atEnd)
	if err != nil {
		return nil, nil, err
	}
	var svcs []agentService
	for i := 0; i < perAgent; i++ {
		u := fmt.Sprintf("load%d.service", i)
		if err := startSleepUnit(sd, u); err != nil {
			return nil, nil, err
		}
		svcs = append(svcs, agentService{Name: fmt.Sprintf("load%d", i), Unit: u})
	}
	before, err := etcdMetrics(ctx, env.Etcd.ClientURL)
	if err != nil {
		return nil, nil, err
	}
	t0 := time.Now()
	var agents []*agentProc
	for i := 0; i < cfg.Agents; i++ {
		a, err := startAgent(atEnd, cfg, env, sd, 100+i, fmt.Sprintf("agent-load-%d", i), ttl, svcs)
		if err != nil {
			return nil, nil, err
		}
		agents = append(agents, a)
	}
	for _, a := range agents {
		if _, err := waitDNS(ctx, s.Addr, svcs[perAgent-1].Name+"."+Zone, 60*time.Second, hasAddr(a.Overlay)); err != nil {
			return nil, nil, fmt.Errorf("agent %s never registered: %w; log: %s", a.Host, err, a.Log())
		}
	}
	regTime := time.Since(t0)
	settled, err := etcdMetrics(ctx, env.Etcd.ClientURL)
	if err != nil {
		return nil, nil, err
	}
	// Steady state: a settle pause, then the measuring interval.
	time.Sleep(min(2*time.Second, cfg.LoadInterval))
	m0, err := etcdMetrics(ctx, env.Etcd.ClientURL)
	if err != nil {
		return nil, nil, err
	}
	i0 := time.Now()
	select {
	case <-time.After(cfg.LoadInterval):
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	m1, err := etcdMetrics(ctx, env.Etcd.ClientURL)
	if err != nil {
		return nil, nil, err
	}
	secs := time.Since(i0).Seconds()
	sec.Header = []string{"counter (etcd /metrics)", "startup: total", "startup: per agent", "steady: per second", "steady: per agent per second"}
	n := float64(cfg.Agents)
	for _, k := range metricKeys {
		startup := settled[k.name] - before[k.name]
		steady := (m1[k.name] - m0[k.name]) / secs
		sec.Row(k.name, fmt.Sprintf("%.0f", startup), fmt.Sprintf("%.1f", startup/n), fmt.Sprintf("%.2f", steady), fmt.Sprintf("%.3f", steady/n))
	}
	steadyPer := func(name string) float64 { return (m1[name] - m0[name]) / secs / n }
	sec.Summary = append(sec.Summary, fmt.Sprintf("etcd load of %d agents (TTL %v): steady %.3f keepalives/s and %.3f puts/s per agent; at start %.1f puts and %.1f lease grants per agent.",
		cfg.Agents, ttl, steadyPer("keepalive messages"), steadyPer("puts"), (settled["puts"]-before["puts"])/n, (settled["leases granted"]-before["leases granted"])/n))
	sec.Intro = append(sec.Intro, fmt.Sprintf("%d bin/servicereg agents (hosts agent-load-*), each registering %d active units, against the embedded etcd; "+
		"counters read from etcd's /metrics: \"startup\" from before the agents started until all were answering in DNS (%v), "+
		"\"steady\" over %v after a pause. Keepalive messages are LeaseKeepAlive stream messages received (grpc_server_msg_received_total); "+
		"the lease counters are etcd_debugging_lease_*; puts/txns/ranges are etcd_mvcc_*.", cfg.Agents, perAgent, regTime.Round(time.Millisecond), cfg.LoadInterval))
	return sec, nil, nil
}
