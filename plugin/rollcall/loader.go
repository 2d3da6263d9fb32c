package rollcall

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/registry"
)

// Loader timing. Variables, not constants, so tests can shorten them.
var (
	// progressEvery is how often the loader confirms its watch is alive and
	// caught up even when nothing changes (regwatch.Config.ProgressEvery).
	progressEvery = 2 * time.Second
	// staleAfter is how long without any word from etcd before the loader
	// reports etcd unreachable (it keeps serving meanwhile), and how long a
	// watch may lag the same revision before it counts as stuck.
	staleAfter = 3 * progressEvery
	// listTimeout bounds one request of a list (a page) and the read before
	// a lost watch is resumed, including waiting for a connection: an
	// unreachable etcd is reported (and retried) after it.
	listTimeout = 10 * time.Second
	// retryMin and retryMax bound the jittered back-off between failed
	// lists and before resuming a lost watch.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// relistJitter bounds the random delay before a list after a
	// compaction: every DNS server whose watch fell behind the same
	// compaction learns of it at the same moment, and would otherwise list
	// the whole registry from etcd all at once. A block's `relist_jitter`
	// replaces it (config.relistDelay).
	relistJitter = regwatch.DefaultRelistJitter
)

// Loader states, the `state` label of coredns_rollcall_watch_state: the
// regwatch statuses (stateBehind: the watch is applying a backlog, the
// state served is older than etcd says it is).
const (
	stateListing     = string(regwatch.Listing)
	stateWatching    = string(regwatch.Watching)
	stateBehind      = string(regwatch.Behind)
	stateUnreachable = string(regwatch.Unreachable)
)

var allStates = []string{stateListing, stateWatching, stateBehind, stateUnreachable}

// subscriber is a server block's index: told of every change by its loader.
type subscriber interface {
	replace(st *state)
	update(st *state, ch changes)
}

// loader owns one etcd client and one regwatch.Watcher on one prefix, and
// the state read from it. Server blocks with the same etcd and prefix share it
// (see acquire). The Watcher lists the prefix, follows a watch from the
// revision after the list, resumes a lost watch and lists again after a
// compaction; the loader decodes what it hands over into the state, replaces
// or updates every subscriber's index, and keeps the metrics.
type loader struct {
	key     loaderKey
	source  string // metric label
	keys    registry.Keys
	cli     *clientv3.Client
	watcher *regwatch.Watcher
	refs    int // guarded by loaders.mu

	cancel context.CancelFunc
	done   chan struct{}
	loaded chan struct{} // closed once the first list is applied

	logged map[string]int64 // bad key -> mod revision logged; Watcher's goroutine only

	// lastStatus is the status last reported; only setStatus touches it,
	// and the Watcher never reports two at once.
	lastStatus string

	mu      sync.Mutex // guards everything below
	st      *state
	subs    []subscriber
	masters map[string]bool
	// Maintenance expiry (expire): a timer for the next end of a
	// maintenance record, since an end comes with no etcd event.
	expiry      *time.Timer
	expiredUpTo int64 // the Unix second up to which ended maintenance is applied
	stopped     bool  // released: the timer must not rebuild anything
}

// loaderKey identifies what a watch reads: blocks with equal keys share one.
type loaderKey struct {
	endpoints string
	prefix    string
	cert, key string
	ca        string
	// relistJitter is part of how the watch runs, so blocks that ask for
	// different ones get a watch each; a reload that changes it starts a
	// new watch (the old one stops with the old blocks).
	relistJitter time.Duration
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
	l := newLoader(keys, cli, c.endpoints, cancel)
	l.key = k
	if err := l.start(ctx, c.relistDelay(), nil); err != nil {
		cancel()
		cli.Close()
		return nil, fmt.Errorf("rollcall: %w", err)
	}
	loaders.m[k] = l
	return l, nil
}

// newLoader builds a loader of the keys under keys, read through cli, not
// yet started: acquire makes one per etcd and prefix for the server blocks
// to share, NewReader one of its own.
func newLoader(keys registry.Keys, cli *clientv3.Client, endpoints []string, cancel context.CancelFunc) *loader {
	return &loader{
		source:  keys.Prefix() + "@" + strings.Join(endpoints, ","),
		keys:    keys,
		cli:     cli,
		refs:    1,
		cancel:  cancel,
		done:    make(chan struct{}),
		loaded:  make(chan struct{}),
		st:      newState(keys),
		masters: map[string]bool{},
		logged:  map[string]int64{},
	}
}

// start makes the loader's list-then-watch and runs it until ctx ends:
// re-lists wait a random delay of up to jitter, and onStatus, when set,
// hears every change of the watch's status after the loader does. Timing
// is read from the package variables now, so a test that shortens them
// affects the loaders it starts.
func (l *loader) start(ctx context.Context, jitter time.Duration, onStatus func(regwatch.Status, error)) error {
	status := l.setStatus
	if onStatus != nil {
		status = func(s regwatch.Status, why error) {
			l.setStatus(s, why)
			onStatus(s, why)
		}
	}
	w, err := regwatch.New(l.cli, regwatch.Config{
		Prefix:         l.keys.All(),
		ProgressEvery:  progressEvery,
		StaleAfter:     staleAfter,
		RequestTimeout: listTimeout,
		Retry:          backoff.Policy{Min: retryMin, Base: 2 * retryMin, Max: retryMax},
		RelistJitter:   jitter,
	}, regwatch.Callbacks{
		OnList:     l.list,
		OnEvents:   l.apply,
		OnProgress: l.advance,
		OnStatus:   status,
		OnAge:      func(age time.Duration) { stateAge.WithLabelValues(l.source).Set(age.Seconds()) },
		OnWatch:    l.watching,
		OnRelist:   l.relisting,
	})
	if err != nil {
		return err
	}
	l.watcher = w
	go l.run(ctx)
	return nil
}

// relistDelay is the block's bound on the random delay before a re-list, as
// regwatch.Config.RelistJitter takes it: `relist_jitter` when given (0, no
// delay, is negative there), else the package default.
func (c *config) relistDelay() time.Duration {
	switch {
	case c.relistJitter == relistJitterUnset:
		return relistJitter
	case c.relistJitter == 0:
		return -1
	}
	return c.relistJitter
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
	l.mu.Lock()
	l.stopped = true
	if l.expiry != nil {
		l.expiry.Stop()
	}
	l.mu.Unlock()
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
		l.st.now = time.Now()
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

// setStatus reports the Watcher's status in the metrics and logs it: only
// changes come here.
func (l *loader) setStatus(st regwatch.Status, why error) {
	s := string(st)
	for _, x := range allStates {
		v := 0.0
		if x == s {
			v = 1
		}
		watchState.WithLabelValues(l.source, x).Set(v)
	}
	old := l.lastStatus
	l.lastStatus = s
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

func (l *loader) getStatus() string { return string(l.watcher.Status()) }

// run lists and watches until ctx ends.
func (l *loader) run(ctx context.Context) {
	defer close(l.done)
	_ = l.watcher.Run(ctx) // returns only when ctx ends: release stopped it
}

// watching counts a watch opened, and says why when it resumes a lost one.
func (l *loader) watching(from int64, lost error) {
	watchesOpened.WithLabelValues(l.source).Inc()
	if lost != nil {
		log.Infof("etcd %s: watch ended, resuming from revision %d: %v", l.source, from, lost)
	}
}

// relisting logs a coming list of the whole prefix.
func (l *loader) relisting(why error, delay time.Duration) {
	log.Infof("etcd %s: listing again in %v: %v", l.source, delay.Round(time.Millisecond), why)
}

// list replaces the state and every subscriber's index with a list of the
// prefix, read at one revision: the state holds exactly etcd's data as of
// rev.
func (l *loader) list(kvs []*mvccpb.KeyValue, rev int64) {
	listsTotal.WithLabelValues(l.source).Inc()
	st := newState(l.keys)
	st.rev = rev
	ch := newChanges()
	for _, kv := range kvs {
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
	st.now = time.Now()
	for _, s := range l.subs {
		s.replace(st)
	}
	l.expiredUpTo = st.now.Unix()
	l.armExpiry()
	// Closed under l.mu: a block subscribing now is either filled here
	// or, seeing loaded, by subscribe.
	if !l.isLoaded() {
		close(l.loaded)
	}
	l.mu.Unlock()
	l.publish()
	if len(kvs) >= bigList {
		// The list and the decoding garbage of a large registry are
		// several times the index itself, once: hand them back to the OS
		// now rather than keep them as the process's resident size until
		// the scavenger gets to them.
		debug.FreeOSMemory()
	}
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
// Only the Watcher's goroutine (list and apply) calls it.
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

// apply applies one watch response's events and rebuilds what they touched.
// rev is the newest revision among them, the one served from now on (see
// regwatch.Callbacks.OnEvents): the state then holds exactly etcd's data as
// of it. A delete needs no previous value: the state knows what its key held.
func (l *loader) apply(evs []*clientv3.Event, rev int64) {
	ch := newChanges()
	l.mu.Lock()
	st := l.st
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		if ev.Type == clientv3.EventTypeDelete {
			st.del(key, ch)
			continue
		}
		if err := st.put(key, ev.Kv.Value, ev.Kv.CreateRevision, ch); err != nil {
			l.skipped(key, ev.Kv.ModRevision, err)
		}
	}
	st.rev = max(st.rev, rev)
	for svc := range ch.services {
		l.updateMaster(svc)
	}
	st.now = time.Now()
	for _, s := range l.subs {
		s.update(st, ch)
	}
	l.armExpiry()
	l.mu.Unlock()
	l.publish()
}

// armExpiry sets the timer for the next end of a maintenance record not
// yet applied, or stops it when none is to come. l.mu held.
func (l *loader) armExpiry() {
	if l.stopped {
		return
	}
	until, ok := l.st.nextExpiry(l.expiredUpTo)
	if !ok {
		if l.expiry != nil {
			l.expiry.Stop()
		}
		return
	}
	d := time.Until(time.Unix(until, 0))
	if l.expiry == nil {
		l.expiry = time.AfterFunc(d, l.expire)
		return
	}
	l.expiry.Reset(d)
}

// expire runs when a maintenance record's until has come: the instances it
// held out go back into service with no etcd event to say so, so every
// subscriber rebuilds the services of the records that ended since the
// last run, and the timer is set for the next end.
func (l *loader) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	st := l.st
	st.now = time.Now()
	upTo := st.now.Unix()
	ch := newChanges()
	st.expired(l.expiredUpTo, upTo, ch)
	l.expiredUpTo = upTo
	if len(ch.services) > 0 {
		log.Infof("etcd %s: maintenance ended: rebuilding the answers of %d service(s)", l.source, len(ch.services))
		for _, s := range l.subs {
			s.update(st, ch)
		}
	}
	l.armExpiry()
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
	st.now = time.Now()
	none := newChanges()
	for _, s := range l.subs {
		s.update(st, none)
	}
	l.mu.Unlock()
	l.publish()
}
