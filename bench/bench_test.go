package main

import (
	"bufio"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestSmoke runs the harness in its quick mode on a tiny data set: every
// contender must start and answer every checked name correctly, under
// dnsperf when it is installed (else the Go load generator). It asserts
// correctness only, never speed.
func TestSmoke(t *testing.T) {
	coredns := testkit.Binary(t, "coredns")
	servicereg := testkit.Binary(t, "servicereg")
	cfg, err := parseFlags([]string{"-quick", "-bin", filepath.Dir(coredns), "-out", "",
		"-parts", "throughput,deployed,scale,propagation,agent,etcdload", "-load-interval", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServiceregBin = servicereg
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, problems, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("problem: %s", p)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, sec := range rep.Sections {
		for _, row := range sec.Rows {
			for _, cell := range row {
				// A missing systemd is the only acceptable gap (the agent
				// parts are then not measured: a note, no rows); everything
				// else must be measured.
				if strings.HasPrefix(cell, "not measured") {
					t.Errorf("%s: row %q: %s", sec.Title, row[0], cell)
				}
			}
		}
		for _, n := range sec.Notes {
			if strings.Contains(n, "Part failed") {
				t.Errorf("%s: %s", sec.Title, n)
			}
		}
	}
	var thr, dep *Section
	for _, sec := range rep.Sections {
		switch {
		case strings.HasPrefix(sec.Title, "Throughput"):
			thr = sec
		case strings.HasPrefix(sec.Title, "As deployed"):
			dep = sec
		}
	}
	switch {
	case thr == nil:
		t.Errorf("no throughput section:\n%s", out)
	case len(thr.Rows) != 4:
		t.Errorf("throughput rows: got %d, want rollcall, etcd, file, whoami:\n%s", len(thr.Rows), out)
	}
	switch {
	case dep == nil:
		t.Errorf("no as-deployed section:\n%s", out)
	case len(dep.Rows) != 4*len(deployments):
		t.Errorf("as-deployed rows: got %d, want the 4 contenders in each of %d deployments:\n%s", len(dep.Rows), len(deployments), out)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

func TestDatasetAnswersAgree(t *testing.T) {
	d := Dataset{Services: 5, PerService: 3}
	tests := []struct {
		name string
		kind QueryKind
		s, j int
		want []string
	}{
		{name: "service", kind: QService, s: 1, j: 0, want: []string{"10.100.0.1", "10.100.0.2", "10.100.0.3"}},
		{name: "host", kind: QHost, s: 4, j: 2, want: []string{"10.100.0.1"}},
		{name: "shard", kind: QShard, s: 0, j: 1, want: []string{"10.100.0.1"}},
		{name: "master", kind: QMaster, s: 2, j: 1, want: []string{"10.100.0.2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := d.Query(tc.kind, tc.s, tc.j)
			var got []string
			for _, a := range q.Want {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: got %v, want %v", q.Name, got, tc.want)
			}
		})
	}
	// Every instance of a service is on a different host.
	for s := 0; s < d.Services; s++ {
		seen := map[int]bool{}
		for j := 0; j < d.PerService; j++ {
			if h := d.HostOf(s, j); seen[h] {
				t.Errorf("service %d has two instances on host %d", s, h)
			} else {
				seen[h] = true
			}
		}
	}
	// The zone file holds every address the queries want.
	zone := d.ZoneFile(5)
	for _, q := range d.Queries() {
		for _, a := range q.Want {
			if !strings.Contains(zone, " A "+a.String()+"\n") {
				t.Errorf("zone file lacks %s for %s", a, q.Name)
			}
		}
	}
	if _, err := netip.ParseAddr(d.OverlayAddr(300).String()); err != nil || d.OverlayAddr(300).String() != "10.100.1.44" {
		t.Errorf("OverlayAddr(300) = %s, want 10.100.1.44", d.OverlayAddr(300))
	}
}

func TestParseDNSPerf(t *testing.T) {
	out := `DNS Performance Testing Tool
> NOERROR svc-00001.infra.example.com A 0.000120
> NOERROR svc-00002.infra.example.com A 0.000200
> NXDOMAIN nope.infra.example.com A 0.000300
> T svc-00003.infra.example.com A
Statistics:

  Queries sent:         4
  Queries completed:    3 (75.00%)
  Queries lost:         1 (25.00%)

  Average packet size:  request 39, response 123
  Queries per second:   12345.678900
`
	r, err := parseDNSPerf(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{name: "sent", got: r.Sent, want: int64(4)},
		{name: "completed", got: r.Completed, want: int64(3)},
		{name: "lost", got: r.Lost, want: int64(1)},
		{name: "qps", got: int(r.QPS), want: 12345},
		{name: "response size", got: r.RespSize, want: 123},
		{name: "noerror", got: r.Rcodes["NOERROR"], want: int64(2)},
		{name: "nxdomain", got: r.Rcodes["NXDOMAIN"], want: int64(1)},
		{name: "samples", got: r.Lat.Count(), want: int64(3)},
		{name: "p50", got: r.Lat.Percentile(0.5), want: 200 * time.Microsecond},
		{name: "max", got: r.Lat.Percentile(1), want: 300 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	if _, err := parseDNSPerf(strings.NewReader("no stats here\n")); err == nil {
		t.Error("output without statistics: want an error")
	}
}

func TestHistogramAndMedian(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 100; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{name: "p50", got: h.Percentile(0.5), want: 50 * time.Millisecond},
		{name: "p99", got: h.Percentile(0.99), want: 99 * time.Millisecond},
		{name: "p100", got: h.Percentile(1), want: 100 * time.Millisecond},
		{name: "bucket rounds to 3 digits", got: time.Duration(bucket(123456*time.Microsecond)) * time.Microsecond, want: 123 * time.Millisecond},
		{name: "median odd", got: time.Duration(median([]float64{3, 1, 2})), want: 2},
		{name: "median even", got: time.Duration(median([]float64{4, 1, 2, 3})), want: 2},
		{name: "percentileOf p99", got: percentileOf([]time.Duration{1, 2, 3, 4}, 0.99), want: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP etcd_mvcc_put_total Total number of puts.
etcd_mvcc_put_total 42
etcd_debugging_lease_renewed_total 7
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 9
grpc_server_msg_received_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 100
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want float64
	}{
		{name: "puts", want: 42},
		{name: "lease renewals", want: 7},
		{name: "keepalive messages", want: 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if m[tc.name] != tc.want {
				t.Errorf("got %v, want %v", m[tc.name], tc.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{name: "plain", stat: "42 (coredns) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0", want: 3 * time.Second},
		{name: "spaces in name", stat: "42 (a b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0", want: 100 * time.Millisecond},
		{name: "short", stat: "42 (x) R 1 2", wantErr: true},
		{name: "no name", stat: "garbage", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParsePprofCum(t *testing.T) {
	out := `Showing nodes accounting for 2.87s, 73.03% of 3.93s total
      flat  flat%   sum%        cum   cum%
     0.02s  0.51%  1.53%      2.39s 60.81%  github.com/rollcall/rollcall/plugin/rollcall.(*Rollcall).ServeDNS
     0.01s  0.25%  1.78%      1.85s 47.07%  github.com/coredns/coredns/request.(*ScrubWriter).WriteMsg
         0     0% 40.46%      1.10s 27.99%  syscall.sendmsg
         0     0% 40.71%      0.51s 12.98%  github.com/miekg/dns.(*Server).readUDP
         0     0% 42.24%      0.34s  8.65%  github.com/miekg/dns.(*Msg).PackBuffer
         0     0% 45.29%      0.25s  6.36%  runtime.gcBgMarkWorker
     0.01s  0.25% 40.71%      0.10s  2.00%  github.com/coredns/coredns/plugin/whoami.Whoami.ServeDNS
`
	p := parsePprofCum(out)
	tests := []struct {
		name      string
		got, want float64
	}{
		{name: "handler", got: p.handler, want: 0.6081},
		{name: "write", got: p.write, want: 0.4707},
		{name: "sendmsg", got: p.sendmsg, want: 0.2799},
		{name: "read", got: p.read, want: 0.1298},
		{name: "pack", got: p.pack, want: 0.0865},
		{name: "gc", got: p.gc, want: 0.0636},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := tc.got - tc.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	for _, name := range []string{
		"github.com/coredns/coredns/plugin/whoami.Whoami.ServeDNS",
		"github.com/coredns/coredns/plugin/file.File.ServeDNS",
		"github.com/coredns/coredns/plugin/etcd.(*Etcd).ServeDNS",
		"github.com/rollcall/rollcall/plugin/rollcall.(*Rollcall).ServeDNS",
	} {
		if !handlerFrame.MatchString(name) {
			t.Errorf("handlerFrame does not match %s", name)
		}
	}
	if handlerFrame.MatchString("github.com/coredns/coredns/core/dnsserver.(*Server).ServeDNS") {
		t.Error("handlerFrame matches the dnsserver frame")
	}
}
