package backoff

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// pinned returns b drawing always the top (or bottom) of each window, so
// that the ceilings can be read off exactly.
func pinned(b *Backoff, top bool) *Backoff {
	b.rand = func(n int64) int64 {
		if top {
			return n
		}
		return 0
	}
	return b
}

// TestCeilingGrowth: the ceiling starts at Base, doubles to Max and stays
// there; the floor is Min throughout.
func TestCeilingGrowth(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 2 * time.Second}
	ms := time.Millisecond
	wantTop := []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}
	top, bottom := pinned(New(p), true), pinned(New(p), false)
	for i, want := range wantTop {
		if got := top.Next(); got != want {
			t.Errorf("delay %d at the top of its window: %v, want %v", i, got, want)
		}
		if got := bottom.Next(); got != p.Min {
			t.Errorf("delay %d at the bottom of its window: %v, want Min %v", i, got, p.Min)
		}
	}
}

// TestBounds: with the real generator every delay lies in [Min, Max] and in
// its attempt's window, for several shapes of policy.
func TestBounds(t *testing.T) {
	for _, p := range []Policy{
		{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 5 * time.Second},
		{Base: time.Millisecond, Max: time.Second},
		{Max: time.Second},
		{Min: time.Second, Max: time.Second},
		{Min: 10 * time.Millisecond, Base: 3 * time.Millisecond, Max: 7 * time.Millisecond}, // Max < Min, Base < Min
	} {
		q := p.normal()
		b := New(p)
		ceiling := q.Base
		for i := range 200 {
			d := b.Next()
			if d < q.Min || d > ceiling || d > q.Max {
				t.Fatalf("%+v: delay %d is %v, outside [%v, %v]", p, i, d, q.Min, ceiling)
			}
			ceiling = min(2*ceiling, q.Max)
		}
	}
}

// TestNormal: nonsense is made consistent rather than refused, so that a
// zero Policy is a loop without delay and never a panic.
func TestNormal(t *testing.T) {
	for _, tc := range []struct {
		in, want Policy
	}{
		{in: Policy{}, want: Policy{}},
		{in: Policy{Min: -1, Base: -1, Max: -1}, want: Policy{}},
		{in: Policy{Max: time.Second}, want: Policy{Base: time.Second, Max: time.Second}},
		{in: Policy{Base: 3 * time.Second, Max: time.Second}, want: Policy{Base: time.Second, Max: time.Second}},
		{in: Policy{Min: 2 * time.Second, Base: time.Second, Max: time.Second}, want: Policy{Min: 2 * time.Second, Base: 2 * time.Second, Max: 2 * time.Second}},
	} {
		if got := New(tc.in).Policy(); got != tc.want {
			t.Errorf("New(%+v).Policy() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if d := New(Policy{}).Next(); d != 0 {
		t.Errorf("zero policy: delay %v, want 0", d)
	}
}

// TestJitterSpread: delays drawn from one window cover it, rather than
// bunching (which is what would make processes failing together retry
// together), and two loops with the same policy draw differently.
func TestJitterSpread(t *testing.T) {
	const n = 2000
	window := time.Second
	var ds []time.Duration
	b := New(Policy{Max: window})
	for range n {
		ds = append(ds, b.Next())
	}
	slices.Sort(ds)
	// A uniform draw of 2000 puts its smallest below 1% of the window and
	// its largest above 99% with overwhelming probability; each decile
	// gets about 200.
	if ds[0] > window/100 || ds[n-1] < window*99/100 {
		t.Errorf("2000 delays from [0, %v] span only [%v, %v]", window, ds[0], ds[n-1])
	}
	for dec := range 10 {
		lo, hi := window*time.Duration(dec)/10, window*time.Duration(dec+1)/10
		c := 0
		for _, d := range ds {
			if d >= lo && d < hi {
				c++
			}
		}
		if c < n/10/2 || c > n/10*2 {
			t.Errorf("%d of %d delays in [%v, %v): not spread evenly", c, n, lo, hi)
		}
	}
	// Two loops started together: their first delays differ (equal draws
	// from a 1s window at nanosecond resolution are a 1 in 10⁹ event, so
	// ten in a row mean no jitter).
	same := 0
	for range 10 {
		x, y := New(Policy{Max: window}), New(Policy{Max: window})
		if x.Next() == y.Next() {
			same++
		}
	}
	if same == 10 {
		t.Errorf("two backoffs with one policy drew the same first delay ten times in a row")
	}
}

// TestReset: after Reset the next delay is back in the first window.
func TestReset(t *testing.T) {
	p := Policy{Min: 10 * time.Millisecond, Base: 20 * time.Millisecond, Max: time.Second}
	b := pinned(New(p), true)
	for range 10 {
		b.Next()
	}
	if got := b.Next(); got != p.Max {
		t.Fatalf("after 10 delays: %v, want the cap %v", got, p.Max)
	}
	b.Reset()
	if got := b.Next(); got != p.Base {
		t.Fatalf("after Reset: %v, want the first ceiling %v", got, p.Base)
	}
	if got := b.Next(); got != 2*p.Base {
		t.Fatalf("second delay after Reset: %v, want %v", got, 2*p.Base)
	}
}

// TestWait: Wait sleeps about the drawn delay, returns at once (with ctx's
// error) when ctx ends meanwhile or has ended already.
func TestWait(t *testing.T) {
	b := New(Policy{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond})
	start := time.Now()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("Wait returned after %v, before the 20ms delay", d)
	}

	long := New(Policy{Min: time.Hour, Max: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start = time.Now()
	if err := long.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait cancelled: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled Wait returned after %v", d)
	}

	drawn := 0
	b = New(Policy{Max: time.Hour})
	b.rand = func(n int64) int64 { drawn++; return n }
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended ctx: %v, want context.Canceled", err)
	}
	if drawn != 0 {
		t.Errorf("Wait on an ended ctx drew a delay (and grew the ceiling)")
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on an ended ctx: %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0): %v", err)
	}
}
