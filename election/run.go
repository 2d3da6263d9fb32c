package election

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// Run is the candidate's whole life on one lease, for an agent that should
// be master whenever it can: it campaigns, calls lead with each Leadership it
// wins, resigns it when lead returns, and campaigns again (with a new key and
// a larger term), until ctx ends or the lease is gone.
//
// lead runs while it is master: it should return once l.Done() closes (the
// leadership was lost) or earlier to resign. Run waits for it, so the next
// term cannot start while work of the last one is still running.
//
// Run returns ctx's error when ctx ends, or an error wrapping ErrLeaseGone
// when the lease expired or was revoked: then the caller grants a new lease
// and calls Run again. Other campaign errors (etcd unreachable) are logged
// once each and retried.
func (c *Candidate) Run(ctx context.Context, lease clientv3.LeaseID, lead func(l *Leadership)) error {
	last := ""
	retry := backoff.New(campaignRetry)
	for {
		l, err := c.Campaign(ctx, lease)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrLeaseGone) && lease != clientv3.NoLease {
				return err
			}
			if c.onError != nil {
				c.onError(err)
			}
			if msg := err.Error(); msg != last {
				c.log.Warn("campaign failed; retrying", "err", err)
				last = msg
			}
			if err := retry.Wait(ctx); err != nil {
				return err
			}
			continue
		}
		last = ""
		retry.Reset()
		lead(l)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.resignTimeout())
		err = l.Resign(rctx)
		cancel()
		if err != nil {
			// The next Campaign deletes the key it failed to remove.
			c.log.Warn("resign failed", "err", err)
		}
		if errors.Is(l.Err(), ErrLeaseGone) && lease != clientv3.NoLease {
			return l.Err()
		}
	}
}

// campaignRetry paces campaigns after a failed one (etcd unreachable, no
// leader): every candidate of every service fails together in an etcd
// outage, and jitter keeps them from campaigning again in step when it ends.
// The cap bounds how long after etcd is back a candidate is in the running
// again: at the cap a retry comes 1.1s after a failure on average, as the
// fixed second it replaces did.
var campaignRetry = backoff.Policy{Min: 250 * time.Millisecond, Base: 500 * time.Millisecond, Max: 2 * time.Second}

// resignTimeout bounds a Resign that Run makes on its own.
func (c *Candidate) resignTimeout() time.Duration { return c.ttl }
