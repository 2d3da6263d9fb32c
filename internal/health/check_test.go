package health

import (
	"testing"
	"time"

	"github.com/rollcall/rollcall/registry"
)

const (
	P = registry.StatePassing
	W = registry.StateWarning
	C = registry.StateCritical
)

// TestRiseFall feeds results to a check's rise/fall state and checks the
// state after each, with rise 2 and fall 3.
func TestRiseFall(t *testing.T) {
	spec := Spec{Kind: KindTCP, Target: "127.0.0.1:1", Rise: 2, Fall: 3}
	for _, tc := range []struct {
		name    string
		results []registry.State
		states  []registry.State // after each result
	}{
		{"rise after 2 passes", []registry.State{P, P, P}, []registry.State{C, P, P}},
		{"a failure restarts the rise", []registry.State{P, C, P, P}, []registry.State{C, C, C, P}},
		{"warning counts toward rise, state is the latest", []registry.State{W, P, W, P}, []registry.State{C, P, W, P}},
		{"fall after 3 failures", []registry.State{P, P, C, C, C, C}, []registry.State{C, P, P, P, C, C}},
		{"a pass restarts the fall", []registry.State{P, P, C, C, P, C, C, C}, []registry.State{C, P, P, P, P, P, P, C}},
		{"warning while up is up", []registry.State{P, P, C, W, C, C}, []registry.State{C, P, P, W, W, W}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf := newRiseFall(time.Unix(0, 0))
			for i, r := range tc.results {
				rf.apply(spec, Result{State: r, Output: "out", At: time.Unix(int64(i+1), 0)})
				if rf.state != tc.states[i] {
					t.Fatalf("after results %v: state %s, want %s", tc.results[:i+1], rf.state, tc.states[i])
				}
			}
		})
	}
}

// TestRiseFallReason checks when the reason changes: at the first failure
// and at a fall, never for a failing check's changing output.
func TestRiseFallReason(t *testing.T) {
	spec := Spec{Kind: KindTCP, Target: "127.0.0.1:1", Rise: 1, Fall: 2}
	rf := newRiseFall(time.Unix(0, 0))
	if rf.reason != notYet {
		t.Fatalf("start: reason %q", rf.reason)
	}
	if !rf.apply(spec, Result{State: C, Output: "refused 1"}) || rf.reason != "refused 1" {
		t.Fatalf("first failure: reason %q, want the output, and a change", rf.reason)
	}
	if rf.apply(spec, Result{State: C, Output: "refused 2"}) || rf.reason != "refused 1" {
		t.Fatalf("second failure: reason %q changed: output only must not change it", rf.reason)
	}
	if !rf.apply(spec, Result{State: P, Output: "ok"}) || rf.state != P || rf.reason != "" {
		t.Fatalf("rise: %+v", rf)
	}
	if rf.apply(spec, Result{State: P, Output: "ok, other words"}) {
		t.Fatal("a pass with other output reported a change")
	}
	if rf.apply(spec, Result{State: C, Output: "timeout"}) || rf.state != P {
		t.Fatalf("one failure of fall 2 changed something: %+v", rf)
	}
	if !rf.apply(spec, Result{State: C, Output: ""}) || rf.state != C || rf.reason != "failed without output" {
		t.Fatalf("fall: %+v", rf)
	}
	if rf.transitions != 2 {
		t.Errorf("transitions %d, want 2", rf.transitions)
	}
}
