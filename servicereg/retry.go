package servicereg

import (
	"time"

	"github.com/rollcall/rollcall/internal/backoff"
)

// retryPolicy paces the main loop's retries of a failed grant or write
// (keeperState.failed) under a lease TTL of ttl (0: not known).
//
// The first retry comes within 200ms (at least 100ms, so that a failing etcd
// is not spun on), and the window doubles from there to 5s: an etcd that
// stays down is asked less and less often. Jitter spreads the retries: an
// outage fails every agent at once, and without it they would all come back
// at the same instant, on a cluster just recovering.
//
// The cap is never longer than half the lease TTL. After an etcd outage
// longer than the TTL the agent has given its lease up, but etcd, once back,
// restores that lease with a fresh TTL and then expires it, taking the
// host's names with it: the agent must grant a new lease and rewrite its keys
// before that, or its names vanish from DNS until its next attempt although
// its units ran all along. The cap is the policy's Max, so that every delay
// is drawn below it (rather than drawn longer and clipped, which would bring
// the agents whose draws were clipped back at the same instant).
func retryPolicy(ttl time.Duration) backoff.Policy {
	p := backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 5 * time.Second}
	if ttl > 0 {
		p.Max = min(p.Max, ttl/2)
	}
	return p
}
