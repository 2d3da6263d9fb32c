package servicereg

import (
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/backoff"
)

// TestRetryDelay checks the main loop's retry delays (retryPolicy, drawn by
// keeperState.failed): the policy's shape for a TTL, then, over many draws,
// that every delay lies between the floor and half the TTL, within its
// attempt's window; that the windows grow to that cap; that delays differ
// from draw to draw; and that a success or a new TTL starts over.
func TestRetryDelay(t *testing.T) {
	const floor, base = 100 * time.Millisecond, 200 * time.Millisecond
	policies := []struct {
		name string
		ttl  time.Duration
		want backoff.Policy
	}{
		{name: "long ttl: the cap is 5s", ttl: 20 * time.Second, want: backoff.Policy{Min: floor, Base: base, Max: 5 * time.Second}},
		{name: "default ttl: half of it is the 5s cap", ttl: 10 * time.Second, want: backoff.Policy{Min: floor, Base: base, Max: 5 * time.Second}},
		{name: "short ttl: capped at half of it", ttl: 2 * time.Second, want: backoff.Policy{Min: floor, Base: base, Max: time.Second}},
		{name: "shortest ttl: capped at half of it", ttl: time.Second, want: backoff.Policy{Min: floor, Base: base, Max: 500 * time.Millisecond}},
		{name: "no ttl known: the cap is 5s", ttl: 0, want: backoff.Policy{Min: floor, Base: base, Max: 5 * time.Second}},
	}
	for _, tt := range policies {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryPolicy(tt.ttl); got != tt.want {
				t.Fatalf("retryPolicy(%v) = %+v, want %+v", tt.ttl, got, tt.want)
			}
		})
	}

	// failing returns a keeper state whose desired state has ttl, and a
	// function that reports one more failure and returns its delay.
	failing := func(ttl time.Duration) (*keeperState, func() time.Duration) {
		s := newKeeperState()
		s.setDesired(wantOf(ttl))
		return s, func() time.Duration { return s.failed(false).retryIn }
	}
	const runs, attempts = 200, 10
	for _, ttl := range []time.Duration{time.Second, 2 * time.Second, 10 * time.Second, 20 * time.Second} {
		t.Run("draws under ttl "+ttl.String(), func(t *testing.T) {
			limit := min(5*time.Second, ttl/2)
			var longest [attempts]time.Duration
			var firsts []time.Duration
			for range runs {
				_, fail := failing(ttl)
				for n := range attempts {
					d := fail()
					// The window of attempt n: [floor, base·2ⁿ], at most limit.
					ceiling := min(base<<n, limit)
					if d < floor || d > ceiling {
						t.Fatalf("failure %d: retry in %v, want within [%v, %v]", n+1, d, floor, ceiling)
					}
					if d > ttl/2 {
						t.Fatalf("failure %d: retry in %v, longer than half the TTL %v", n+1, d, ttl)
					}
					longest[n] = max(longest[n], d)
					if n == 0 {
						firsts = append(firsts, d)
					}
				}
			}
			// The windows grow to the cap: the last attempt's 200 draws
			// from [100ms, limit] all fall short of 80% of it with a
			// chance below 10⁻²⁴.
			if got := longest[attempts-1]; got < limit*8/10 {
				t.Errorf("longest delay of failure %d over %d runs: %v, want the window grown to near %v", attempts, runs, got, limit)
			}
			// Jitter: agents failing together do not retry together. Draws
			// from a 100ms window at nanosecond resolution hardly ever
			// coincide; a handful of distinct values would mean none.
			distinct := map[time.Duration]bool{}
			for _, d := range firsts {
				distinct[d] = true
			}
			if len(distinct) < runs/2 {
				t.Errorf("first retries of %d runs: only %d distinct delays, want them spread", runs, len(distinct))
			}
		})
	}

	t.Run("a success starts over at the first window", func(t *testing.T) {
		s, fail := failing(20 * time.Second)
		for range attempts {
			fail()
		}
		s.granted(7)
		for range 50 {
			s.succeeded()
			if d := fail(); d < floor || d > base {
				t.Fatalf("first retry after a success: %v, want within [%v, %v]", d, floor, base)
			}
		}
	})

	t.Run("a shorter ttl during an outage caps at once", func(t *testing.T) {
		s, fail := failing(20 * time.Second)
		for range attempts {
			fail()
		}
		s.setDesired(wantOf(2 * time.Second))
		for n := range attempts {
			if d := fail(); d < floor || d > time.Second {
				t.Fatalf("failure %d after the ttl became 2s: retry in %v, want within [%v, 1s]", n+1, d, floor)
			}
		}
	})
}
