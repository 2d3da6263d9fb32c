package servicereg

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// watchOwn watches the host's own subtree for deletions it did not ask for
// (an operator's delete, a revoked lease, a compaction of nothing) and wakes
// the main loop, so the next reconcile repairs them at once instead of at the
// next periodic check. Its own writes (puts) are filtered out; its own stray
// deletions cause one extra, empty reconcile.
func (a *Agent) watchOwn(ctx context.Context) {
	retry := backoff.New(rewatchRetry)
	for ctx.Err() == nil {
		a.mu.Lock()
		dir := a.cfg.Keys().HostDir(a.cfg.Host)
		a.mu.Unlock()
		started := time.Now()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := a.cli.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithFilterPut())
		ended := a.followOwn(ctx, wch)
		cancel()
		if ended {
			// The watch broke (etcd down, no leader): a reconcile after it
			// comes back catches whatever happened meanwhile.
			a.pokeLoop()
			if time.Since(started) > rewatchRetry.Max {
				// It stood a while: this break starts a new outage.
				retry.Reset()
			}
			_ = retry.Wait(ctx) // a ctx that ended ends the loop
		}
	}
}

// rewatchRetry paces watchOwn's new watches after one broke. A break comes
// from etcd trouble (no leader, a member gone) that every agent's watch meets
// at once: jitter keeps them from watching again in step. The window starts
// at [250ms, 500ms] and doubles to [250ms, 2s]: a new watch then comes 1.1s
// after the last on average, as the fixed second it replaces did, and the
// host's subtree goes unwatched for at most 2s after etcd is back (a
// deletion in that gap waits for the periodic reconcile, as one in the
// fixed second did).
var rewatchRetry = backoff.Policy{Min: 250 * time.Millisecond, Base: 500 * time.Millisecond, Max: 2 * time.Second}

// followOwn reads one watch until it ends (true) or the host's subtree moved
// on reload (false).
func (a *Agent) followOwn(ctx context.Context, wch clientv3.WatchChan) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-a.rewatch:
			return false
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				return true
			}
			if len(resp.Events) > 0 {
				a.pokeLoop()
			}
		}
	}
}
