package servicereg

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchOwn watches the host's own subtree for deletions it did not ask for
// (an operator's delete, a revoked lease, a compaction of nothing) and wakes
// the main loop, so the next reconcile repairs them at once instead of at the
// next periodic check. Its own writes (puts) are filtered out; its own stray
// deletions cause one extra, empty reconcile.
func (a *Agent) watchOwn(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.Lock()
		dir := a.cfg.Keys().HostDir(a.cfg.Host)
		a.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := a.cli.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithFilterPut())
		ended := a.followOwn(ctx, wch)
		cancel()
		if ended {
			// The watch broke (etcd down, no leader): a reconcile after it
			// comes back catches whatever happened meanwhile.
			a.pokeLoop()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

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
