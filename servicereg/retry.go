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
// The cap is never longer than half the lease TTL: a host whose lease etcd
// did expire (it was cut off from a cluster that stayed up; lease.go keeps a
// lease through a whole-cluster outage) has no names in DNS until its grant
// and rewrite go through, and a write that failed during an outage must land
// well within the TTL etcd restored. The cap is the policy's Max, so that every delay
// is drawn below it (rather than drawn longer and clipped, which would bring
// the agents whose draws were clipped back at the same instant).
func retryPolicy(ttl time.Duration) backoff.Policy {
	p := backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 5 * time.Second}
	if ttl > 0 {
		p.Max = min(p.Max, ttl/2)
	}
	return p
}
