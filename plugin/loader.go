package rollcall

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

// Loader timing. Variables, not constants, so tests can shorten them.
var (
	// progressEvery is how often the loader asks etcd for a progress
	// notification on its watch, which proves the watch is alive and caught
	// up even when nothing changes.
	progressEvery = 2 * time.Second
	// staleAfter is how long without any word from etcd before the loader
	// reports etcd unreachable (it keeps serving meanwhile).
	staleAfter = 3 * progressEvery
	// listTimeout bounds one list of the prefix, including waiting for a
	// connection: an unreachable etcd is reported (and retried) after it.
	listTimeout = 10 * time.Second
	// retryMin and retryMax bound the back-off between failed lists.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// Loader states, the `state` label of coredns_rollcall_watch_state.
const (
	stateListing  = "listing"
	stateWatching = "watching"
	// stateBehind: the watch is applying a backlog. etcd sends a watch
	// that fell behind its missed events in parts, each headed with etcd's
	// current revision, so the state served is older than etcd says it is.
	stateBehind      = "behind"
	stateUnreachable = "unreachable"
)

var allStates = []string{stateListing, stateWatching, stateBehind, stateUnreachable}

// errCompacted ends a watch whose next revision etcd has compacted away.
var errCompacted = errors.New("rollcall: watch revision compacted")

// subscriber is a server block's index: told of every change by its loader.
type subscriber interface {
	replace(st *state)
	update(st *state, ch changes)
}

// loader owns one etcd client and one watch on one prefix, and the state
// read from it. Server blocks with the same etcd and prefix share it (see
// acquire). It lists the prefix, then follows a watch from the revision after
// the list; after a compaction or a lost watch it lists again and replaces
// every subscriber's index whole.
type loader struct {
	key    loaderKey
	source string // metric label
	keys   registry.Keys
	cli    *clientv3.Client
	refs   int // guarded by loaders.mu

	// Timing, copied from the package variables when the loader starts.
	progressEvery, staleAfter, retryMin, retryMax time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	loaded chan struct{} // closed once the first list is applied

	logged map[string]int64 // bad key -> mod revision logged; loader goroutine only

	mu       sync.Mutex // guards everything below
	st       *state
	subs     []subscriber
	status   string
	lastSeen time.Time
	masters  map[string]bool
}

// loaderKey identifies what a watch reads: blocks with equal keys share one.
type loaderKey struct {
	endpoints string
	prefix    string
	cert, key string
	ca        string
}

// loaders is the process-wide registry of running loaders, refcounted by the
// server blocks using them.
var loaders = struct {
	sync.Mutex
	m map[loaderKey]*loader
}{m: map[loaderKey]*loader{}}

// acquire returns the running loader for c's etcd and prefix, starting one
// when there is none. Every acquire must be paired with a release.
func acquire(c *config) (*loader, error) {
	k := c.loaderKey()
	loaders.Lock()
	defer loaders.Unlock()
	if l := loaders.m[k]; l != nil {
		l.refs++
		return l, nil
	}
	keys, err := registry.NewKeys(c.prefix)
	if err != nil {
		return nil, err
	}
	cli, err := etcdconn.New(etcdconn.Config{Endpoints: c.endpoints, Cert: c.tlsCert, Key: c.tlsKey, CA: c.tlsCA})
	if err != nil {
		return nil, fmt.Errorf("rollcall: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &loader{
		key:     k,
		source:  keys.Prefix() + "@" + strings.Join(c.endpoints, ","),
		keys:    keys,
		cli:     cli,
		refs:    1,
		cancel:  cancel,
		done:    make(chan struct{}),
		loaded:  make(chan struct{}),
		st:      newState(keys),
		masters: map[string]bool{},
		logged:  map[string]int64{},

		// Until the first list, the state's age is the loader's.
		lastSeen: time.Now(),

		progressEvery: progressEvery,
		staleAfter:    staleAfter,
		retryMin:      retryMin,
		retryMax:      retryMax,
	}
	loaders.m[k] = l
	go l.run(ctx)
	return l, nil
}

// release drops one reference; the last one stops the watch and closes the
// client.
func (l *loader) release() {
	loaders.Lock()
	l.refs--
	last := l.refs == 0
	if last {
		delete(loaders.m, l.key)
	}
	loaders.Unlock()
	if !last {
		return
	}
	l.cancel()
	<-l.done
	l.cli.Close()
	for _, s := range allStates {
		watchState.DeleteLabelValues(l.source, s)
	}
	stateAge.DeleteLabelValues(l.source)
}

// subscribe adds a server block's index; it is filled at once when the
// loader has loaded.
func (l *loader) subscribe(s subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, s)
	if l.isLoaded() {
		s.replace(l.st)
	}
}

func (l *loader) unsubscribe(s subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.subs {
		if x == s {
			l.subs = append(l.subs[:i:i], l.subs[i+1:]...)
			return
		}
	}
}

func (l *loader) isLoaded() bool {
	select {
	case <-l.loaded:
		return true
	default:
		return false
	}
}

// waitLoaded waits for the first list, up to ctx.
func (l *loader) waitLoaded(ctx context.Context) error {
	select {
	case <-l.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setStatus records the loader's state, logging only when it changes.
func (l *loader) setStatus(s string, why error) {
	l.mu.Lock()
	old := l.status
	l.status = s
	l.mu.Unlock()
	if old == s {
		return
	}
	for _, x := range allStates {
		v := 0.0
		if x == s {
			v = 1
		}
		watchState.WithLabelValues(l.source, x).Set(v)
	}
	switch {
	case s == stateUnreachable:
		log.Warningf("etcd %s unreachable, serving the last state read: %v", l.source, why)
	case old == stateUnreachable:
		log.Infof("etcd %s reachable again: %s", l.source, s)
	case s == stateBehind:
		log.Infof("etcd %s: catching up: %v", l.source, why)
	case old == stateBehind && s == stateWatching:
		log.Infof("etcd %s: caught up", l.source)
	case why != nil:
		log.Infof("etcd %s: %s after %v", l.source, s, why)
	default:
		log.Debugf("etcd %s: %s", l.source, s)
	}
}

func (l *loader) getStatus() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// seen notes word from etcd: the served state is current as of now.
func (l *loader) seen() {
	l.mu.Lock()
	l.lastSeen = time.Now()
	l.mu.Unlock()
	stateAge.WithLabelValues(l.source).Set(0)
}

// age returns how long since etcd was last heard from.
func (l *loader) age() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.lastSeen)
}

// run lists and watches until ctx ends.
func (l *loader) run(ctx context.Context) {
	defer close(l.done)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.monitor(ctx)
	}()
	defer wg.Wait()
	retry := l.retryMin
	for ctx.Err() == nil {
		// While etcd is unreachable a retry is not news: the state stays
		// unreachable until a list succeeds.
		if l.getStatus() != stateUnreachable {
			l.setStatus(stateListing, nil)
		}
		rev, err := l.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.setStatus(stateUnreachable, err)
			if !sleep(ctx, retry) {
				return
			}
			retry = min(2*retry, l.retryMax)
			continue
		}
		l.setStatus(stateWatching, nil)
		started := time.Now()
		err = l.watch(ctx, rev+1)
		if ctx.Err() != nil {
			return
		}
		// A compaction needs an immediate re-list. Anything else (lost
		// leader, closed stream) waits first, longer each time a watch dies
		// young, so a flapping member cannot make the loader list the whole
		// prefix in a tight loop.
		log.Infof("etcd %s: watch ended, listing again: %v", l.source, err)
		if time.Since(started) > 10*l.retryMax {
			retry = l.retryMin
		}
		if !errors.Is(err, errCompacted) {
			if !sleep(ctx, retry) {
				return
			}
			retry = min(2*retry, l.retryMax)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// monitor publishes the age of the served state and reports etcd
// unreachable when it has been silent too long. It runs beside the list and
// watch calls because those can block while etcd is down (opening a watch
// waits for the stream), and staleness must show all the same.
func (l *loader) monitor(ctx context.Context) {
	tick := time.NewTicker(l.progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			age := l.age()
			stateAge.WithLabelValues(l.source).Set(age.Seconds())
			if age > l.staleAfter {
				l.setStatus(stateUnreachable, fmt.Errorf("no word from etcd for %v", age.Round(time.Second)))
			}
		}
	}
}

// list reads the whole prefix at one revision and replaces the state and
// every subscriber's index with it. The response's header revision is the
// revision the list was read at, so the state holds exactly etcd's data as of
// it: unlike a watch response's header, it is the revision of the data.
func (l *loader) list(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), listTimeout)
	defer cancel()
	resp, err := l.cli.Get(lctx, l.keys.All(), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", l.keys.All(), err)
	}
	listsTotal.WithLabelValues(l.source).Inc()
	st := newState(l.keys)
	st.rev = resp.Header.Revision
	ch := newChanges()
	for _, kv := range resp.Kvs {
		if err := st.put(string(kv.Key), kv.Value, kv.CreateRevision, ch); err != nil {
			l.skipped(string(kv.Key), kv.ModRevision, err)
		}
	}
	l.mu.Lock()
	l.st = st
	l.masters = map[string]bool{}
	for svc := range st.elections {
		l.updateMaster(svc)
	}
	for _, s := range l.subs {
		s.replace(st)
	}
	// Closed under l.mu: a block subscribing now is either filled here
	// or, seeing loaded, by subscribe.
	if !l.isLoaded() {
		close(l.loaded)
	}
	l.mu.Unlock()
	l.publish()
	l.seen()
	if len(resp.Kvs) >= bigList {
		// The list response and the decoding garbage of a large registry
		// are several times the index itself, once: hand them back to the
		// OS now rather than keep them as the process's resident size
		// until the scavenger gets to them.
		debug.FreeOSMemory()
	}
	return st.rev, nil
}

// bigList is how many keys make a list large enough to return its garbage
// to the OS at once (FreeOSMemory costs a full collection, ~10 ms at 100k
// instances, off the query path).
const bigList = 20000

// updateMaster keeps the count of services with a leader. l.mu held.
func (l *loader) updateMaster(svc string) {
	if _, _, ok := l.st.leader(svc); ok {
		l.masters[svc] = true
	} else {
		delete(l.masters, svc)
	}
}

func (l *loader) publish() {
	l.mu.Lock()
	rev, hosts, insts, masters := l.st.rev, len(l.st.hosts), l.st.ninsts, len(l.masters)
	l.mu.Unlock()
	revision.WithLabelValues(l.source).Set(float64(rev))
	indexSize.WithLabelValues(l.source, "instances").Set(float64(insts))
	indexSize.WithLabelValues(l.source, "hosts").Set(float64(hosts))
	indexSize.WithLabelValues(l.source, "masters").Set(float64(masters))
}

// skipped counts a malformed key or value and logs it once per version: a
// re-list meets the same bad value again and says nothing new about it.
// Only the loader goroutine calls it.
func (l *loader) skipped(key string, modRev int64, err error) {
	reason := reasonRecord
	var de *decodeError
	if errors.As(err, &de) {
		reason = de.reason
	}
	decodeErrors.WithLabelValues(l.source, reason).Inc()
	if l.logged[key] == modRev {
		return
	}
	if len(l.logged) > maxLogged {
		clear(l.logged)
	}
	l.logged[key] = modRev
	log.Warningf("skipping etcd key %q (%s): %v", key, reason, err)
}

// maxLogged bounds the memory of which bad values were logged.
const maxLogged = 10000

// watch follows the prefix from rev until the watch fails or ctx ends. The
// watch requires a leader, so a member cut off from its cluster ends it
// rather than going silent. It needs no previous values (WithPrevKV): a
// delete names its key, and the state knows what that key held.
//
// The revision served is that of the data applied, never a response
// header's: etcd sends a watch that fell behind (a paused process, a slow
// link, a resumed stream) its backlog in parts of at most 1,000 revisions,
// and heads each part with its current revision, not the part's last one.
// Only a progress notification promises that nothing up to its header's
// revision is missing, so only one may advance the served revision past the
// last event applied.
func (l *loader) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := l.cli.Watch(wctx, l.keys.All(), clientv3.WithPrefix(), clientv3.WithRev(rev),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	watchesOpened.WithLabelValues(l.source).Inc()
	tick := time.NewTicker(l.progressEvery)
	defer tick.Stop()
	// delivered is the revision up to which the watch has delivered and the
	// loader applied every event (its events and progress notifications say
	// so; the created notification does not: events from rev on follow it).
	// reported is the newest revision etcd has reported, in the header of
	// any watch response or of the freshness read: the state is current
	// only once delivered has reached it. behind tracks whether the watch
	// keeps up with etcd's revision over time, to tell a stuck watch.
	delivered := rev - 1
	reported := delivered
	var behind lag
	// The freshness read runs beside the loop, one at a time: on a slow
	// link its answer queues behind the watch's backlog on the same
	// connection, and waiting for it here would stop the loop applying
	// that backlog.
	etcdRev := make(chan int64, 1)
	reading := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			// etcd sends no progress notification to a watcher whose start
			// revision is still in the future, which is the case for a
			// watch opened at list revision + 1 while nothing is written.
			// So ask etcd (with a leader) for its revision: when it is no
			// newer than the revision applied, the state is provably
			// current. The same read exposes a stuck watch: a member whose
			// raft stopped (hung, crashed with its port open) keeps the
			// stream open and even answers progress requests, at its old
			// revision, while the cluster moves on; the leader check never
			// fires because the member still believes in its old leader.
			if !reading {
				reading = true
				go func() { etcdRev <- l.currentRevision(wctx) }()
			}
		case now := <-etcdRev:
			reading = false
			reported = max(reported, now)
			if now != 0 && reported <= delivered {
				l.seen()
				l.setStatus(stateWatching, nil)
			}
			if now == 0 || now > delivered {
				// Writes outside the prefix, or events still on their
				// way: only a progress notification, which etcd sends
				// on the watch stream after the events up to it, may
				// tell which. It also proves the watch alive while
				// nothing changes.
				l.requestProgress(wctx)
			}
			if now != 0 && behind.stuck(now, delivered, time.Now(), l.staleAfter) {
				return fmt.Errorf("watch stuck: etcd is at revision %d, the watch delivered only up to %d for over %v", now, delivered, l.staleAfter)
			}
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if resp.CompactRevision != 0 {
				return fmt.Errorf("%w: at %d", errCompacted, resp.CompactRevision)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch %s: %w", l.keys.All(), err)
			}
			reported = max(reported, resp.Header.Revision)
			switch {
			case resp.IsProgressNotify():
				delivered = max(delivered, resp.Header.Revision)
				l.advance(delivered)
			case len(resp.Events) > 0:
				delivered = max(delivered, l.apply(resp))
			}
			switch {
			case delivered >= reported:
				l.seen()
				l.setStatus(stateWatching, nil)
			case resp.Header.Revision > delivered && !resp.Created:
				// A part of a backlog: more follows, or writes outside
				// the prefix that only a progress notification (which
				// etcd sends once the watch has caught up) can cover.
				l.setStatus(stateBehind, fmt.Errorf("etcd is at revision %d, the state served at %d", resp.Header.Revision, delivered))
				l.requestProgress(wctx)
			default:
				// Short of a revision etcd reported elsewhere (a stuck
				// member's progress notification, a created notification
				// with writes since the list): no word that the state is
				// current.
			}
		}
	}
}

// requestProgress asks etcd for a progress notification on the watch. The
// request travels on the watch's own stream (same context metadata); etcd
// ignores it while the watch is catching up, and a dead stream just leaves
// the state age growing, so its error is of no use.
func (l *loader) requestProgress(wctx context.Context) {
	pctx, cancel := context.WithTimeout(wctx, l.progressEvery)
	defer cancel()
	_ = l.cli.RequestProgress(pctx)
}

// currentRevision asks etcd, through a member that has a leader, for its
// revision (0 when etcd did not answer in time): a count-only read of one
// key, off the query path. The watch loop marks the state fresh when this is
// no newer than what it applied; it never advances the revision served,
// since etcd being ahead may mean events still on their way.
func (l *loader) currentRevision(ctx context.Context) int64 {
	cctx, cancel := context.WithTimeout(ctx, l.progressEvery)
	defer cancel()
	resp, err := l.cli.Get(cctx, l.keys.All(), clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0
	}
	return resp.Header.Revision
}

// lag follows whether a watch keeps up with etcd. A watch that is merely
// busy reaches every revision etcd reported a moment later; a stuck one
// stays short of the same revision.
type lag struct {
	target int64     // a revision etcd reported that the watch had not delivered
	since  time.Time // when target was first reported
}

// stuck takes etcd's revision now (read through a member with a leader) and
// the revision the watch has delivered, and says whether the watch has been
// short of the same reported revision for longer than limit.
func (g *lag) stuck(etcdRev, delivered int64, now time.Time, limit time.Duration) bool {
	if delivered >= g.target {
		g.target = 0 // caught up with what etcd reported before
	}
	if etcdRev <= delivered {
		return false
	}
	if g.target == 0 {
		g.target, g.since = etcdRev, now
		return false
	}
	return now.Sub(g.since) > limit
}

// apply applies one watch response, rebuilds what it touched and returns
// the newest revision applied. That revision, not the response header's, is
// the one served: a response may be one part of a backlog, headed with
// etcd's current revision. etcd never splits one revision (one txn) across
// responses, so the state then holds exactly etcd's data as of it. A delete
// event's ModRevision is the delete's revision.
func (l *loader) apply(resp clientv3.WatchResponse) int64 {
	ch := newChanges()
	l.mu.Lock()
	st := l.st
	var last int64
	for _, ev := range resp.Events {
		last = max(last, ev.Kv.ModRevision)
		key := string(ev.Kv.Key)
		if ev.Type == clientv3.EventTypeDelete {
			st.del(key, ch)
			continue
		}
		if err := st.put(key, ev.Kv.Value, ev.Kv.CreateRevision, ch); err != nil {
			l.skipped(key, ev.Kv.ModRevision, err)
		}
	}
	st.rev = max(st.rev, last)
	for svc := range ch.services {
		l.updateMaster(svc)
	}
	for _, s := range l.subs {
		s.update(st, ch)
	}
	l.mu.Unlock()
	l.publish()
	return last
}

// advance moves the revision served up to rev, which a progress notification
// vouched for: every event up to it has been applied, so the state is etcd's
// as of rev (writes outside the prefix move etcd's revision without events).
func (l *loader) advance(rev int64) {
	l.mu.Lock()
	st := l.st
	if rev <= st.rev {
		l.mu.Unlock()
		return
	}
	st.rev = rev
	none := newChanges()
	for _, s := range l.subs {
		s.update(st, none)
	}
	l.mu.Unlock()
	l.publish()
}
