package servicereg

import (
	"reflect"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// wantOf is a desired state of host h1 with lease TTL ttl, services demo and
// web configured, and present the ones named.
func wantOf(ttl time.Duration, present ...string) desiredState {
	want := desiredState{
		cfg:     &Config{Host: "h1", Prefix: registry.DefaultPrefix, TTL: ttl},
		keys:    keys,
		svcs:    map[string]Service{"demo": {Name: "demo"}, "web": {Name: "web"}},
		present: map[string]bool{},
		records: map[string]string{keys.Host("h1"): `{"name":"h1"}`},
	}
	for _, name := range present {
		want.present[name] = true
		want.records[keys.Instance("h1", name)] = `{"service":"` + name + `","host":"h1"}`
	}
	return want
}

func rotated(want desiredState) desiredState {
	want.rotate = true
	return want
}

// The events of keeperState, as steps of a test's history.
type keeperEvent func(s *keeperState) any

func desiredEv(want desiredState) keeperEvent {
	return func(s *keeperState) any { return s.setDesired(want) }
}

func grantedEv(id clientv3.LeaseID) keeperEvent {
	return func(s *keeperState) any { return s.granted(id) }
}

func failedEv(denied bool) keeperEvent {
	return func(s *keeperState) any { return s.failed(denied) }
}

func writtenEv(s *keeperState) any     { return s.written() }
func retryDueEv(s *keeperState) any    { s.retryDue(); return nil }
func leaseLostEv(s *keeperState) any   { return s.leaseLost() }
func inputsEv(s *keeperState) any      { s.inputsChanged(); return nil }
func unavailableEv(s *keeperState) any { s.desiredUnavailable(); return nil }
func stopEv(s *keeperState) any        { return s.stop() }

// repeat is n times ev.
func repeat(n int, ev keeperEvent) []keeperEvent {
	return slices.Repeat([]keeperEvent{ev}, n)
}

// keeperView is the part of keeperState a transition is judged by.
type keeperView struct {
	next                           keeperStep
	lease                          clientv3.LeaseID
	stale, dirty, waiting, failing bool
}

func viewOf(s *keeperState) keeperView {
	return keeperView{next: s.next(), lease: s.lease, stale: s.stale, dirty: s.dirty, waiting: s.waiting, failing: s.failing}
}

// window is the range a failure's retryIn must lie in: the retries are
// jittered, so a transition is judged by the window its delay is drawn from.
type window struct{ lo, hi time.Duration }

// first is the back-off's first window (retryPolicy: [Min, Base]).
var firstWindow = window{100 * time.Millisecond, 200 * time.Millisecond}

// TestKeeperStateTransitions drives the main loop's state through each
// transition without etcd: from the state a history of events left, one
// event, its answer and the state after it. A failure's retryIn is checked
// against the window it is drawn from (retryIn), then compared as 0 with the
// rest of the answer.
func TestKeeperStateTransitions(t *testing.T) {
	const lease, lease2 clientv3.LeaseID = 7, 8
	ttl := 10 * time.Second
	demo := wantOf(ttl, "demo")
	// running: a lease held and demo written on it.
	running := []keeperEvent{desiredEv(demo), grantedEv(lease), writtenEv}
	// outage: the grant failed twice.
	outage := []keeperEvent{desiredEv(demo), failedEv(false), retryDueEv, failedEv(false)}
	// writeFailing: a lease held, and writing on it failed.
	writeFailing := append(slices.Clone(running), inputsEv, desiredEv(demo), failedEv(false))
	tests := []struct {
		name    string
		history []keeperEvent
		event   keeperEvent // nil: only look at the state
		answer  any
		retryIn window // for an answer that is a failure
		want    keeperView
	}{
		{name: "start: nothing to do before a desired state",
			want: keeperView{next: stepIdle, stale: true, dirty: true}},
		{name: "no desired state could be built: wait for the inputs",
			event: unavailableEv,
			want:  keeperView{next: stepIdle, dirty: true}},
		{name: "desired state built: grant a lease",
			event: desiredEv(demo), answer: clientv3.LeaseID(0),
			want: keeperView{next: stepGrant, dirty: true}},
		{name: "lease granted: write everything on it",
			history: []keeperEvent{desiredEv(demo)},
			event:   grantedEv(lease), answer: false,
			want: keeperView{next: stepReconcile, lease: lease, dirty: true}},
		{name: "written: demo registered, then wait",
			history: []keeperEvent{desiredEv(demo), grantedEv(lease)},
			event:   writtenEv, answer: writeDone{registered: []string{"demo"}, present: 1},
			want: keeperView{next: stepWait, lease: lease}},
		{name: "inputs changed: build and write again",
			history: running,
			event:   inputsEv,
			want:    keeperView{next: stepReconcile, lease: lease, stale: true, dirty: true}},
		{name: "written again: nothing newly registered",
			history: append(slices.Clone(running), inputsEv, desiredEv(demo)),
			event:   writtenEv, answer: writeDone{present: 1},
			want: keeperView{next: stepWait, lease: lease}},
		{name: "unit stopped: demo deregistered, web registered",
			history: append(slices.Clone(running), inputsEv, desiredEv(wantOf(ttl, "web"))),
			event:   writtenEv, answer: writeDone{registered: []string{"web"}, deregistered: []string{"demo"}, present: 1},
			want: keeperView{next: stepWait, lease: lease}},
		{name: "desired state unavailable later: the last one stays in force",
			history: append(slices.Clone(running), inputsEv),
			event:   unavailableEv,
			want:    keeperView{next: stepReconcile, lease: lease, dirty: true}},
		{name: "grant failed: probe, warn, retry within the first back-off window",
			history: []keeperEvent{desiredEv(demo)},
			event:   failedEv(false), answer: failure{first: true, warn: true}, retryIn: firstWindow,
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "grant failed again: no probe, no warning, a wider back-off window",
			history: []keeperEvent{desiredEv(demo), failedEv(false), retryDueEv},
			event:   failedEv(false), answer: failure{}, retryIn: window{100 * time.Millisecond, 400 * time.Millisecond},
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "inputs changed during a retry wait: etcd is not asked before it",
			history: outage,
			event:   inputsEv,
			want:    keeperView{next: stepWait, stale: true, dirty: true, waiting: true, failing: true}},
		{name: "retry due without a lease: grant again",
			history: outage,
			event:   retryDueEv,
			want:    keeperView{next: stepGrant, dirty: true, failing: true}},
		{name: "granted after an outage: recovered",
			history: append(slices.Clone(outage), retryDueEv),
			event:   grantedEv(lease), answer: true,
			want: keeperView{next: stepReconcile, lease: lease, dirty: true}},
		{name: "recovered: the next outage starts at the first back-off window",
			history: append(slices.Clone(outage), retryDueEv, grantedEv(lease)),
			event:   failedEv(false), answer: failure{first: true, warn: true}, retryIn: firstWindow,
			want: keeperView{next: stepWait, lease: lease, dirty: true, waiting: true, failing: true}},
		{name: "write failed: keep the lease, wait for the retry",
			history: append(slices.Clone(running), inputsEv, desiredEv(demo)),
			event:   failedEv(false), answer: failure{first: true, warn: true}, retryIn: firstWindow,
			want: keeperView{next: stepWait, lease: lease, dirty: true, waiting: true, failing: true}},
		{name: "write refused: no warning, explain logs the refusal with the fix",
			history: append(slices.Clone(running), inputsEv, desiredEv(demo)),
			event:   failedEv(true), answer: failure{first: true}, retryIn: firstWindow,
			want: keeperView{next: stepWait, lease: lease, dirty: true, waiting: true, failing: true}},
		{name: "retry due with a lease: write again",
			history: writeFailing,
			event:   retryDueEv,
			want:    keeperView{next: stepReconcile, lease: lease, dirty: true, failing: true}},
		{name: "written after failed writes: recovered",
			history: append(slices.Clone(writeFailing), retryDueEv),
			event:   writtenEv, answer: writeDone{recovered: true, present: 1},
			want: keeperView{next: stepWait, lease: lease}},
		{name: "back-off window grows to its maximum under a long TTL",
			history: append([]keeperEvent{desiredEv(wantOf(20 * time.Second))}, repeat(7, failedEv(false))...),
			event:   failedEv(false), answer: failure{}, retryIn: window{100 * time.Millisecond, 5 * time.Second},
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "back-off window capped at half a short TTL",
			history: append([]keeperEvent{desiredEv(wantOf(2 * time.Second))}, repeat(7, failedEv(false))...),
			event:   failedEv(false), answer: failure{}, retryIn: window{100 * time.Millisecond, time.Second},
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "lease lost: grant a new one at once",
			history: running,
			event:   leaseLostEv, answer: lease,
			want: keeperView{next: stepGrant, dirty: true}},
		{name: "lease lost: everything registered again on the new one",
			history: append(slices.Clone(running), leaseLostEv, grantedEv(lease2)),
			event:   writtenEv, answer: writeDone{registered: []string{"demo"}, present: 1},
			want: keeperView{next: stepWait, lease: lease2}},
		{name: "lease lost during a retry wait: grant when it is due",
			history: writeFailing,
			event:   leaseLostEv, answer: lease,
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "host, prefix or TTL changed: revoke the lease, grant a new one",
			history: append(slices.Clone(running), inputsEv),
			event:   desiredEv(rotated(demo)), answer: lease,
			want: keeperView{next: stepGrant, dirty: true}},
		{name: "host, prefix or TTL changed without a lease: nothing to revoke",
			history: []keeperEvent{desiredEv(demo), failedEv(false), inputsEv},
			event:   desiredEv(rotated(demo)), answer: clientv3.LeaseID(0),
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
		{name: "stop: revoke the lease",
			history: running,
			event:   stopEv, answer: lease,
			want: keeperView{next: stepGrant}},
		{name: "stop without a lease: nothing to revoke",
			history: outage,
			event:   stopEv, answer: clientv3.LeaseID(0),
			want: keeperView{next: stepWait, dirty: true, waiting: true, failing: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKeeperState()
			for _, ev := range tt.history {
				ev(s)
			}
			var answer any
			if tt.event != nil {
				answer = tt.event(s)
			}
			if f, ok := answer.(failure); ok {
				if tt.retryIn == (window{}) {
					t.Fatalf("the answer is a failure, but the test gives no window for its retryIn")
				}
				if f.retryIn < tt.retryIn.lo || f.retryIn > tt.retryIn.hi {
					t.Errorf("retryIn %v, want within [%v, %v]", f.retryIn, tt.retryIn.lo, tt.retryIn.hi)
				}
				f.retryIn = 0
				answer = f
			}
			if !reflect.DeepEqual(answer, tt.answer) {
				t.Errorf("answer %#v, want %#v", answer, tt.answer)
			}
			if got := viewOf(s); got != tt.want {
				t.Errorf("state after it %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRecordChanges(t *testing.T) {
	const lease, other clientv3.LeaseID = 7, 9
	want := wantOf(10*time.Second, "demo", "web")
	host, demo, web := keys.Host("h1"), keys.Instance("h1", "demo"), keys.Instance("h1", "web")
	// held is key as want has it, on lease on.
	held := func(key string, on clientv3.LeaseID) heldRecord {
		return heldRecord{value: want.records[key], lease: on}
	}
	tests := []struct {
		name            string
		held            map[string]heldRecord
		writes, deletes []string
	}{
		{name: "nothing held: write everything", held: nil, writes: []string{host, demo, web}},
		{name: "all held on the lease: nothing to do",
			held: map[string]heldRecord{host: held(host, lease), demo: held(demo, lease), web: held(web, lease)}},
		{name: "another value or another lease: write again",
			held:   map[string]heldRecord{host: {value: `{"name":"h1","addrs":{}}`, lease: lease}, demo: held(demo, other), web: held(web, lease)},
			writes: []string{host, demo}},
		{name: "the host's own stray instance: delete it",
			held: map[string]heldRecord{host: held(host, lease), demo: held(demo, lease), web: held(web, lease),
				keys.Instance("h1", "old"): {value: "{}", lease: other}},
			deletes: []string{keys.Instance("h1", "old")}},
		{name: "another host's keys and unknown shapes: never deleted",
			held: map[string]heldRecord{host: held(host, lease), demo: held(demo, lease), web: held(web, lease),
				keys.Instance("h2", "web"): {value: "{}"}, keys.Host("h2"): {value: "{}"},
				keys.HostDir("h1") + "notes": {value: "x"}, keys.Election("web") + "/1f": {value: "h1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writes, deletes := recordChanges(want, tt.held, lease)
			if !slices.Equal(writes, tt.writes) || !slices.Equal(deletes, tt.deletes) {
				t.Fatalf("recordChanges = writes %q, deletes %q; want writes %q, deletes %q", writes, deletes, tt.writes, tt.deletes)
			}
		})
	}
}

// TestKeeperRecompute: a state built again after a health change or a
// timer is reconciled only when its records differ.
func TestKeeperRecompute(t *testing.T) {
	s := newKeeperState()
	s.setDesired(wantOf(10*time.Second, "web"))
	s.granted(1)
	s.written()
	if s.next() != stepWait {
		t.Fatalf("after the write: %v", s.next())
	}
	s.recompute()
	if !s.stale || s.dirty {
		t.Fatalf("recompute: stale %v dirty %v, want stale and clean", s.stale, s.dirty)
	}
	s.setDesired(wantOf(10*time.Second, "web"))
	if s.next() != stepWait {
		t.Fatalf("same records rebuilt: %v, want wait", s.next())
	}
	s.recompute()
	s.setDesired(wantOf(10*time.Second, "web", "demo"))
	if s.next() != stepReconcile {
		t.Fatalf("changed records: %v, want reconcile", s.next())
	}
}

func TestMinActiveWait(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name    string
		min     time.Duration
		since   time.Time
		end     time.Time
		waiting bool
	}{
		{name: "no min_active", min: 0, since: now},
		{name: "just started", min: 2 * time.Second, since: now.Add(-time.Second), end: now.Add(time.Second), waiting: true},
		{name: "long enough", min: 2 * time.Second, since: now.Add(-2 * time.Second), end: now},
		{name: "start not seen: from now", min: 2 * time.Second, end: now.Add(2 * time.Second), waiting: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			end, waiting := minActiveWait(c.min, c.since, now)
			if !end.Equal(c.end) || waiting != c.waiting {
				t.Fatalf("got %v %v, want %v %v", end, waiting, c.end, c.waiting)
			}
		})
	}
}
