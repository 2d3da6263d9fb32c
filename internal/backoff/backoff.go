// Package backoff paces retries for every loop in rollcall that waits before
// trying etcd (or anything else shared) again: exponential growth up to a cap,
// with full jitter above a floor.
//
// Jitter is the point. Many processes fail at the same moment (an etcd outage
// ends every DNS server's watch and every agent's renewal at once); with a
// fixed or purely exponential delay they all come back at the same moment
// too, and the herd that knocked etcd over knocks it over again. A random
// delay drawn from a window spreads them over the window. The floor keeps a
// failing loop from spinning (a delay of almost nothing is as likely as any
// other under plain full jitter); the cap bounds how late a loop notices that
// etcd is back.
//
// For attempt n (0 after New or Reset), the ceiling is Base·2ⁿ, no more than
// Max, and the delay is drawn uniformly from [Min, ceiling]. Two common
// shapes:
//
//	Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 5 * time.Second}
//	    grows from [100ms, 200ms] to [100ms, 5s]: a retry loop
//	Policy{Max: time.Second}
//	    every delay in [0, 1s]: pure spreading, no growth (Base 0 means Max)
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy says how delays grow and how far they spread. Negative values count
// as 0; Max is raised to Min and Base is kept within [Min, Max].
type Policy struct {
	// Min is the shortest delay.
	Min time.Duration
	// Base is the ceiling of the first delay; each delay doubles it, up to
	// Max. 0 means Max: every delay is drawn from [Min, Max].
	Base time.Duration
	// Max is the longest delay.
	Max time.Duration
}

// normal returns p with its fields made consistent (see Policy).
func (p Policy) normal() Policy {
	p.Min, p.Base, p.Max = max(p.Min, 0), max(p.Base, 0), max(p.Max, 0)
	p.Max = max(p.Max, p.Min)
	if p.Base == 0 {
		p.Base = p.Max
	}
	p.Base = min(max(p.Base, p.Min), p.Max)
	return p
}

// Backoff hands out the delays of one retry loop. It is not safe for
// concurrent use: each loop has its own.
type Backoff struct {
	p       Policy
	ceiling time.Duration // of the next delay
	// rand returns a number in [0, n]; a variable so that tests can pin the
	// draw to the ends of the window.
	rand func(n int64) int64
}

// New returns a Backoff whose first delay is drawn from [Min, Base].
func New(p Policy) *Backoff {
	p = p.normal()
	return &Backoff{p: p, ceiling: p.Base, rand: uniform}
}

// uniform draws from [0, n] (the whole closed window, so that Max itself can
// come up) from the process-wide generator, which is safe for concurrent use
// and seeded at random: processes started together draw differently.
func uniform(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n + 1)
}

// Policy returns the policy, as normalised by New.
func (b *Backoff) Policy() Policy { return b.p }

// Next returns the next delay and grows the ceiling of the one after it.
func (b *Backoff) Next() time.Duration {
	c := b.ceiling
	// Doubling past Max (or overflowing) would serve no purpose: clamp.
	if c >= b.p.Max/2 {
		b.ceiling = b.p.Max
	} else {
		b.ceiling = 2 * c
	}
	return b.p.Min + time.Duration(b.rand(int64(c-b.p.Min)))
}

// Reset starts the growth over: call it once the thing retried works again,
// so that the next failure is retried soon.
func (b *Backoff) Reset() { b.ceiling = b.p.Base }

// Wait sleeps for the next delay, or until ctx ends; then it returns ctx's
// error. A ctx that has already ended returns at once, without drawing.
func (b *Backoff) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return Sleep(ctx, b.Next())
}

// Sleep waits for d, or until ctx ends; then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
