package election

import (
	"errors"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/backoff"
)

func TestDefaultMargin(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{name: "10s takes a fifth", ttl: 10 * time.Second, want: 2 * time.Second},
		{name: "60s takes a fifth", ttl: time.Minute, want: 12 * time.Second},
		{name: "2s takes the floor", ttl: 2 * time.Second, want: 500 * time.Millisecond},
		{name: "1s takes half", ttl: time.Second, want: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DefaultMargin(tc.ttl)
			if got != tc.want {
				t.Fatalf("DefaultMargin(%v) = %v, want %v", tc.ttl, got, tc.want)
			}
			if err := checkMargin(tc.ttl, got); err != nil {
				t.Fatalf("default margin rejected: %v", err)
			}
		})
	}
}

func TestCheckMargin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		margin time.Duration
		ok     bool
	}{
		{name: "inside", ttl: 10 * time.Second, margin: 2 * time.Second, ok: true},
		{name: "zero", ttl: 10 * time.Second, margin: 0},
		{name: "negative", ttl: 10 * time.Second, margin: -time.Second},
		{name: "equal to ttl", ttl: 10 * time.Second, margin: 10 * time.Second},
		{name: "beyond ttl", ttl: 10 * time.Second, margin: 11 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkMargin(tc.ttl, tc.margin)
			if (err == nil) != tc.ok {
				t.Fatalf("checkMargin(%v, %v) = %v, want ok=%v", tc.ttl, tc.margin, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not wrap ErrBadOption", err)
			}
		})
	}
}

// TestStepDownTiming walks the holder's decisions: when to renew, and that it
// is no longer master strictly before etcd could expire the lease.
func TestStepDownTiming(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(f float64) time.Time { return t0.Add(time.Duration(f * float64(time.Second))) }
	for _, tc := range []struct {
		name       string
		sent       time.Time // last successful renewal was sent then
		ttl        time.Duration
		margin     time.Duration
		failedAt   time.Time // zero: the last attempt succeeded
		now        time.Time
		wantMaster bool
		wantNext   time.Time
	}{
		{name: "fresh renewal", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, now: sec(1), wantMaster: true, wantNext: sec(10.0 / 3)},
		{name: "renewal due", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, now: sec(3.5), wantMaster: true, wantNext: sec(10.0 / 3)},
		{name: "failed once retries soon", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, failedAt: sec(4), now: sec(4), wantMaster: true, wantNext: sec(5)},
		{name: "retry capped at step-down", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, failedAt: sec(7.5), now: sec(7.5), wantMaster: true, wantNext: sec(8)},
		{name: "just before step-down", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, failedAt: sec(7), now: sec(7.999), wantMaster: true, wantNext: sec(8)},
		{name: "at step-down", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, failedAt: sec(7), now: sec(8), wantMaster: false, wantNext: sec(8)},
		{name: "etcd could expire now", sent: sec(0), ttl: 10 * time.Second, margin: 2 * time.Second, failedAt: sec(9), now: sec(10), wantMaster: false, wantNext: sec(8)},
		{name: "short ttl", sent: sec(0), ttl: 2 * time.Second, margin: 500 * time.Millisecond, now: sec(1.5), wantMaster: false, wantNext: sec(2.0 / 3)},
		{name: "short ttl retry floor", sent: sec(0), ttl: time.Second, margin: 500 * time.Millisecond, failedAt: sec(0.2), now: sec(0.3), wantMaster: true, wantNext: sec(0.3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			until := masterUntil(tc.sent, tc.ttl, tc.margin)
			if master := tc.now.Before(until); master != tc.wantMaster {
				t.Errorf("master at %v = %v, want %v (until %v)", tc.now.Sub(t0), master, tc.wantMaster, until.Sub(t0))
			}
			if !until.Before(tc.sent.Add(tc.ttl)) {
				t.Errorf("steps down at %v, not before the earliest expiry %v", until.Sub(t0), tc.ttl)
			}
			next := nextRenewal(tc.sent, tc.ttl, tc.failedAt, retryInterval(tc.ttl), until)
			if d := next.Sub(tc.wantNext); d > time.Microsecond || d < -time.Microsecond {
				t.Errorf("next renewal at %v, want %v", next.Sub(t0), tc.wantNext.Sub(t0))
			}
		})
	}
}

// TestRenewRetryJitter: a failed renewal is retried within retryInterval,
// never sooner than half of it, at moments that differ from one holder to
// the next.
func TestRenewRetryJitter(t *testing.T) {
	for _, ttl := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		r := retryInterval(ttl)
		seen := map[time.Duration]bool{}
		for range 100 {
			d := backoff.New(renewRetry(ttl)).Next()
			if d < r/2 || d > r {
				t.Fatalf("TTL %v: retry after %v, want within [%v, %v]", ttl, d, r/2, r)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("TTL %v: 100 retries drew only %d distinct delays", ttl, len(seen))
		}
	}
}
