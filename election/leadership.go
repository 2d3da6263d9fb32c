package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rollcall/rollcall/internal/backoff"
)

// Leadership is one term as master of a service, from Campaign until it is
// lost or resigned.
//
// Lifecycle: while it holds, Context is live, Done is open and Err is nil. It
// ends exactly once, by loss or by Resign; then Context is cancelled (its
// context.Cause is Err), Done closes and Err says why. After loss the holder
// must stop acting as master at once; it is never master again through this
// Leadership (campaign anew for a new, larger term). Resign must be called in
// every case, after loss too: it removes the key and ends the session.
type Leadership struct {
	c      *Candidate
	cli    *clientv3.Client
	sess   *concurrency.Session
	own    bool // the lease is ours to revoke
	lease  clientv3.LeaseID
	key    string
	term   int64
	margin time.Duration

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	err      error
	released bool // key deleted and session let go
	// For tests of the bound: the last confirmed renewal and when it ended.
	sent    time.Time
	ttl     time.Duration
	endedAt time.Time
}

// Service returns the service this is the leadership of.
func (l *Leadership) Service() string { return l.c.service }

// Host returns the host name the leader key holds.
func (l *Leadership) Host() string { return l.c.host }

// Term returns the leader key's create revision: the fencing token of this
// leadership. A later leadership of any candidate has a larger term.
func (l *Leadership) Term() int64 { return l.term }

// Key returns the leader key.
func (l *Leadership) Key() string { return l.key }

// Lease returns the lease the leader key lives on.
func (l *Leadership) Lease() clientv3.LeaseID { return l.lease }

// Context returns a context that is cancelled when the leadership ends; run
// the master's work under it.
func (l *Leadership) Context() context.Context { return l.ctx }

// Done returns a channel that closes when the leadership ends.
func (l *Leadership) Done() <-chan struct{} { return l.ctx.Done() }

// Err returns nil while the leadership holds, then ErrResigned, or ErrLost
// wrapping the reason (ErrKeyDeleted, ErrLeaseGone, ErrUnconfirmed).
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Guard returns the comparison that fences a master's own etcd writes: put it
// in the If of a Txn and the write only happens while this term holds.
func (l *Leadership) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.term)
}

// Resign ends the leadership (if it still holds) and removes the leader key,
// so another candidate is elected at once, without waiting for a TTL. The
// Context is cancelled before the key is deleted, so this holder has stopped
// believing it is master before anyone else can be elected. A lease of the
// candidate's own is revoked; the caller's lease is left alone.
//
// If etcd cannot be reached, Resign returns an error and may be called again.
// A key left on the caller's lease holds the election until that lease ends
// or this candidate campaigns again (which deletes it first).
func (l *Leadership) Resign(ctx context.Context) error {
	if l.end(ErrResigned) {
		l.c.log.Info("resigned master", "term", l.term)
	}
	l.wg.Wait()
	if err := l.release(ctx); err != nil {
		return fmt.Errorf("resign master of %s (term %d): %w", l.c.service, l.term, err)
	}
	return nil
}

// end records why the leadership ended and cancels its context; only the
// first call counts. It reports whether this call ended it.
func (l *Leadership) end(why error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return false
	}
	l.err = why
	l.endedAt = time.Now()
	l.cancel(why)
	return true
}

// lose ends the leadership by loss, logging once.
func (l *Leadership) lose(why error) {
	if l.end(fmt.Errorf("%w: %w", ErrLost, why)) {
		l.c.log.Warn("lost master", "term", l.term, "reason", why)
	}
}

// confirm renews the lease once and checks that the key is still the first of
// the election, returning the lease's TTL.
func (l *Leadership) confirm(ctx context.Context) (time.Duration, error) {
	ka, err := l.cli.KeepAliveOnce(ctx, l.lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return 0, ErrLeaseGone
	}
	if err != nil {
		return 0, fmt.Errorf("renew lease %x: %w", int64(l.lease), err)
	}
	r, err := l.cli.Get(ctx, l.c.keys.Election(l.c.service)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return 0, fmt.Errorf("read leader: %w", err)
	}
	if len(r.Kvs) == 0 || string(r.Kvs[0].Key) != l.key || r.Kvs[0].CreateRevision != l.term {
		return 0, ErrKeyDeleted
	}
	return time.Duration(ka.TTL) * time.Second, nil
}

// start runs the goroutines that end the leadership on loss. They stop when
// it ends.
func (l *Leadership) start(sent time.Time, ttl time.Duration) {
	l.sent, l.ttl = sent, ttl
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.wg.Add(3)
	go func() {
		defer l.wg.Done()
		l.keepConfirmed(sent, ttl)
	}()
	go func() {
		defer l.wg.Done()
		l.watchKey()
	}()
	go func() {
		defer l.wg.Done()
		select {
		case <-l.sess.Done():
			// The client's keepalive of the lease gave up: it expired, was
			// revoked, or the client closed.
			l.lose(ErrLeaseGone)
		case <-l.ctx.Done():
		}
	}()
}

// keepConfirmed renews the lease on its own schedule and records the send
// time of each success: the step-down clock (timing.go). It ends the
// leadership when the lease is gone or the step-down instant passes.
func (l *Leadership) keepConfirmed(sent time.Time, ttl time.Duration) {
	var (
		failedAt time.Time
		retry    time.Duration // after failedAt
	)
	for {
		until := masterUntil(sent, ttl, l.margin)
		t := time.NewTimer(time.Until(nextRenewal(sent, ttl, failedAt, retry, until)))
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(until) {
			l.lose(fmt.Errorf("%w (last renewal sent %v ago, TTL %v, margin %v)", ErrUnconfirmed, time.Since(sent).Round(time.Millisecond), ttl, l.margin))
			return
		}
		// A renewal that has not succeeded by the step-down instant is of no
		// use, so it may take that long and no longer.
		rctx, cancel := context.WithDeadline(l.ctx, until)
		s := time.Now()
		ka, err := l.cli.KeepAliveOnce(rctx, l.lease)
		cancel()
		switch {
		case err == nil:
			if !failedAt.IsZero() {
				l.c.log.Info("lease renewals succeed again", "term", l.term)
			}
			sent, ttl, failedAt = s, time.Duration(ka.TTL)*time.Second, time.Time{}
			l.mu.Lock()
			l.sent, l.ttl = sent, ttl
			l.mu.Unlock()
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			l.lose(ErrLeaseGone)
			return
		case l.ctx.Err() != nil:
			return
		default:
			if failedAt.IsZero() {
				l.c.log.Warn("lease renewal failed; stepping down unless one succeeds in time", "term", l.term, "step_down_at", until.Format(time.RFC3339Nano), "err", err)
			}
			failedAt = time.Now()
			retry = backoff.New(renewRetry(ttl)).Next()
		}
	}
}

// watchRetry paces reads of the key while etcd cannot answer; the step-down
// clock, not this loop, bounds how long that may last. The cap is short: a
// key deleted during the outage should end the leadership soon after etcd
// answers again.
var watchRetry = backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: time.Second}

// watchKey ends the leadership when the leader key is deleted (resigned by
// someone else, deleted by an operator, or gone with its lease).
func (l *Leadership) watchKey() {
	rev := l.term + 1
	retry := backoff.New(watchRetry)
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(l.ctx))
		for wr := range l.cli.Watch(wctx, l.key, clientv3.WithRev(rev)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					cancel()
					l.lose(ErrKeyDeleted)
					return
				}
			}
		}
		cancel()
		// The watch ended (compaction, lost etcd leader, closed client): read
		// the key once to learn what was missed, then watch again from the
		// revision after that read.
		for {
			if l.ctx.Err() != nil {
				return
			}
			r, err := l.cli.Get(l.ctx, l.key)
			if err == nil {
				if len(r.Kvs) == 0 || r.Kvs[0].CreateRevision != l.term {
					l.lose(ErrKeyDeleted)
					return
				}
				rev = r.Header.Revision + 1
				retry.Reset()
				break
			}
			if retry.Wait(l.ctx) != nil {
				return
			}
		}
	}
}

// release deletes the key (only if it is still this term's) and lets go of
// the session; once it succeeded it does nothing.
func (l *Leadership) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	_, err := l.cli.Txn(ctx).If(l.Guard()).Then(clientv3.OpDelete(l.key)).Commit()
	if err != nil && !l.own {
		return fmt.Errorf("delete %s: %w", l.key, err)
	}
	l.sess.Orphan()
	l.released = true
	if l.own {
		// Revoking the lease deletes the key too; if etcd cannot be reached the
		// lease, no longer renewed, expires within its TTL.
		if _, rerr := l.cli.Revoke(ctx, l.lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("revoke lease %x (it expires by itself): %w", int64(l.lease), errors.Join(err, rerr))
		}
	}
	return nil
}

// abandon undoes a campaign that did not lead to a Leadership: it deletes the
// key, whatever its revision (it is ours: it lives on our lease), and lets go
// of the session. Best effort, bounded by the margin.
func (l *Leadership) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), max(l.margin, time.Second))
	defer cancel()
	l.cli.Delete(ctx, l.key)
	l.sess.Orphan()
	if l.own {
		l.cli.Revoke(ctx, l.lease)
	}
}
