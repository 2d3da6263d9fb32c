package servicereg

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
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
// along. Here a renewal that times out is retried at once on a new stream,
// which the client's round robin puts on the next member.
func (a *Agent) keepAlive(ctx context.Context, id clientv3.LeaseID, ttl time.Duration) <-chan *clientv3.LeaseKeepAliveResponse {
	ch := make(chan *clientv3.LeaseKeepAliveResponse, 1)
	go func() {
		defer close(ch)
		deadline := time.Now().Add(ttl)
		wait := ttl / 3
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
				select {
				case ch <- r:
				default:
				}
			case errors.Is(err, rpctypes.ErrLeaseNotFound), ctx.Err() != nil:
				return
			default:
				wait = renewRetry
			}
			if !time.Now().Before(deadline) {
				return
			}
		}
	}()
	return ch
}

// renewRetry is how soon a failed renewal is tried again: at once, in
// effect, as the next attempt goes to another member.
const renewRetry = 100 * time.Millisecond

// renewTimeout bounds one renewal: a sixth of the TTL, so that after a
// renewal lost on a hung member there is time for several more, on other
// members, before the lease expires; and at least 500ms, so that a slow but
// healthy etcd is not given up on (a renewal is not a raft write).
func renewTimeout(ttl time.Duration) time.Duration {
	return max(ttl/6, 500*time.Millisecond)
}
