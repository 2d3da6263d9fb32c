package servicereg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// The tests of health-gated presence: real units under the test's systemd
// user manager, real checks against a real program (testdata/healthd),
// embedded etcd, and the instance key's history read from an etcd watch.

var (
	healthdOnce sync.Once
	healthdPath string
	healthdErr  error
)

// healthdBinary builds testdata/healthd once per test process.
func healthdBinary(t *testing.T) string {
	t.Helper()
	healthdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rcsr-healthd")
		if err != nil {
			healthdErr = err
			return
		}
		healthdPath = filepath.Join(dir, "healthd")
		out, err := exec.Command("go", "build", "-o", healthdPath, "./testdata/healthd").CombinedOutput()
		if err != nil {
			healthdErr = fmt.Errorf("go build ./testdata/healthd: %v\n%s", err, out)
		}
	})
	if healthdErr != nil {
		t.Fatal(healthdErr)
	}
	return healthdPath
}

// healthd is one testdata/healthd under a unit of the test's manager.
type healthd struct {
	ready, busy          string // ready while ready exists; HTTP 429 while busy exists too
	http, tcp, grpc      string // listen addresses
	unit                 string
	execOK, execLog, dir string // the exec check's switch and run log
}

// startHealthd writes and starts the unit of a healthd for service name,
// not ready; its exec check (execCheck) is failing until execOK exists.
func startHealthd(t *testing.T, sd *testkit.Systemd, name string) *healthd {
	t.Helper()
	dir := t.TempDir()
	d := &healthd{
		ready:   filepath.Join(dir, "ready"),
		busy:    filepath.Join(dir, "busy"),
		http:    "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		tcp:     "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		grpc:    "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		unit:    unit(name),
		execOK:  filepath.Join(dir, "exec-ok"),
		execLog: filepath.Join(dir, "exec.log"),
		dir:     dir,
	}
	sd.WriteUnit(d.unit, fmt.Sprintf("[Service]\nExecStart=%s -http %s -tcp %s -grpc %s -ready %s -busy %s\n",
		healthdBinary(t), d.http, d.tcp, d.grpc, d.ready, d.busy))
	sd.Systemctl("start", d.unit)
	return d
}

// execScript is an exec check that passes while the file $1 exists, and
// appends "<unix time> P|F" to the file $2 on every run, so that a test can
// count the runs a transition came after. It prints its result, which
// /status shows as the check's output.
const execScript = `if [ -e "$1" ]; then r=P; else r=F; fi; echo "$(date +%s.%N) $r" >> "$2"; echo "result $r"; [ "$r" = P ] || exit 2`

func spec(kind healthcheck.Kind, target string, every time.Duration, rise, fall int) healthcheck.Spec {
	return healthcheck.Spec{Kind: kind, Target: target, Interval: every, Timeout: every * 3 / 4, Rise: rise, Fall: fall}
}

func execSpec(okFile, logFile string, every time.Duration, rise, fall int) healthcheck.Spec {
	s := spec(healthcheck.KindExec, "", every, rise, fall)
	s.Argv = []string{"/bin/sh", "-c", execScript, "sh", okFile, logFile}
	return s
}

// checks are one check of every kind on d.
func (d *healthd) checks(every time.Duration, rise, fall int) Checks {
	return Checks{
		spec(healthcheck.KindHTTP, "http://"+d.http+"/ready", every, rise, fall),
		spec(healthcheck.KindTCP, d.tcp, every, rise, fall),
		spec(healthcheck.KindGRPC, d.grpc, every, rise, fall),
		execSpec(d.execOK, d.execLog, every, rise, fall),
	}
}

// trailingRuns counts the exec check's last runs with result r (P or F)
// in a row among those started before t.
func (d *healthd) trailingRuns(t *testing.T, r string, before time.Time) int {
	t.Helper()
	b, err := os.ReadFile(d.execLog)
	if err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ts, res, ok := strings.Cut(line, " ")
		f, err := strconv.ParseFloat(ts, 64)
		if !ok || err != nil {
			t.Fatalf("exec log line %q", line)
		}
		if time.Unix(0, int64(f*1e9)).Before(before) {
			results = append(results, res)
		}
	}
	n := 0
	for i := len(results) - 1; i >= 0 && results[i] == r; i-- {
		n++
	}
	return n
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// keyEvent is one change of a watched key, when the test received it.
type keyEvent struct {
	at      time.Time
	deleted bool
	in      *registry.Instance // decoded value of a put
	lease   clientv3.LeaseID
	rev     int64
}

// keyWatch records every change of one instance key from the moment it is
// made until the test ends.
type keyWatch struct {
	mu     sync.Mutex
	events []keyEvent
	wake   chan struct{}
}

func watchKey(t *testing.T, cli *clientv3.Client, host, service string) *keyWatch {
	t.Helper()
	key := keys.Instance(host, service)
	pk := registry.Key{Kind: registry.KindInstance, Host: host, Service: service}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := cli.Get(ctx, "rev-probe")
	if err != nil {
		t.Fatal(err)
	}
	kw := &keyWatch{wake: make(chan struct{}, 1)}
	wch := cli.Watch(ctx, key, clientv3.WithRev(r.Header.Revision+1))
	var wg sync.WaitGroup
	wg.Go(func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				e := keyEvent{at: time.Now(), deleted: ev.Type == clientv3.EventTypeDelete, lease: clientv3.LeaseID(ev.Kv.Lease), rev: ev.Kv.ModRevision}
				if !e.deleted {
					in, err := registry.DecodeInstance(pk, ev.Kv.Value)
					if err != nil {
						t.Errorf("the agent wrote a record that does not decode: %s: %v", ev.Kv.Value, err)
						continue
					}
					e.in = in
				}
				kw.mu.Lock()
				kw.events = append(kw.events, e)
				kw.mu.Unlock()
				select {
				case kw.wake <- struct{}{}:
				default:
				}
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return kw
}

func (kw *keyWatch) all() []keyEvent {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	return slices.Clone(kw.events)
}

// waitFor waits for the first event from index from on that matches and
// returns its index.
func (kw *keyWatch) waitFor(t *testing.T, from int, what string, match func(keyEvent) bool) int {
	t.Helper()
	deadline := time.After(wait)
	for {
		evs := kw.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i
			}
		}
		select {
		case <-kw.wake:
		case <-deadline:
			t.Fatalf("after %v: no %s; events: %s", wait, what, describeEvents(evs))
		}
	}
}

// waitState waits for a put carrying state st from index from on.
func (kw *keyWatch) waitState(t *testing.T, from int, st registry.State) (int, keyEvent) {
	t.Helper()
	i := kw.waitFor(t, from, "record "+string(st), func(e keyEvent) bool { return e.in != nil && e.in.State == st })
	return i, kw.all()[i]
}

// states is the history's states with repeats (a reason changing) and
// deletes left out.
func states(evs []keyEvent) []registry.State {
	var out []registry.State
	for _, e := range evs {
		if e.in != nil && (len(out) == 0 || out[len(out)-1] != e.in.State) {
			out = append(out, e.in.State)
		}
	}
	return out
}

func describeEvents(evs []keyEvent) string {
	var b strings.Builder
	for _, e := range evs {
		if e.deleted {
			fmt.Fprintf(&b, "\n  %s delete", e.at.Format("15:04:05.000"))
			continue
		}
		fmt.Fprintf(&b, "\n  %s %s since=%d reason=%q lease=%x", e.at.Format("15:04:05.000"), e.in.State, e.in.Since, e.in.Reason, int64(e.lease))
	}
	return b.String()
}

// status reads /status through the agent's handler.
func status(t *testing.T, a *Agent) Status {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, rec.Body.String())
	}
	return st
}

func instanceOf(t *testing.T, st Status, service string) InstanceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Service == service {
			return s
		}
	}
	t.Fatalf("/status has no %s: %+v", service, st)
	return InstanceStatus{}
}

// TestHealthRiseFall: a service with an http, a tcp, a grpc and an exec
// check is registered critical at once, turns passing once every check
// passed rise times, critical once one failed fall times, and nothing else
// in between; the exec check's run log shows the record followed rise and
// fall, never less.
func TestHealthRiseFall(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	d := startHealthd(t, sd, "web")
	const rise, fall = 3, 2
	every := 300 * time.Millisecond
	kw := watchKey(t, cli, "h1", "web")
	a, err := New(userConfig(e, 10*time.Second, Service{Name: "web", Unit: d.unit, Checks: d.checks(every, rise, fall)}),
		Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)

	// Registered at once, critical: the record exists, DNS does not serve it.
	i, ev := kw.waitState(t, 0, registry.StateCritical)
	if i != 0 || ev.in.Reason == "" || ev.in.Since == 0 {
		t.Fatalf("first write: %s", describeEvents(kw.all()))
	}
	if s := instanceOf(t, status(t, a), "web"); !s.Registered || s.State != registry.StateCritical || len(s.Checks) != 4 || s.InService {
		t.Fatalf("/status of a starting instance: %+v", s)
	}

	// Ready: passing after rise passes of every check.
	touch(t, d.ready)
	touch(t, d.execOK)
	i, ev = kw.waitState(t, i, registry.StatePassing)
	if n := d.trailingRuns(t, "P", ev.at); n < rise {
		t.Fatalf("passing after %d passes of the exec check, rise is %d", n, rise)
	}
	if ev.in.Reason != "" {
		t.Fatalf("a passing record with a reason: %+v", ev.in)
	}

	// The exec check alone fails: critical after fall failures, saying which.
	remove(t, d.execOK)
	i, ev = kw.waitState(t, i, registry.StateCritical)
	if n := d.trailingRuns(t, "F", ev.at); n < fall {
		t.Fatalf("critical after %d failures of the exec check, fall is %d", n, fall)
	}
	if !strings.Contains(ev.in.Reason, "exec") {
		t.Errorf("reason %q does not name the exec check", ev.in.Reason)
	}
	touch(t, d.execOK)
	i, ev = kw.waitState(t, i, registry.StatePassing)
	if n := d.trailingRuns(t, "P", ev.at); n < rise {
		t.Fatalf("passing again after %d passes of the exec check, rise is %d", n, rise)
	}

	// The service stops being ready (http and grpc fail): critical.
	remove(t, d.ready)
	_, ev = kw.waitState(t, i, registry.StateCritical)
	if !strings.Contains(ev.in.Reason, "http") && !strings.Contains(ev.in.Reason, "grpc") {
		t.Errorf("reason %q names neither the http nor the grpc check", ev.in.Reason)
	}
	want := []registry.State{registry.StateCritical, registry.StatePassing, registry.StateCritical, registry.StatePassing, registry.StateCritical}
	if got := states(kw.all()); !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v:%s", got, want, describeEvents(kw.all()))
	}
	// since moves with each state and never otherwise.
	var last registry.State
	var since int64
	for _, e := range kw.all() {
		if e.in == nil {
			continue
		}
		if e.in.State == last && e.in.Since != since {
			t.Errorf("since moved from %d to %d without a state change:%s", since, e.in.Since, describeEvents(kw.all()))
		}
		last, since = e.in.State, e.in.Since
	}

	// /status keeps the checks' output; etcd has none of it.
	s := instanceOf(t, status(t, a), "web")
	for _, c := range s.Checks {
		// Every check's last result with its output excerpt and duration,
		// and its transitions.
		if c.Last == nil || c.Last.Output == "" || c.Last.Duration <= 0 || c.Last.At.IsZero() || c.Transitions == 0 {
			t.Errorf("/status check %s: last %+v, %d transitions", c.Check, c.Last, c.Transitions)
		}
	}
	if got := metricValue(t, a, `rollcall_servicereg_instance_state{service="web",state="critical"}`); got != "1" {
		t.Errorf("instance_state critical = %q, want 1", got)
	}
	// A unit that stops takes its record with it.
	sd.Systemctl("stop", d.unit)
	kw.waitFor(t, i, "delete after the unit stopped", func(e keyEvent) bool { return e.deleted })
}

// TestStateWriteRateLimit: a check that flaps at every run writes no more
// than the token bucket lets through.
func TestStateWriteRateLimit(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd.WriteUnit(unit("flap"), testkit.SleepUnit)
	sd.Systemctl("start", unit("flap"))
	toggle := filepath.Join(t.TempDir(), "toggle")
	flapping := healthcheck.Spec{Kind: healthcheck.KindExec, Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond, Rise: 1, Fall: 1,
		Argv: []string{"/bin/sh", "-c", `if [ -e "$1" ]; then rm -f "$1"; exit 0; else : > "$1"; exit 2; fi`, "sh", toggle}}
	const rate, burst = 2.0, 3
	cfg := userConfig(e, 10*time.Second, Service{Name: "flap", Unit: unit("flap"), Checks: Checks{flapping}})
	cfg.StateWriteRate, cfg.StateWriteBurst = rate, burst
	kw := watchKey(t, cli, "h1", "flap")
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	first := kw.waitFor(t, 0, "registration", func(e keyEvent) bool { return e.in != nil })

	const window = 4 * time.Second
	start := time.Now()
	time.Sleep(window)
	end := time.Now()
	var writes int
	for _, e := range kw.all()[first+1:] {
		if !e.at.Before(start) && !e.at.After(end) {
			writes++
		}
	}
	// The bucket allows burst + rate*window writes in any window; half a
	// second more covers events delivered a little late at its edges.
	limit := burst + int(rate*(end.Sub(start)+500*time.Millisecond).Seconds())
	t.Logf("%d state writes in %v (limit %d)", writes, end.Sub(start), limit)
	if writes > limit {
		t.Fatalf("%d writes in %v, the limit allows %d:%s", writes, end.Sub(start), limit, describeEvents(kw.all()))
	}
	if writes < burst {
		t.Fatalf("only %d writes in %v: the check did not flap", writes, end.Sub(start))
	}
	flaps := 0
	for _, c := range instanceOf(t, status(t, a), "flap").Checks {
		flaps += c.Transitions
	}
	if flaps <= writes {
		t.Fatalf("%d check transitions, %d writes: the limit was never needed", flaps, writes)
	}
	if v := metricValue(t, a, "rollcall_servicereg_state_writes_delayed_total"); v == "" || v == "0" {
		t.Errorf("state_writes_delayed_total = %q while flapping", v)
	}
}

// TestMasterFollowsHealthAndMaintenance: a master_election service
// campaigns only while it is in service: it resigns (on_standby) when its
// instance turns critical or is drained, campaigns again (on_master) once
// it passes or is undrained, and resigns while a maintenance record holds
// it or its host, until the record is deleted or its until passes.
func TestMasterFollowsHealthAndMaintenance(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	dir := t.TempDir()
	ok, runs := filepath.Join(dir, "ok"), filepath.Join(dir, "runs")
	touch(t, ok)
	sd.WriteUnit(unit("db"), testkit.SleepUnit)
	sd.Systemctl("start", unit("db"))
	masterLog, standbyLog := filepath.Join(dir, "master"), filepath.Join(dir, "standby")
	cfg := userConfig(e, 10*time.Second, Service{Name: "db", Unit: unit("db"), MasterElection: true,
		OnMaster: hookArgv(masterLog), OnStandby: hookArgv(standbyLog),
		Checks: Checks{execSpec(ok, runs, 200*time.Millisecond, 1, 1)}})
	cfg.Control = filepath.Join(dir, "control.sock")
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	serveControl(t, a)

	terms := []int64{}
	masterAgain := func(what string) {
		t.Helper()
		testkit.Eventually(t, wait, what+": master again with a larger term, on_master ran", func() bool {
			l, isLeader := leader(t, cli, "db")
			lines := hookLines(masterLog)
			if !isLeader || l.Host != "h1" || len(lines) != len(terms)+1 {
				return false
			}
			if len(terms) > 0 && l.Term <= terms[len(terms)-1] {
				t.Fatalf("term %d after %v", l.Term, terms)
			}
			terms = append(terms, l.Term)
			return true
		})
	}
	standby := func(what string) {
		t.Helper()
		testkit.Eventually(t, wait, what+": resigned, on_standby ran", func() bool {
			_, isLeader := leader(t, cli, "db")
			return !isLeader && len(hookLines(standbyLog)) == len(terms)
		})
	}
	masterAgain("passing at start")

	remove(t, ok)
	standby("critical")
	if v, _, _ := get(t, cli, keys.Instance("h1", "db")); !strings.Contains(v, `"state":"critical"`) {
		t.Fatalf("record while resigned for critical: %s", v)
	}
	touch(t, ok)
	masterAgain("passing again")

	// Drained over the control socket: out of the election until undrained.
	testkit.Eventually(t, wait, "control socket open", func() bool { _, err := os.Stat(cfg.Control); return err == nil })
	mustDrain(t, cfg.Control, OpDrain, "db")
	standby("drained")
	if v, _, _ := get(t, cli, keys.Instance("h1", "db")); !strings.Contains(v, `"state":"draining"`) {
		t.Fatalf("record while resigned for a drain: %s", v)
	}
	mustDrain(t, cfg.Control, OpUndrain, "db")
	masterAgain("undrained")

	// Maintenance of the instance: out of the election, record untouched.
	mv, err := registry.EncodeMaintenance(&registry.Maintenance{Reason: "reindex", Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Put(t, cli, keys.Maintenance("h1", "db"), string(mv))
	standby("instance maintenance")
	if v, _, _ := get(t, cli, keys.Instance("h1", "db")); !strings.Contains(v, `"state":"passing"`) {
		t.Fatalf("maintenance changed the record: %s", v)
	}
	if s := instanceOf(t, status(t, a), "db"); s.Maintenance == nil || s.Maintenance.Reason != "reindex" || s.Maintenance.Scope != "service" || s.InService {
		t.Fatalf("/status in maintenance: %+v", s)
	}
	testkit.Delete(t, cli, keys.Maintenance("h1", "db"))
	masterAgain("maintenance deleted")

	// A malformed record counts as none, and is counted.
	testkit.Put(t, cli, keys.Maintenance("h1", "db"), `{"reason":""}`)
	testkit.Eventually(t, wait, "malformed maintenance counted", func() bool {
		return metricValue(t, a, "rollcall_servicereg_maintenance_records_skipped_total") == "1"
	})
	if _, isLeader := leader(t, cli, "db"); !isLeader {
		t.Fatal("a malformed maintenance record took the master out")
	}
	testkit.Delete(t, cli, keys.Maintenance("h1", "db"))

	// The whole host, until a moment from now: out, then back by itself.
	// (A maintenance of another host whose name starts with this one's is
	// not this host's.)
	other, _ := registry.EncodeMaintenance(&registry.Maintenance{Reason: "not ours"})
	testkit.Put(t, cli, keys.Maintenance("h10", ""), string(other))
	hv, _ := registry.EncodeMaintenance(&registry.Maintenance{Reason: "kernel update", Until: time.Now().Add(3 * time.Second).Unix()})
	testkit.Put(t, cli, keys.Maintenance("h1", ""), string(hv))
	standby("host maintenance")
	if st := status(t, a); st.Maintenance == nil || st.Maintenance.Scope != "host" {
		t.Fatalf("/status host maintenance: %+v", st.Maintenance)
	}
	masterAgain("host maintenance expired")
}

// TestRestartStartsCritical: a restarted agent's first write of a checked
// instance is critical, never passing-then-critical; and a reload that
// keeps the checks keeps the state without a write.
func TestRestartStartsCritical(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	d := startHealthd(t, sd, "web")
	touch(t, d.ready)
	cfg := userConfig(e, 10*time.Second, Service{Name: "web", Unit: d.unit,
		Checks: Checks{spec(healthcheck.KindHTTP, "http://"+d.http+"/ready", 200*time.Millisecond, 2, 2)}})

	kw := watchKey(t, cli, "h1", "web")
	a1, err := New(cfg, Options{Logger: testLogger(t).With("agent", 1)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a1)
	kw.waitState(t, 0, registry.StatePassing)
	stop()

	a2, err := New(cfg, Options{Logger: testLogger(t).With("agent", 2)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a2)
	del := kw.waitFor(t, 0, "delete when the first agent stopped", func(e keyEvent) bool { return e.deleted })
	i, _ := kw.waitState(t, del, registry.StatePassing)
	evs := kw.all()
	if first := evs[del+1]; first.in == nil || first.in.State != registry.StateCritical {
		t.Fatalf("the restarted agent's first write is not critical:%s", describeEvents(evs))
	}
	if got := states(evs[del+1:]); !slices.Equal(got, []registry.State{registry.StateCritical, registry.StatePassing}) {
		t.Fatalf("states after the restart %v:%s", got, describeEvents(evs))
	}

	// Reload with the same checks and one more service: web keeps its state
	// and its record is not written.
	next := *a2.Config()
	next.Services = append(slices.Clone(next.Services), Service{Name: "extra", Unit: unit("extra")})
	if err := a2.Reload(&next); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "reload applied", func() bool {
		for _, s := range status(t, a2).Services {
			if s.Service == "extra" {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second) // several check intervals: room for a flap to show
	if evs := kw.all(); len(evs) != i+1 {
		t.Fatalf("the reload wrote web again:%s", describeEvents(evs[i:]))
	}
}

// TestMinActive: a unit that dies before min_active is never registered;
// one that stays is registered once min_active has passed.
func TestMinActive(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd.WriteUnit(unit("brief"), testkit.FailingUnit(time.Second))
	sd.WriteUnit(unit("steady"), testkit.SleepUnit)
	cfg := userConfig(e, 10*time.Second,
		Service{Name: "brief", Unit: unit("brief"), MinActive: 3 * time.Second},
		Service{Name: "steady", Unit: unit("steady"), MinActive: time.Second})
	brief := watchKey(t, cli, "h1", "brief")
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	sd.Systemctl("start", unit("brief"), unit("steady"))
	testkit.Eventually(t, wait, "brief seen active and waiting for min_active", func() bool {
		s := instanceOf(t, status(t, a), "brief")
		return s.Active && !s.Registered && s.MinActiveLeft > 0
	})
	testkit.Eventually(t, wait, "steady registered after min_active", func() bool {
		return testkit.Exists(t, cli, keys.Instance("h1", "steady"))
	})
	testkit.Eventually(t, wait, "brief failed and seen gone", func() bool {
		out, _ := sd.TrySystemctl("is-failed", unit("brief"))
		return strings.TrimSpace(out) == "failed" && !instanceOf(t, status(t, a), "brief").Active
	})
	if evs := brief.all(); len(evs) != 0 {
		t.Fatalf("brief, which died before min_active, was written:%s", describeEvents(evs))
	}
}

// TestCheckConcurrency: the agent's check_concurrency reaches its checks.
// Six services' checks of 300ms each, every second, would overlap; with
// check_concurrency 1 no two requests ever reach the server at once.
func TestCheckConcurrency(t *testing.T) {
	e := testkit.StartEtcd(t)
	hs := testkit.StartInFlightServer(t, 300*time.Millisecond)
	var static []Service
	for i := range 6 {
		// A timeout far above the handler's time: no run is cut short
		// while the server still counts it.
		s := spec(healthcheck.KindHTTP, fmt.Sprintf("%s/%d", hs.URL, i), time.Second, 1, 1)
		s.Timeout = 900 * time.Millisecond
		static = append(static, Service{Name: fmt.Sprintf("s%d", i), Checks: Checks{s}})
	}
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()}, CheckConcurrency: 1}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true, Static: static})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	testkit.Eventually(t, wait, "10 check requests", func() bool { _, n := hs.Counts(); return n >= 10 })
	if most, _ := hs.Counts(); most != 1 {
		t.Errorf("%d check requests at once, want 1 (check_concurrency)", most)
	}
}
