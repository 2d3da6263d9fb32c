package servicereg

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// keepAlive renews lease id every ttl/3, each renewal a single request on a
// stream of its own bounded by a timeout, and sends each success on the
// returned channel (dropping it when the reader lags: the reader only needs
// to know the lease lives). It closes the channel when ctx ends, when etcd
// says the lease is gone, or when no renewal has succeeded for the lease's
// whole TTL, so that etcd has expired it or is about to: the main loop then
// grants a new lease and writes everything again.
//
// clientv3's KeepAlive is not used because it sends every renewal on one
// long-lived stream with no timeout. When the member under that stream hangs
// with its connection open (its raft stopped, its port up, as with a stuck
// disk), the renewals vanish there and the lease expires in the healthy rest
// of the cluster, taking the host's names with it while a quorum is up all
// along. Here a renewal that times out is retried soon (renewRetry) on a new
// stream, which the client's round robin puts on the next member.
func (a *Agent) keepAlive(ctx context.Context, id clientv3.LeaseID, ttl time.Duration) <-chan *clientv3.LeaseKeepAliveResponse {
	ch := make(chan *clientv3.LeaseKeepAliveResponse, 1)
	go func() {
		defer close(ch)
		deadline := time.Now().Add(ttl)
		wait := ttl / 3
		retry := backoff.New(renewRetry(ttl))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, renewTimeout(ttl))
			r, err := a.cli.KeepAliveOnce(rctx, id)
			cancel()
			switch {
			case err == nil:
				// etcd counts the TTL from when it renewed, after sent.
				deadline = sent.Add(time.Duration(r.TTL) * time.Second)
				wait = ttl / 3
				retry.Reset()
				select {
				case ch <- r:
				default:
				}
			case errors.Is(err, rpctypes.ErrLeaseNotFound), ctx.Err() != nil:
				return
			default:
				// Never past the deadline: the last retry starts by
				// it at the latest, and the check below ends the
				// loop after that one.
				wait = min(retry.Next(), time.Until(deadline))
			}
			if !time.Now().Before(deadline) {
				return
			}
		}
	}()
	return ch
}

// renewRetry paces the retries of a failed renewal under a lease TTL of ttl.
// They must come soon: the next attempt goes to another member, and the lease
// runs out meanwhile. So the first comes within 200ms (at least 50ms, so that
// a renewal failing at once is not spun on) and the window doubles only up to
// a tenth of the TTL (but at least 200ms): several more tries still fit in
// what is left of the lease. Jitter spreads the agents whose renewals failed
// together (an etcd outage, a leader election), which would otherwise retry
// in step on the recovering cluster. The retries end at the lease's deadline
// (keepAlive) whatever the draw.
func renewRetry(ttl time.Duration) backoff.Policy {
	return backoff.Policy{Min: 50 * time.Millisecond, Base: 200 * time.Millisecond, Max: max(ttl/10, 200*time.Millisecond)}
}

// renewTimeout bounds one renewal: a sixth of the TTL, so that after a
// renewal lost on a hung member there is time for several more, on other
// members, before the lease expires; and at least 500ms, so that a slow but
// healthy etcd is not given up on (a renewal is not a raft write).
func renewTimeout(ttl time.Duration) time.Duration {
	return max(ttl/6, 500*time.Millisecond)
}
