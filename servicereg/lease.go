package servicereg

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// renewal is what keepAlive reports: a renewal etcd answered, or (resp nil)
// that the lease went its whole TTL without one, by the agent's clock.
type renewal struct {
	resp *clientv3.LeaseKeepAliveResponse
}

// lapsed reports that no renewal succeeded for the lease's whole TTL: etcd
// may have expired it, or may still hold it.
func (r renewal) lapsed() bool { return r.resp == nil }

// keepAlive renews lease id every ttl/3, each renewal a single request on a
// stream of its own bounded by a timeout, and reports on the returned
// channel: each success, and a lapse, once, when no renewal has succeeded for
// the lease's whole TTL. The channel holds the latest report only (the reader
// needs the lease's current state, not its history). It is closed when ctx
// ends or when etcd says the lease is gone: the main loop then grants a new
// lease and writes everything again.
//
// A lapse does not end the renewals. The agent's clock is not etcd's: a
// cluster that was down (every member, or its quorum) expired nothing
// meanwhile, and its new leader gives every lease a fresh TTL (plus an
// election timeout) when it takes over. So after an outage longer than the
// TTL the lease is usually alive, with the host's keys on it. Granting a new
// one instead would cost every host a grant and a rewrite of all its keys,
// at once, on a cluster just back, and leave the old lease to expire (one
// more raft write each): the herd that kept a loaded etcd busy past the
// renewals' own retries. The renewals go on, paced by lapsedRetry, until
// etcd answers, and only its "lease not found" ends them; the main loop
// still treats a lapse as a possible loss (the master hooks step down) until
// a renewal comes back.
//
// clientv3's KeepAlive is not used because it sends every renewal on one
// long-lived stream with no timeout. When the member under that stream hangs
// with its connection open (its raft stopped, its port up, as with a stuck
// disk), the renewals vanish there and the lease expires in the healthy rest
// of the cluster, taking the host's names with it while a quorum is up all
// along. Here a renewal that times out is retried soon (renewRetry) on a new
// stream, which the client's round robin puts on the next member.
func (a *Agent) keepAlive(ctx context.Context, id clientv3.LeaseID, ttl time.Duration) <-chan renewal {
	ch := make(chan renewal, 1)
	go func() {
		defer close(ch)
		deadline := time.Now().Add(ttl)
		lapsed := false
		wait, timeout := ttl/3, renewTimeout(ttl)
		retry := backoff.New(renewRetry(ttl))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			r, err := a.cli.KeepAliveOnce(rctx, id)
			cancel()
			switch {
			case err == nil:
				// etcd counts the TTL from when it renewed, after sent.
				deadline = sent.Add(time.Duration(r.TTL) * time.Second)
				lapsed = false
				wait, timeout = ttl/3, renewTimeout(ttl)
				retry = backoff.New(renewRetry(ttl))
				sendLatest(ch, renewal{resp: r})
				continue
			case errors.Is(err, rpctypes.ErrLeaseNotFound), ctx.Err() != nil:
				return
			}
			// Failed: retried soon, on another stream. Past the
			// deadline the lease is in doubt, reported once, and the
			// retries spread wider (lapsedRetry).
			wait = retry.Next()
			if !lapsed && !time.Now().Before(deadline) {
				lapsed = true
				retry = backoff.New(lapsedRetry(ttl))
				wait, timeout = retry.Next(), lapsedTimeout(ttl)
				sendLatest(ch, renewal{})
			}
			if !lapsed {
				// The first retry after the deadline comes by
				// it, to report the lapse on time.
				wait = min(wait, time.Until(deadline))
			}
		}
	}()
	return ch
}

// sendLatest puts r on ch (buffer 1, this goroutine its only sender),
// replacing a report the reader has not taken yet.
func sendLatest(ch chan renewal, r renewal) {
	select {
	case ch <- r:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	ch <- r
}

// renewRetry paces the retries of a failed renewal under a lease TTL of ttl.
// They must come soon: the next attempt goes to another member, and the lease
// runs out meanwhile. So the first comes within 200ms (at least 50ms, so that
// a renewal failing at once is not spun on) and the window doubles only up to
// a tenth of the TTL (but at least 200ms): several more tries still fit in
// what is left of the lease, and after an outage a lease that etcd gave a
// fresh TTL is renewed well inside it. Jitter spreads the agents whose
// renewals failed together (an etcd outage, a leader election), which would
// otherwise retry in step on the recovering cluster.
func renewRetry(ttl time.Duration) backoff.Policy {
	return backoff.Policy{Min: 50 * time.Millisecond, Base: 200 * time.Millisecond, Max: max(ttl/10, 200*time.Millisecond)}
}

// lapsedRetry paces the renewals of a lease past its deadline. Haste no
// longer saves it: either etcd kept it, and gave it a fresh TTL (plus an
// election timeout) when its leader came back, or it is gone. What matters
// then is the cluster: every agent lapses in the same outage, and their
// retries, at most TTL/10 apart, would come back as a herd of several
// renewals per agent per TTL on a cluster just recovering, or keep an
// overloaded one overloaded. So the window grows from renewRetry's widest
// to half the TTL: a lease etcd restored is still renewed well inside its
// fresh TTL (half of it, plus the client's reconnect delay of at most 2.4s),
// and a host whose lease is gone learns of it within half a TTL, the bound
// of the main loop's own retries (retryPolicy).
func lapsedRetry(ttl time.Duration) backoff.Policy {
	p := renewRetry(ttl)
	return backoff.Policy{Min: p.Min, Base: p.Max, Max: max(ttl/2, p.Max)}
}

// lapsedTimeout bounds one renewal of a lease past its deadline: a third
// of the TTL, twice renewTimeout. What the agent waits for then is etcd's
// verdict, and the cluster that kept it waiting is the one all agents are
// coming back to at once: a renewal abandoned after TTL/6 still costs etcd
// its work (the leader renews the lease all the same), and its retry costs
// it again, so that a cluster answering a little slower than the timeout
// would never catch up. A hung member still costs one timeout before the
// next attempt goes to another; with lapsedRetry's widest wait, attempts
// stay less than a TTL apart, so a lease etcd restored is renewed in time.
func lapsedTimeout(ttl time.Duration) time.Duration {
	return max(ttl/3, renewTimeout(ttl))
}

// renewTimeout bounds one renewal: a sixth of the TTL, so that after a
// renewal lost on a hung member there is time for several more, on other
// members, before the lease expires; and at least 500ms, so that a slow but
// healthy etcd is not given up on (a renewal is not a raft write).
func renewTimeout(ttl time.Duration) time.Duration {
	return max(ttl/6, 500*time.Millisecond)
}
