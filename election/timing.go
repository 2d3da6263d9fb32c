package election

import (
	"fmt"
	"time"

	"github.com/rollcall/rollcall/internal/backoff"
)

// The step-down rule. etcd expires a lease TTL after the last renewal its
// leader processed; that renewal happened no earlier than the moment the
// holder sent the request. So a holder that knows "a renewal I sent at S
// succeeded" knows the lease (and its leader key) lives until at least S+TTL,
// measured by etcd's clock. The holder stops acting as master at S+TTL-margin
// by its own clock; the margin absorbs the rate difference between the two
// clocks and the time its work needs to notice a cancelled context. etcd only
// ever lengthens a lease (a new etcd leader restarts every lease at its full
// TTL), so the bound holds across etcd leader changes too.

// minMargin is the smallest default margin: below it, timer and scheduling
// jitter on a loaded host are a real share of the margin.
const minMargin = 500 * time.Millisecond

// retryInterval is how soon, at the latest, a failed renewal is tried again.
func retryInterval(ttl time.Duration) time.Duration {
	return max(ttl/10, 100*time.Millisecond)
}

// renewRetry is the pace of retries of a failed renewal: a delay drawn from
// the second half of retryInterval, so that the holders of many services
// whose renewals failed together (an etcd outage) do not retry in step. It
// does not grow: the step-down instant, not the retries, ends a run of
// failures, and every try before it is a chance to stay master.
func renewRetry(ttl time.Duration) backoff.Policy {
	r := retryInterval(ttl)
	return backoff.Policy{Min: r / 2, Max: r}
}

// DefaultMargin returns the step-down margin for a lease TTL: a fifth of the
// TTL, at least 500ms, at most half the TTL. With a 10s TTL the holder steps
// down 8s after the last renewal it sent that succeeded.
func DefaultMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/5, minMargin), ttl/2)
}

// checkMargin says whether margin leaves the holder any time as master: it
// must be positive and shorter than the TTL.
func checkMargin(ttl, margin time.Duration) error {
	if margin <= 0 || margin >= ttl {
		return fmt.Errorf("%w: step-down margin %v must be more than 0 and less than the lease TTL %v", ErrBadOption, margin, ttl)
	}
	return nil
}

// masterUntil returns the instant after which a holder must no longer act as
// master, given that a lease renewal sent at sent succeeded and etcd reported
// the lease's TTL as ttl.
func masterUntil(sent time.Time, ttl, margin time.Duration) time.Time {
	return sent.Add(ttl - margin)
}

// nextRenewal returns when the holder renews next: a third of the TTL after
// the last successful renewal was sent (as etcd's own keepalive does), or, once
// an attempt failed at failedAt, retry after that failure (drawn from
// renewRetry); never later than the step-down instant until, so a holder that
// cannot reach etcd checks the clock again exactly when it must step down.
func nextRenewal(sent time.Time, ttl time.Duration, failedAt time.Time, retry time.Duration, until time.Time) time.Time {
	next := sent.Add(ttl / 3)
	if !failedAt.IsZero() {
		next = failedAt.Add(retry)
	}
	if next.After(until) {
		return until
	}
	return next
}
