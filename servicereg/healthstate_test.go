package servicereg

import (
	"slices"
	"testing"
	"time"

	"github.com/rollcall/rollcall/registry"
)

func TestObserveHealth(t *testing.T) {
	crit := registry.StateCritical
	cases := []struct {
		name                   string
		drained, checked, know bool
		st                     registry.State
		reason                 string
		want                   observedHealth
	}{
		{name: "no checks: passing", want: observedHealth{State: registry.StatePassing}},
		{name: "drained wins over checks", drained: true, checked: true, know: true, st: registry.StatePassing,
			want: observedHealth{State: registry.StateDraining}},
		{name: "drained without checks", drained: true, want: observedHealth{State: registry.StateDraining}},
		{name: "checked, monitor has no word: critical", checked: true,
			want: observedHealth{State: crit, Reason: notCheckedYet}},
		{name: "monitor passing", checked: true, know: true, st: registry.StatePassing, reason: "stale words",
			want: observedHealth{State: registry.StatePassing}},
		{name: "monitor warning", checked: true, know: true, st: registry.StateWarning,
			want: observedHealth{State: registry.StateWarning}},
		{name: "monitor critical with reason", checked: true, know: true, st: crit, reason: "http http://127.0.0.1/: 503",
			want: observedHealth{State: crit, Reason: "http http://127.0.0.1/: 503"}},
		{name: "monitor critical without reason", checked: true, know: true, st: crit,
			want: observedHealth{State: crit, Reason: "a health check failed"}},
		{name: "monitor says draining: a bug, critical", checked: true, know: true, st: registry.StateDraining,
			want: observedHealth{State: crit, Reason: "health monitor reported state draining"}},
		{name: "monitor says nonsense", checked: true, know: true, st: "sideways",
			want: observedHealth{State: crit, Reason: "health monitor reported state sideways"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := observeHealth(c.drained, c.checked, c.st, c.reason, c.know); got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// bookAt runs updates against a stateBook on a clock the test moves.
type bookAt struct {
	t   *testing.T
	b   *stateBook
	now time.Time
}

func (ba *bookAt) update(obs map[string]observedHealth) bookUpdate {
	return ba.b.update(ba.now, obs)
}

func (ba *bookAt) state(name string) registry.State {
	h, ok := ba.b.health(name)
	if !ok {
		return ""
	}
	return h.State
}

func obsOf(kv ...any) map[string]observedHealth {
	out := map[string]observedHealth{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = observedHealth{State: kv[i+1].(registry.State)}
		if out[kv[i].(string)].State == registry.StateCritical {
			out[kv[i].(string)] = observedHealth{State: registry.StateCritical, Reason: "down"}
		}
	}
	return out
}

func TestStateBookRegistersAtOnce(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(1, 1), now: time.Unix(1000, 0)}
	// Exhaust the bucket: registrations need no token, and get none.
	for _, name := range []string{"a", "b", "c"} {
		ba.update(obsOf(name, registry.StateCritical))
		if ba.state(name) != registry.StateCritical {
			t.Fatalf("%s not registered at once", name)
		}
	}
	h, _ := ba.b.health("c")
	if h.Since != 1000 || h.Reason != "down" {
		t.Fatalf("registration %+v", h)
	}
	if got := ba.b.lim.TokensAt(ba.now); got != 1 {
		t.Fatalf("registrations took tokens: %v left", got)
	}
}

func TestStateBookRateLimit(t *testing.T) {
	const rate, burst = 2.0, 3
	ba := &bookAt{t: t, b: newStateBook(rate, burst), now: time.Unix(1000, 0)}
	ba.update(obsOf("web", registry.StateCritical))
	flip := func(i int) registry.State {
		if i%2 == 0 {
			return registry.StatePassing
		}
		return registry.StateCritical
	}
	// burst changes go at once, each its own write.
	for i := range burst {
		u := ba.update(obsOf("web", flip(i)))
		if !slices.Equal(u.changed, []string{"web"}) || ba.state("web") != flip(i) {
			t.Fatalf("change %d of the burst: %+v, state %s", i, u, ba.state("web"))
		}
	}
	// The next waits: the record keeps the last state written.
	u := ba.update(obsOf("web", flip(burst)))
	if len(u.changed) != 0 || !slices.Equal(u.delayed, []string{"web"}) || ba.state("web") != flip(burst-1) {
		t.Fatalf("change past the burst: %+v, state %s", u, ba.state("web"))
	}
	if want := ba.now.Add(time.Second / rate); !u.wakeAt.Equal(want) {
		t.Fatalf("wake at %v, want %v", u.wakeAt, want)
	}
	// Flapping meanwhile writes nothing.
	for i := range 4 {
		ba.now = ba.now.Add(50 * time.Millisecond)
		u := ba.update(obsOf("web", flip(burst+1+i)))
		if len(u.changed) != 0 {
			t.Fatalf("flap %d while waiting: %+v", i, u)
		}
	}
	// A change that waits is counted once while it waits.
	ba.now = ba.now.Add(10 * time.Millisecond)
	if u := ba.update(obsOf("web", flip(burst+4))); len(u.delayed) != 0 {
		t.Fatalf("the same waiting change counted again: %+v", u)
	}
	if !ba.b.pending("web") {
		t.Fatal("the waiting change is not pending")
	}
	// When the token is due the latest observed state goes, in one write.
	ba.now = time.Unix(1000, 0).Add(time.Second / rate)
	latest := flip(burst + 4)
	u = ba.update(obsOf("web", latest))
	if !slices.Equal(u.changed, []string{"web"}) || ba.state("web") != latest || ba.b.pending("web") {
		t.Fatalf("at the token: %+v, state %s", u, ba.state("web"))
	}
}

func TestStateBookOneTokenForAll(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(1, 1), now: time.Unix(1000, 0)}
	ba.update(obsOf("a", registry.StateCritical, "b", registry.StateCritical, "c", registry.StateCritical))
	u := ba.update(obsOf("a", registry.StatePassing, "b", registry.StatePassing, "c", registry.StateCritical))
	if !slices.Equal(u.changed, []string{"a", "b"}) {
		t.Fatalf("one token should carry every change waiting: %+v", u)
	}
}

func TestStateBookDrainIsNotPaced(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(1, 1), now: time.Unix(1000, 0)}
	ba.update(obsOf("web", registry.StateCritical))
	ba.update(obsOf("web", registry.StatePassing)) // takes the one token
	u := ba.update(obsOf("web", registry.StateDraining))
	if !slices.Equal(u.changed, []string{"web"}) || ba.state("web") != registry.StateDraining {
		t.Fatalf("drain delayed: %+v", u)
	}
	u = ba.update(obsOf("web", registry.StatePassing))
	if !slices.Equal(u.changed, []string{"web"}) || ba.state("web") != registry.StatePassing {
		t.Fatalf("undrain delayed: %+v", u)
	}
}

func TestStateBookSince(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(100, 100), now: time.Unix(1000, 0)}
	ba.update(map[string]observedHealth{"web": {State: registry.StateCritical, Reason: "no check has passed yet"}})
	ba.now = ba.now.Add(3 * time.Second)
	// Only the reason changes: written, since kept.
	u := ba.update(map[string]observedHealth{"web": {State: registry.StateCritical, Reason: "http: 503"}})
	h, _ := ba.b.health("web")
	if !slices.Equal(u.changed, []string{"web"}) || h.Since != 1000 || h.Reason != "http: 503" {
		t.Fatalf("reason change: %+v %+v", u, h)
	}
	// Nothing changes: nothing written, since kept.
	ba.now = ba.now.Add(3 * time.Second)
	if u := ba.update(map[string]observedHealth{"web": {State: registry.StateCritical, Reason: "http: 503"}}); len(u.changed) != 0 {
		t.Fatalf("no change wrote: %+v", u)
	}
	// The state changes: since moves, the reason goes.
	ba.update(map[string]observedHealth{"web": {State: registry.StatePassing}})
	h, _ = ba.b.health("web")
	if h.Since != 1006 || h.Reason != "" || h.State != registry.StatePassing {
		t.Fatalf("state change: %+v", h)
	}
	// Deregistered, then registered again: a new since.
	ba.update(nil)
	if _, ok := ba.b.health("web"); ok {
		t.Fatal("a deregistered instance is remembered")
	}
	ba.now = ba.now.Add(time.Second)
	ba.update(map[string]observedHealth{"web": {State: registry.StatePassing}})
	if h, _ := ba.b.health("web"); h.Since != 1007 {
		t.Fatalf("since after a new registration: %+v", h)
	}
}

func TestStateBookFlapBackCancels(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(1, 1), now: time.Unix(1000, 0)}
	ba.update(obsOf("web", registry.StateCritical))
	ba.update(obsOf("web", registry.StatePassing)) // the token
	u := ba.update(obsOf("web", registry.StateCritical))
	if u.wakeAt.IsZero() {
		t.Fatal("no wake-up for a held change")
	}
	u = ba.update(obsOf("web", registry.StatePassing)) // back to what is written
	if !u.wakeAt.IsZero() || ba.b.pending("web") || len(u.changed) != 0 {
		t.Fatalf("a change that flapped back is still held: %+v", u)
	}
}

func TestStateBookReload(t *testing.T) {
	ba := &bookAt{t: t, b: newStateBook(1, 1), now: time.Unix(1000, 0)}
	ba.b.setLimit(ba.now, 0, 0) // no limit (a Config built in code)
	ba.update(obsOf("web", registry.StateCritical))
	for i := range 10 {
		st := registry.StatePassing
		if i%2 == 1 {
			st = registry.StateCritical
		}
		if u := ba.update(obsOf("web", st)); len(u.changed) != 1 {
			t.Fatalf("change %d delayed without a limit: %+v", i, u)
		}
	}
}
