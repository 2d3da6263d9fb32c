package health

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// fastInterval is the interval of the tests' checks: short, with a
// timeout just under it that no answer of a local server comes near,
// even on a loaded machine, so that every result is the server's answer.
const fastInterval = 200 * time.Millisecond

// fastSpec is an http check at fastInterval.
func fastSpec(url string, rise, fall int) Spec {
	return Spec{Kind: KindHTTP, Target: url, Interval: fastInterval, Timeout: fastInterval - 10*time.Millisecond, Rise: rise, Fall: fall, Source: "test.yml:1"}
}

// runMonitor runs m until the test ends.
func runMonitor(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// eventually polls cond until it holds, failing after a generous time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scripted is an HTTP server answering its n-th request with codes[n-1]
// (the last code after that), each body different so that output changes
// on every run.
type scripted struct {
	mu    sync.Mutex
	codes []int
	n     int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	code := s.codes[min(s.n, len(s.codes))-1]
	n := s.n
	s.mu.Unlock()
	w.WriteHeader(code)
	fmt.Fprintf(w, "request %d", n)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

type event struct {
	request int
	state   registry.State
	reason  string
}

// TestMonitorRiseFall runs a check against a server answering a script and
// records, at each OnChange, how many requests the server had answered:
// the state changes at exactly the result rise and fall say, and never
// for output alone (every answer's body differs).
func TestMonitorRiseFall(t *testing.T) {
	srv := &scripted{codes: []int{
		200, 200, // rise 2: passing at 2
		503, 503, 503, // fall 3: critical at 5
		503,      // still critical, other output: no change
		429, 429, // warning at 8
		200, // passing at 9, and from then on
	}}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	var mu sync.Mutex
	var events []event
	var m *Monitor
	m = NewMonitor(Options{OnChange: func(svc string) {
		st, reason, _ := m.State(svc)
		mu.Lock()
		events = append(events, event{srv.count(), st, reason})
		mu.Unlock()
	}})
	m.Set("web", []Spec{fastSpec(hs.URL+"/ready", 2, 3)})
	if st, reason, ok := m.State("web"); !ok || st != C || !strings.Contains(reason, notYet) {
		t.Fatalf("before any run: %s %q %v, want critical, %q", st, reason, ok, notYet)
	}
	runMonitor(t, m)
	eventually(t, "12 requests", func() bool { return srv.count() >= 12 })

	mu.Lock()
	got := append([]event(nil), events...)
	mu.Unlock()
	want := []event{
		{2, P, ""},
		{5, C, "http " + hs.URL + "/ready: HTTP 503 Service Unavailable: request 5"},
		{8, W, ""},
		{9, P, ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes (request, state, reason):\n got %v\nwant %v", got, want)
	}
	st := m.Status()
	if len(st) != 1 || len(st[0].Checks) != 1 {
		t.Fatalf("status: %+v", st)
	}
	c := st[0].Checks[0]
	if c.Transitions != 4 || c.Source != "test.yml:1" || c.Last == nil || c.Last.State != P || c.Check != "http "+hs.URL+"/ready" {
		t.Errorf("check status: %+v", c)
	}
}

// TestMonitorFirstFailureReason: a check that never passed says why once
// its first run fails, instead of "no check has passed yet".
func TestMonitorFirstFailureReason(t *testing.T) {
	hs := httptest.NewServer(&scripted{codes: []int{500}})
	defer hs.Close()
	changes := make(chan string, 10)
	m := NewMonitor(Options{OnChange: func(svc string) { changes <- svc }})
	m.Set("api", []Spec{fastSpec(hs.URL+"/", 1, 1)})
	runMonitor(t, m)
	<-changes
	if st, reason, _ := m.State("api"); st != C || !strings.HasSuffix(reason, "HTTP 500 Internal Server Error: request 1") {
		t.Errorf("after a failed first run: %s %q", st, reason)
	}
	time.Sleep(5 * fastInterval)
	if len(changes) != 0 {
		t.Errorf("%d more changes while failing the same way", len(changes))
	}
}

// TestMonitorWorstCheck: a service's state is the worst of its checks'.
func TestMonitorWorstCheck(t *testing.T) {
	ok := httptest.NewServer(&scripted{codes: []int{200}})
	defer ok.Close()
	busy := httptest.NewServer(&scripted{codes: []int{429}})
	defer busy.Close()
	down := httptest.NewServer(&scripted{codes: []int{503}})
	defer down.Close()
	m := NewMonitor(Options{})
	m.Set("a", []Spec{fastSpec(ok.URL, 1, 1), fastSpec(busy.URL, 1, 1)})
	m.Set("b", []Spec{fastSpec(ok.URL, 1, 1), fastSpec(busy.URL, 1, 1), fastSpec(down.URL, 1, 1)})
	runMonitor(t, m)
	eventually(t, "a warning", func() bool { st, _, _ := m.State("a"); return st == W })
	eventually(t, "b failing for its third check", func() bool {
		st, reason, _ := m.State("b")
		return st == C && strings.HasPrefix(reason, "http "+down.URL+": HTTP 503")
	})
	if st := m.Status(); len(st) != 2 || st[0].Service != "a" || st[1].Service != "b" {
		t.Errorf("status not sorted by service: %+v", st)
	}
}

// TestMonitorSetKeepsState: a Set with Equal specs (a reload) keeps a
// passing service passing, counters and all; a changed check starts over.
func TestMonitorSetKeepsState(t *testing.T) {
	hs := httptest.NewServer(&scripted{codes: []int{200}})
	defer hs.Close()
	changes := make(chan string, 100)
	m := NewMonitor(Options{OnChange: func(svc string) { changes <- svc }})
	s := fastSpec(hs.URL+"/", 2, 3)
	m.Set("web", []Spec{s})
	runMonitor(t, m)
	eventually(t, "passing", func() bool { st, _, _ := m.State("web"); return st == P })
	before := m.Status()[0]

	s2 := s
	s2.Source = "other.yml:7"
	m.Set("web", []Spec{s2})
	if st, _, _ := m.State("web"); st != P {
		t.Fatalf("after a reload with the same check: %s, want passing", st)
	}
	after := m.Status()[0]
	if after.Checks[0].Source != "other.yml:7" || after.Checks[0].Transitions != before.Checks[0].Transitions || !after.Since.Equal(before.Since) {
		t.Errorf("reload: before %+v, after %+v", before, after)
	}

	s3 := s2
	s3.Rise = 3
	m.Set("web", []Spec{s3})
	if st, reason, _ := m.State("web"); st != C || !strings.Contains(reason, notYet) {
		t.Errorf("after changing rise: %s %q, want a new check, critical", st, reason)
	}
	eventually(t, "passing again", func() bool { st, _, _ := m.State("web"); return st == P })
}

// TestMonitorRemove: Remove stops a service's checks and forgets it.
func TestMonitorRemove(t *testing.T) {
	srv := &scripted{codes: []int{200}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	reg := prometheus.NewRegistry()
	m := NewMonitor(Options{Registerer: reg})
	m.Set("web", []Spec{fastSpec(hs.URL+"/", 1, 1)})
	runMonitor(t, m)
	eventually(t, "passing", func() bool { st, _, _ := m.State("web"); return st == P })
	if n := series(t, reg, "rollcall_servicereg_check_state"); n != 1 {
		t.Errorf("check_state series: %d, want 1", n)
	}
	m.Remove("web")
	if _, _, ok := m.State("web"); ok {
		t.Error("State after Remove: ok")
	}
	if n := series(t, reg, "rollcall_servicereg_check_state"); n != 0 {
		t.Errorf("check_state series after Remove: %d, want 0", n)
	}
	n := srv.count()
	time.Sleep(5 * fastInterval)
	// A run in flight at Remove may still reach the server.
	if got := srv.count(); got > n+1 {
		t.Errorf("%d requests after Remove", got-n)
	}
	if len(m.Status()) != 0 {
		t.Errorf("status after Remove: %+v", m.Status())
	}
}

// TestMonitorFirstRunsSpread: the first runs of many checks set together
// fall all over their first interval, not at one instant.
func TestMonitorFirstRunsSpread(t *testing.T) {
	const n = 20
	interval := time.Second
	var mu sync.Mutex
	first := map[string]time.Time{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if _, ok := first[r.URL.Path]; !ok {
			first[r.URL.Path] = time.Now()
		}
		mu.Unlock()
	}))
	defer hs.Close()
	m := NewMonitor(Options{MaxConcurrent: n})
	for i := range n {
		m.Set(fmt.Sprintf("s%d", i), []Spec{{Kind: KindHTTP, Target: fmt.Sprintf("%s/%d", hs.URL, i), Interval: interval, Timeout: interval / 2, Rise: 1, Fall: 1}})
	}
	start := time.Now()
	runMonitor(t, m)
	eventually(t, "every first run", func() bool { mu.Lock(); defer mu.Unlock(); return len(first) == n })
	mu.Lock()
	defer mu.Unlock()
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, at := range first {
		d := at.Sub(start)
		lo, hi = min(lo, d), max(hi, d)
	}
	// Slack for a loaded machine on the high side; the spread of 20
	// uniform points is below a quarter interval once in 10^11.
	if lo < 0 || hi > interval+time.Second || hi-lo < interval/4 {
		t.Errorf("first runs from %v to %v after Run, want spread over [0, %v)", lo, hi, interval)
	}
}

// TestMonitorCap: with MaxConcurrent 2, never more than 2 checks run at
// once, counted where they arrive.
func TestMonitorCap(t *testing.T) {
	hs := testkit.StartInFlightServer(t, 200*time.Millisecond)
	reg := prometheus.NewRegistry()
	m := NewMonitor(Options{MaxConcurrent: 2, Registerer: reg})
	for i := range 6 {
		// A timeout far above the handler's time: no run is cut short and
		// replaced while the server still counts it.
		m.Set(fmt.Sprintf("s%d", i), []Spec{{Kind: KindHTTP, Target: fmt.Sprintf("%s/%d", hs.URL, i), Interval: time.Second, Timeout: 900 * time.Millisecond, Rise: 1, Fall: 1}})
	}
	runMonitor(t, m)
	eventually(t, "15 requests", func() bool { _, n := hs.Counts(); return n >= 15 })
	if most, _ := hs.Counts(); most != 2 {
		t.Errorf("at most %d requests at once, want 2 (the cap, reached: 6 checks of 200ms a second)", most)
	}
	if n := series(t, reg, "rollcall_servicereg_check_runs_total"); n == 0 {
		t.Error("no check_runs_total series")
	}
}

func TestMonitorRunTwice(t *testing.T) {
	m := NewMonitor(Options{})
	runMonitor(t, m)
	eventually(t, "Run to start", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.running })
	if err := m.Run(t.Context()); err == nil {
		t.Error("a second Run while one runs: no error")
	}
}

// series counts the series of the metric named name in reg.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
