package main

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestSmokeScale runs the scale parts (memory, readers, leases, model) at a
// tiny size against real etcd processes and CoreDNS: every part must run,
// every reader must serve every write and come back from every recovery,
// and the model must come out. It asserts correctness only, never speed.
// It takes about a minute: ROLLCALL_LONG=1 runs it.
func TestSmokeScale(t *testing.T) {
	if os.Getenv("ROLLCALL_LONG") == "" {
		t.Skip("takes about a minute: set ROLLCALL_LONG=1")
	}
	coredns := testkit.Binary(t, "coredns")
	cfg, err := parseFlags([]string{"-quick", "-bin", filepath.Dir(coredns), "-out", "", "-parts", "memory,readers,leases,model",
		"-readers", "5,10", "-readers-services", "20", "-readers-instances", "3", "-lag-duration", "1s", "-outage", "0s",
		"-lease-agents", "200", "-agents-per-client", "50", "-lease-interval", "1s", "-host-queries", "1s"})
	if err != nil {
		t.Fatal(err)
	}
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
	var walk func(secs []*Section)
	titles := map[string]bool{}
	walk = func(secs []*Section) {
		for _, sec := range secs {
			titles[strings.SplitN(sec.Title, ":", 2)[0]] = true
			for _, row := range sec.Rows {
				for _, cell := range row {
					if strings.HasPrefix(cell, "not measured") {
						t.Errorf("%s: row %q: %s", sec.Title, row[0], cell)
					}
				}
			}
			for _, n := range sec.Notes {
				if strings.Contains(n, "Part failed") || strings.Contains(n, "Not measured") {
					t.Errorf("%s: %s", sec.Title, n)
				}
			}
			walk(sec.Sub)
		}
	}
	walk(rep.Sections)
	for _, want := range []string{"Per-host memory", "Readers at scale", "Readers", "Agents' leases at scale", "Model"} {
		if !titles[want] {
			t.Errorf("no section %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

func TestLinFit(t *testing.T) {
	a, b := linFit([]float64{100, 500, 1000}, []float64{1.5, 5.5, 10.5})
	if math.Abs(a-0.5) > 1e-9 || math.Abs(b-0.01) > 1e-9 {
		t.Errorf("fit of y = 0.5 + 0.01x: got a %v, b %v", a, b)
	}
	if a, b := linFit([]float64{50}, []float64{2}); a != 0 || b != 0.04 {
		t.Errorf("one point: got a %v, b %v; want 0, 0.04", a, b)
	}
	if got := at(-1, 0.001, 10); got != 0 {
		t.Errorf("at below zero: got %v, want 0", got)
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("-readers", "1000, 100,500")
	if err != nil || len(got) != 3 || got[0] != 100 || got[2] != 1000 {
		t.Errorf("got %v, %v; want [100 500 1000]", got, err)
	}
	for _, bad := range []string{"", "0", "10,x", "-5"} {
		if _, err := parseCounts("-readers", bad); err == nil || !strings.Contains(err.Error(), "-readers") {
			t.Errorf("%q: got %v, want an error naming the flag", bad, err)
		}
	}
}

func TestUnitEnvironment(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.service")
	unit := "[Service]\n#Environment=GOMEMLIMIT=256MiB\nEnvironment=GOGC=50 \"GOMEMLIMIT=1GiB\"\n  Environment=A=1\nExecStart=/bin/true\n"
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := unitEnvironment(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "GOGC=50 GOMEMLIMIT=1GiB A=1" {
		t.Errorf("got %q, want the active settings only", got)
	}
	// The deployed unit parses.
	if _, err := unitEnvironment(repoPath(unitFile)); err != nil {
		t.Error(err)
	}
}

func TestFleetLags(t *testing.T) {
	ms := time.Millisecond
	f := &fleet{readers: []*fleetReader{
		{applied: []appliedRev{{10, 5 * ms}, {12, 20 * ms}}},
		{applied: []appliedRev{{11, 3 * ms}}}, // first to serve 10, before the writer's answer
	}}
	writes := []timedWrite{{rev: 10, sent: 0, at: 4 * ms}, {rev: 12, sent: 10 * ms, at: 12 * ms}}
	sent, resp := NewHistogram(), NewHistogram()
	missed := f.lags(writes, sent, resp)
	if missed != 1 {
		t.Errorf("missed %d, want 1 (the second reader never served 12)", missed)
	}
	if sent.Count() != 3 || sent.Percentile(1) != 10*ms || resp.Percentile(1) != 8*ms {
		t.Errorf("lags: %d samples, max from sent %v, max from response %v; want 3, 10ms, 8ms", sent.Count(), sent.Percentile(1), resp.Percentile(1))
	}
}

// A leases run that could not measure everything still gets its row, saying
// what it could not do, and the rows keep the header's width.
func TestLeasesSectionSaysWhatItCouldNot(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick", "-out", ""})
	if err != nil {
		t.Fatal(err)
	}
	full := &leaseResult{n: 1000, clients: 10, running: 1000, steady: true, latency: NewHistogram(), keysLeft: 1000}
	noCluster := &leaseResult{n: 10000, clients: 100, latency: NewHistogram(), err: errors.New("etcd cluster: member m0 not ready")}
	partial := &leaseResult{n: 30000, clients: 300, running: 12000, steady: true, latency: NewHistogram(),
		registerErr: errors.New("12000 of 30000 agents registered"), outageErr: errors.New("not restarted"),
		keysErr: errors.New("count keys: context deadline exceeded")}
	sec := leasesSection(cfg, []*leaseResult{full, noCluster, partial})
	if len(sec.Rows) != 3 {
		t.Fatalf("%d rows, want 3", len(sec.Rows))
	}
	for _, row := range sec.Rows {
		if len(row) != len(sec.Header) {
			t.Errorf("row %q: %d cells, header %d", row[0], len(row), len(sec.Header))
		}
	}
	for i, want := range []string{"", "member m0 not ready", "12000 of 30000 agents registered"} {
		line := strings.Join(sec.Rows[i], " | ")
		if want != "" && !strings.Contains(line, want) {
			t.Errorf("row %d %q does not say %q", i, line, want)
		}
	}
	if !strings.Contains(strings.Join(sec.Rows[2], " | "), "context deadline exceeded") {
		t.Errorf("row %q does not say why the keys were not counted", sec.Rows[2])
	}
	if len(sec.Summary) != 3 || !strings.Contains(sec.Summary[1], "not measured") || !strings.Contains(sec.Summary[2], "not restarted") {
		t.Errorf("summary %q", sec.Summary)
	}
}
