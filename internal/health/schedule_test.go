package health

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestFirstDelay(t *testing.T) {
	iv := 5 * time.Second
	for _, r := range []float64{0, 0.25, 0.5, 0.999999999999} {
		d := firstDelay(iv, r)
		if d < 0 || d >= iv {
			t.Errorf("firstDelay(%v, %v) = %v, want within [0, %v)", iv, r, d, iv)
		}
	}
	if d := firstDelay(iv, 0.5); d != iv/2 {
		t.Errorf("firstDelay(%v, 0.5) = %v, want %v: uniform over the interval", iv, d, iv/2)
	}
}

func TestNextDelayJitter(t *testing.T) {
	iv := 10 * time.Second
	lo, hi := 9500*time.Millisecond, 10500*time.Millisecond
	if d := nextDelay(iv, 0); d != lo {
		t.Errorf("nextDelay(r=0) = %v, want %v", d, lo)
	}
	if d := nextDelay(iv, 0.5); d != iv {
		t.Errorf("nextDelay(r=0.5) = %v, want %v", d, iv)
	}
	if d := nextDelay(iv, 0.999999); d < lo || d >= hi {
		t.Errorf("nextDelay(r=1-) = %v, want below %v", d, hi)
	}
}

func TestNextDue(t *testing.T) {
	iv := time.Second
	half := func() float64 { return 0.5 }
	t0 := time.Unix(1000, 0)
	// On time: an interval after the last due time, wherever the run ended.
	next, skipped := nextDue(t0, t0.Add(300*time.Millisecond), iv, half)
	if !next.Equal(t0.Add(iv)) || skipped != 0 {
		t.Errorf("on time: next %v skipped %d", next.Sub(t0), skipped)
	}
	// A run that ended 2.5 intervals late (it waited for the cap): the
	// runs due meanwhile are skipped, not run back to back.
	now := t0.Add(2500 * time.Millisecond)
	next, skipped = nextDue(t0, now, iv, half)
	if skipped != 2 || !next.Equal(now.Add(iv)) {
		t.Errorf("late: next %v after now, skipped %d; want 1s and 2", next.Sub(now), skipped)
	}
}

// TestNextDueSpread checks that real random numbers keep within the
// jitter band and do spread.
func TestNextDueSpread(t *testing.T) {
	iv := time.Second
	t0 := time.Unix(1000, 0)
	seen := map[time.Duration]bool{}
	for range 1000 {
		next, _ := nextDue(t0, t0, iv, rand.Float64)
		d := next.Sub(t0)
		if d < 950*time.Millisecond || d > 1050*time.Millisecond {
			t.Fatalf("next run %v after the last, want within 1s +/- 5%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("1000 next runs took only %d distinct delays: no jitter", len(seen))
	}
}
