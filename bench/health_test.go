package main

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/servicereg"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain lets the health part start this test binary as its yardstick
// HTTP client (healthref.go), as it starts the benchmark program itself.
func TestMain(m *testing.M) {
	if httpClientMode() {
		os.Exit(runHTTPClient())
	}
	os.Exit(m.Run())
}

// TestHealthSmoke runs the health part in a few seconds: every measurement
// must fill its table and find no problem (the state-write limit's bound,
// the instance leaving DNS within interval x fall + 3 s). It asserts
// correctness only, never speed.
func TestHealthSmoke(t *testing.T) {
	coredns := testkit.Binary(t, "coredns")
	agent := testkit.Binary(t, "servicereg")
	cfg, err := parseFlags([]string{"-quick", "-bin", filepath.Dir(coredns), "-out", "", "-parts", "health",
		"-health-window", "1s", "-health-flap-hosts", "2", "-health-gones", "2", "-health-gone-interval", "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServiceregBin = agent
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, problems, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, p := range problems {
		t.Errorf("problem: %s", p)
	}
	var sec *Section
	for _, s := range rep.Sections {
		if s.Title == "Health checks" {
			sec = s
		}
	}
	if sec == nil {
		t.Fatalf("no health section:\n%s", out)
	}
	for _, n := range sec.Notes {
		if strings.Contains(n, "Not measured") {
			t.Skipf("health part not measured here: %s", n)
		}
	}
	wantRows := []int{4, 2, 4} // cpu, flap, gone
	if len(sec.Sub) != len(wantRows) {
		t.Fatalf("health section has %d subsections, want %d:\n%s", len(sec.Sub), len(wantRows), out)
	}
	for i, sub := range sec.Sub {
		if len(sub.Rows) != wantRows[i] {
			t.Errorf("%s: %d rows, want %d", sub.Title, len(sub.Rows), wantRows[i])
		}
		for _, n := range sub.Notes {
			if strings.Contains(n, "failed") {
				t.Errorf("%s: %s", sub.Title, n)
			}
		}
	}
	if len(sec.Summary) != len(wantRows) {
		t.Errorf("health summary has %d lines, want %d: %q", len(sec.Summary), len(wantRows), sec.Summary)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

// TestCheckedAgentConfig: the config the health part writes is one the
// agent takes, with the checks and the limit as given.
func TestCheckedAgentConfig(t *testing.T) {
	dir := t.TempDir()
	c := checkedAgent{Host: "hc-x", WriteRate: 1000, WriteBurst: 1000, Services: []checkedService{
		{Name: "a", Unit: "a.service", Checks: []httpCheck{{URL: "http://127.0.0.1:1/flap/hc-x", Interval: 200 * time.Millisecond, Rise: 1, Fall: 1}}},
		{Name: "b", Unit: "a.service"},
	}}
	path := filepath.Join(dir, "agent.yml")
	text := c.yaml("http://127.0.0.1:2379", dir, netip.MustParseAddr("198.19.64.1"), netip.MustParseAddr("10.99.64.1"))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := servicereg.LoadConfig(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got.StateWriteRate != 1000 || got.StateWriteBurst != 1000 || got.Control != filepath.Join(dir, "hc-x.sock") {
		t.Errorf("limit %v/%d, control %s; want 1000/1000 and %s", got.StateWriteRate, got.StateWriteBurst, got.Control, filepath.Join(dir, "hc-x.sock"))
	}
	if len(got.Services) != 2 || len(got.Services[0].Checks) != 1 || len(got.Services[1].Checks) != 0 {
		t.Fatalf("services %+v, want a with one check and b with none", got.Services)
	}
	ch := got.Services[0].Checks[0]
	if ch.Target != "http://127.0.0.1:1/flap/hc-x" || ch.Interval != 200*time.Millisecond || ch.Rise != 1 || ch.Fall != 1 {
		t.Errorf("check %+v, want the flap URL every 200ms, rise 1, fall 1", ch)
	}
	def := checkedAgent{Host: "hc-y", Services: []checkedService{{Name: "a", Unit: "a.service"}}}
	if text := def.yaml("http://127.0.0.1:2379", dir, netip.MustParseAddr("198.19.64.2"), netip.MustParseAddr("10.99.64.2")); strings.Contains(text, "state_write") {
		t.Errorf("an agent with the default limit names it:\n%s", text)
	}
}

// TestCheckTarget: /flap/ paths alternate 503 and 200 each on its own,
// /switch/ paths follow setDown, and the counters count.
func TestCheckTarget(t *testing.T) {
	var atEnd cleanups
	defer atEnd.run()
	tg, err := startCheckTarget(&atEnd)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		resp, err := http.Get(tg.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		path string
		down bool // setDown before the GET
		want int
	}{
		{path: "/flap/a", want: 503},
		{path: "/flap/b", want: 503},
		{path: "/flap/a", want: 200},
		{path: "/flap/a", want: 503},
		{path: "/switch/x", want: 200},
		{path: "/switch/x", down: true, want: 503},
		{path: "/ok/s/1", want: 200},
		{path: "/ref/", want: 200},
		{path: "/nothing", want: 404},
	}
	for i, s := range steps {
		if s.down {
			tg.setDown(s.path, true)
		}
		if got := get(s.path); got != s.want {
			t.Errorf("step %d: GET %s = %d, want %d", i, s.path, got, s.want)
		}
	}
	if tg.flap.Load() != 4 || tg.ok.Load() != 1 || tg.ref.Load() != 1 {
		t.Errorf("counters flap %d ok %d ref %d, want 4 1 1", tg.flap.Load(), tg.ok.Load(), tg.ref.Load())
	}
}

// TestHealthFlags: the health part's flags refuse what the agent would.
func TestHealthFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "quick", args: []string{"-quick"}},
		{name: "interval below the agent's minimum", args: []string{"-health-flap-interval", "50ms"}, wantErr: "-health-flap-interval"},
		{name: "no checks", args: []string{"-health-checks", "0"}, wantErr: "-health-checks"},
		{name: "fall out of range", args: []string{"-health-gone-fall", "101"}, wantErr: "-health-gone-fall"},
		{name: "short window", args: []string{"-health-window", "10ms"}, wantErr: "-health-window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(append([]string{"-pin=false"}, tc.args...))
			if tc.wantErr == "" {
				if err != nil || cfg.Health.Checks != 200 || cfg.Health.CheckInterval != time.Second {
					t.Errorf("got %+v, %v; want 200 checks every 1s", cfg.Health, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error naming %s", err, tc.wantErr)
			}
		})
	}
}
