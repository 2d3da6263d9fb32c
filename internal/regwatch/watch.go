package regwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watch follows the prefix from revision from until the watch fails or ctx
// ends. reported is the newest revision etcd is known to have (by the list
// or the read before a resume): the state is current once it is delivered.
// lost is why the watch this one resumes ended (nil after a list).
//
// The watch requires a leader, so a member cut off from its cluster ends it
// rather than going silent. It needs no previous values (WithPrevKV): a
// delete names its key, and the reader knows what that key held.
//
// The revision delivered is that of the data handed over, never a response
// header's: etcd sends a watch that fell behind (a paused process, a slow
// link, a resumed stream) its backlog in parts of at most 1,000 revisions,
// and heads each part with its current revision, not the part's last one.
// Only a progress notification promises that nothing up to its header's
// revision is missing, so only one may move the revision delivered past the
// last event.
func (w *Watcher) watch(ctx context.Context, from, reported int64, lost error) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	s := &watchState{w: w, wctx: wctx, from: from, delivered: from - 1, reported: reported,
		etcdRev: make(chan revisionRead, 1)}
	// The freshness reads end with wctx; wait for them so that none
	// outlives the watch.
	defer s.reads.Wait()
	defer cancel()
	wch := w.cli.Watch(wctx, w.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	if w.cb.OnWatch != nil {
		w.cb.OnWatch(from, lost)
	}
	tick := time.NewTicker(w.cfg.ProgressEvery)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			s.onTick()
		case r := <-s.etcdRev:
			err = s.onRevision(r)
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			err = s.onResponse(&resp)
		}
		if err != nil {
			return err
		}
	}
}

// watchState is one watch's account of revisions, kept by watch's loop
// (its methods run on that goroutine only).
type watchState struct {
	w    *Watcher
	wctx context.Context // the watch's: ends with it
	from int64           // the revision the watch started from

	// delivered is the revision up to which the watch has delivered every
	// event (its events and progress notifications say so; the created
	// notification does not: events from `from` on follow it). reported
	// is the newest revision etcd has reported, in the header of any
	// watch response or of a read: the state is current only once
	// delivered has reached it. behind tracks whether the watch keeps up
	// with etcd's revision over time, to tell a stuck watch.
	delivered, reported int64
	behind              lag
	member              uint64 // the member serving the watch, from its responses' headers

	// The freshness read runs beside the loop, one at a time: on a slow
	// link its answer queues behind the watch's backlog on the same
	// connection, and waiting for it in the loop would stop it applying
	// that backlog.
	etcdRev chan revisionRead
	reading bool
	reads   sync.WaitGroup
}

// revisionRead is the answer of a freshness read: etcd's revision, or 0
// and why there is none (no answer in time; ErrRewound: etcd's history is
// not the one the state was read from).
type revisionRead struct {
	rev int64
	err error
}

// onTick starts a freshness read, unless one is under way.
//
// etcd sends no progress notification to a watcher whose start revision is
// still in the future, which is the case for a watch opened at list
// revision + 1 while nothing is written. So ask etcd (with a leader) for its
// revision: when it is no newer than the revision delivered, the state is
// provably current. The same read exposes a stuck watch: a member whose
// raft stopped (hung, crashed with its port open) keeps the stream open and
// even answers progress requests, at its old revision, while the cluster
// moves on; the leader check never fires because the member still believes
// in its old leader.
func (s *watchState) onTick() {
	if s.reading {
		return
	}
	s.reading = true
	base := s.delivered
	s.reads.Add(1)
	go func() {
		defer s.reads.Done()
		rctx, rcancel := context.WithTimeout(s.wctx, s.w.cfg.ProgressEvery)
		defer rcancel()
		rev, err := s.w.currentRevision(rctx, base)
		s.etcdRev <- revisionRead{rev, err}
	}()
}

// onRevision takes the answer of a freshness read: the state is current
// when etcd is no newer than the revision delivered; when etcd is ahead (or
// did not answer) a progress notification is asked for; a watch short of
// the same revision etcd reported for over StaleAfter is given up, as
// stuck.
func (s *watchState) onRevision(r revisionRead) error {
	s.reading = false
	if errors.Is(r.err, ErrRewound) {
		return r.err
	}
	now := r.rev // 0 when etcd did not answer in time
	s.reported = max(s.reported, now)
	if now != 0 && s.reported <= s.delivered {
		s.w.seen()
		s.w.setStatus(Watching, nil)
	}
	if now == 0 || now > s.delivered {
		// Writes outside the prefix, or events still on their way: only
		// a progress notification, which etcd sends on the watch stream
		// after the events up to it, may tell which. It also proves the
		// watch alive while nothing changes.
		s.w.requestProgress(s.wctx)
	}
	if now != 0 && s.behind.stuck(now, s.delivered, time.Now(), s.w.cfg.StaleAfter) {
		s.w.avoid = s.member
		return fmt.Errorf("%w: etcd is at revision %d, the watch delivered only up to %d for over %v (member %x)", ErrStuck, now, s.delivered, s.w.cfg.StaleAfter, s.member)
	}
	return nil
}

// onResponse takes a watch response: it ends the watch on a compaction or
// an error, hands over what it delivers and says whether the state is
// current or behind.
func (s *watchState) onResponse(resp *clientv3.WatchResponse) error {
	if resp.CompactRevision != 0 {
		return fmt.Errorf("%w: watch from revision %d, etcd compacted up to %d", ErrCompacted, s.from, resp.CompactRevision)
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("watch %s: %w", s.w.cfg.Prefix, err)
	}
	s.reported = max(s.reported, resp.Header.Revision)
	if resp.Created {
		if err := s.onCreated(resp.Header.MemberId); err != nil {
			return err
		}
	}
	s.deliver(resp)
	s.reportFreshness(resp)
	return nil
}

// onCreated notes the member that serves the watch, and gives the watch up
// when that is the member the last watch was stuck on.
//
// The client's round robin can put the watch that resumes a stuck one on
// the same member again, and would do so time after time when the requests
// in between come to a multiple of the members. Give that member up at once
// (the next try goes to the next member), and only once: it may be the only
// one left, and well again.
func (s *watchState) onCreated(member uint64) error {
	s.member = member
	if avoid := s.w.avoid; avoid != 0 {
		s.w.avoid = 0
		if member == avoid {
			return fmt.Errorf("watch opened on member %x, stuck a moment ago: trying another", member)
		}
	}
	return nil
}

// deliver hands the reader a response's events, or the revision a progress
// notification vouches for, and moves the revision delivered: to the newest
// event's ModRevision, or to the notification's header revision.
func (s *watchState) deliver(resp *clientv3.WatchResponse) {
	switch {
	case resp.IsProgressNotify():
		if resp.Header.Revision > s.delivered {
			s.delivered = resp.Header.Revision
			s.w.delivered(s.delivered)
			if s.w.cb.OnProgress != nil {
				s.w.cb.OnProgress(s.delivered)
			}
		}
	case len(resp.Events) > 0:
		var last int64
		for _, ev := range resp.Events {
			last = max(last, ev.Kv.ModRevision) // a delete's ModRevision is the delete's
		}
		if s.w.cb.OnEvents != nil {
			s.w.cb.OnEvents(resp.Events, last)
		}
		s.delivered = max(s.delivered, last)
		s.w.delivered(s.delivered)
	}
}

// reportFreshness sets the status after a watch response: Watching once
// every revision etcd reported is delivered, Behind while a backlog
// arrives.
func (s *watchState) reportFreshness(resp *clientv3.WatchResponse) {
	switch {
	case s.delivered >= s.reported:
		s.w.seen()
		s.w.setStatus(Watching, nil)
	case resp.Header.Revision > s.delivered && !resp.Created:
		// A part of a backlog: more follows, or writes outside the prefix
		// that only a progress notification (which etcd sends once the
		// watch has caught up) can cover.
		s.w.setStatus(Behind, fmt.Errorf("etcd is at revision %d, the state at %d", resp.Header.Revision, s.delivered))
		s.w.requestProgress(s.wctx)
	default:
		// Short of a revision etcd reported elsewhere (a stuck member's
		// progress notification, a created notification with writes
		// since the list): no word that the state is current.
	}
}

// requestProgress asks etcd for a progress notification on the watch. The
// request travels on the watch's own stream (same context metadata); etcd
// ignores it while the watch is catching up, and a dead stream just leaves
// the state's age growing, so its error is of no use.
func (w *Watcher) requestProgress(wctx context.Context) {
	pctx, cancel := context.WithTimeout(wctx, w.cfg.ProgressEvery)
	defer cancel()
	_ = w.cli.RequestProgress(pctx)
}

// currentRevision asks etcd for its revision: a count-only read of one key,
// off the query path. base is a revision the reader already holds, which
// etcd had committed before this read began; a linearizable read returns
// every revision committed before it, so an answer below base (or from
// another cluster) means etcd's history is not the one base came from. The
// caller marks the state fresh when the answer is no newer than what was
// delivered, but never moves the revision delivered with it: etcd being
// ahead may mean events still on their way.
func (w *Watcher) currentRevision(ctx context.Context, base int64) (int64, error) {
	resp, err := w.cli.Get(ctx, w.cfg.Prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, fmt.Errorf("read etcd's revision: %w", err)
	}
	w.mu.Lock()
	cluster := w.clusterID
	w.mu.Unlock()
	if id := resp.Header.ClusterId; cluster != 0 && id != 0 && id != cluster {
		return 0, fmt.Errorf("%w: etcd answers as cluster %x, the state was read from cluster %x", ErrRewound, id, cluster)
	}
	if rev := resp.Header.Revision; rev < base {
		return 0, fmt.Errorf("%w: etcd is at revision %d, the state already at %d", ErrRewound, rev, base)
	}
	return resp.Header.Revision, nil
}
