package election

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// errWatchLost is returned by waitDelete when its watch ends for no reason
// the caller caused; the campaign then looks again.
var errWatchLost = errors.New("watch ended")

// errRecheck is returned by waitDelete after recheckEvery without news.
var errRecheck = errors.New("no news for a while")

// recheckEvery bounds how long a waiting candidate trusts one watch. A watch
// on a member that hung with its connection open (raft stopped, port up)
// stays silent and keeps its leader, so it neither delivers the deletion nor
// ends; the candidate would wait for ever while the key ahead is long gone.
// After this long it reads the election again, through whichever member
// answers, and watches anew.
var recheckEvery = 5 * time.Second

// watchLostRetry paces looking again after the watch on the key ahead ended
// (no etcd leader): every waiting candidate's watch ends at once then.
var watchLostRetry = backoff.Policy{Min: 50 * time.Millisecond, Base: 100 * time.Millisecond, Max: time.Second}

// put writes the candidacy key on the lease, only if it does not exist, and
// returns its create revision: the term it will have if it wins.
//
// This and waitTurn do what concurrency.Election.Campaign does, with the same
// keys and values (etcdctl elect and concurrency observers see the same
// election), but with two differences that matter here: a key that exists is
// never resumed with its old term, and giving up honours the caller's context
// (Campaign cleans up under the client's context, which has no deadline and
// hangs while etcd is unreachable).
func (l *Leadership) put(ctx context.Context) (int64, error) {
	r, err := l.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", 0)).
		Then(clientv3.OpPut(l.key, l.c.host, clientv3.WithLease(l.lease))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("write candidacy %s: %w", l.key, err)
	}
	if !r.Succeeded {
		return 0, fmt.Errorf("%w: candidacy %s appeared again: is another candidate of %s on the same lease?", ErrBadOption, l.key, l.c.service)
	}
	return r.Header.Revision, nil
}

// waitTurn blocks until no key of the election was created before term: then
// the candidate with term is the leader. It waits for the deletion of the
// youngest earlier key, then looks again, so it is woken once per deletion
// ahead of it that matters, not by every change of the election.
func (l *Leadership) waitTurn(ctx context.Context, term int64) error {
	prefix := l.c.keys.Election(l.c.service) + "/"
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(term-1))
	retry := backoff.New(watchLostRetry)
	for {
		gctx, cancel := context.WithTimeout(ctx, recheckEvery)
		r, err := l.cli.Get(gctx, prefix, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("read election: %w", err)
		}
		if len(r.Kvs) == 0 {
			return nil
		}
		err = waitDelete(ctx, l.cli, string(r.Kvs[0].Key), r.Header.Revision+1)
		if errors.Is(err, errRecheck) {
			retry.Reset() // the watch lasted: etcd is fine
			continue
		}
		if errors.Is(err, errWatchLost) {
			// No etcd leader or a closing client: pause, then look again.
			if err := retry.Wait(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

// waitTurnOnLease is waitTurn that also gives up when the lease ends while
// waiting: the candidacy key went with it, so this turn will never come.
func (l *Leadership) waitTurnOnLease(ctx context.Context, term int64) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-l.sess.Done():
			cancel(ErrLeaseGone)
		case <-stop:
		}
	}()
	err := l.waitTurn(wctx, term)
	if err != nil && context.Cause(wctx) == ErrLeaseGone {
		return ErrLeaseGone
	}
	return err
}

// waitDelete blocks until key is deleted at or after rev, the watch ends, or
// recheckEvery passes.
func waitDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), recheckEvery)
	defer cancel()
	for wr := range cli.Watch(wctx, key, clientv3.WithRev(rev)) {
		if wr.Err() != nil {
			break
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if wctx.Err() != nil {
		return errRecheck
	}
	return errWatchLost
}
