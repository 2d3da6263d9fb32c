package regwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
)

// Status is what a Watcher is doing, as a reader reports it (the plugin's
// coredns_rollcall_watch_state).
type Status string

const (
	// Listing: reading the prefix (the first time, or again after a
	// compaction).
	Listing Status = "listing"
	// Watching: the state is etcd's as of the last word from etcd.
	Watching Status = "watching"
	// Behind: the watch is applying a backlog. etcd sends a watch that fell
	// behind its missed events in parts, each headed with etcd's current
	// revision, so the state is older than etcd says it is.
	Behind Status = "behind"
	// Unreachable: etcd has not answered for longer than the stale limit
	// (or a list or a resume failed); the reader keeps its last state.
	Unreachable Status = "unreachable"
)

// Statuses lists every Status, for metrics with one series per status.
var Statuses = []Status{Listing, Watching, Behind, Unreachable}

var (
	// ErrCompacted: etcd no longer has the revision a list or a watch
	// needed; the Watcher lists again.
	ErrCompacted = errors.New("revision compacted")
	// ErrRewound: etcd's history is not the one the state was read from
	// (its revision went backwards, or its cluster ID changed: restored from
	// a snapshot or replaced). Resuming a watch would wait for revisions
	// that mean something else; the Watcher lists again.
	ErrRewound = errors.New("etcd history rewound")
	// ErrStuck: the watch stayed short of a revision etcd reported for
	// longer than StaleAfter, as on a member whose raft hung with its
	// connections open; the Watcher resumes it elsewhere.
	ErrStuck = errors.New("watch stuck")
	// ErrSilent: nothing from etcd for longer than StaleAfter. It is the
	// why of an Unreachable status that no failed request caused: etcd
	// down while the client quietly reconnects the watch, or a callback
	// that kept Run busy.
	ErrSilent = errors.New("no word from etcd")
)

// Defaults of Config's zero fields.
const (
	DefaultProgressEvery  = 2 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultRelistJitter   = time.Second
)

// DefaultRetry paces retries of a failed list or resume, and the resume of a
// lost watch: from [100ms, 200ms], doubling to [100ms, 5s].
var DefaultRetry = backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 5 * time.Second}

// Config says what a Watcher reads and how it paces itself. Zero fields take
// the defaults.
type Config struct {
	// Prefix is the key prefix listed and watched. Required.
	Prefix string
	// PageSize is how many keys one request of a list reads
	// (DefaultPageSize).
	PageSize int64
	// ProgressEvery is how often the watch confirms it is current: a read
	// of etcd's revision and, when etcd is ahead, a progress request
	// (DefaultProgressEvery).
	ProgressEvery time.Duration
	// StaleAfter is how long without word from etcd before the status is
	// Unreachable, and how long a watch may stay short of a revision etcd
	// reported before it counts as stuck and is resumed (3×ProgressEvery).
	StaleAfter time.Duration
	// RequestTimeout bounds one request: a page of a list, the read before
	// a resume (DefaultRequestTimeout). An unreachable etcd shows after it.
	RequestTimeout time.Duration
	// Retry paces retries of a failed list or resume, and the resume of a
	// lost watch (DefaultRetry). The growth restarts after a watch that
	// lived ten times Retry.Max.
	Retry backoff.Policy
	// RelistJitter bounds the random delay before a re-list (after a
	// compaction, or a rewound history): readers that find the same
	// compaction at the same moment list at different moments within it,
	// instead of all at once (DefaultRelistJitter; negative: no delay).
	RelistJitter time.Duration
}

func (c Config) withDefaults() Config {
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 3 * c.ProgressEvery
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Retry == (backoff.Policy{}) {
		c.Retry = DefaultRetry
	}
	switch {
	case c.RelistJitter == 0:
		c.RelistJitter = DefaultRelistJitter
	case c.RelistJitter < 0:
		c.RelistJitter = 0
	}
	return c
}

// Callbacks is how a Watcher hands what it reads to its reader. Nil fields
// are skipped. OnList, OnEvents, OnProgress, OnWatch and OnRelist are called
// from Run's goroutine, one at a time, in the order of etcd's revisions;
// OnStatus and OnAge may also come from the goroutine that watches for
// silence, but never two at once. A callback must not call Run.
type Callbacks struct {
	// OnList replaces the reader's state whole with kvs, every key under
	// the prefix as of revision rev, in key order.
	OnList func(kvs []*mvccpb.KeyValue, rev int64)
	// OnEvents applies one watch response's events, in order. rev is the
	// newest ModRevision among them: once they are applied the state is
	// etcd's as of rev (etcd never splits one revision across responses).
	// It is not the response header's revision, which on a watch catching
	// up is etcd's newest, beyond events still on their way.
	OnEvents func(evs []*clientv3.Event, rev int64)
	// OnProgress says that every change up to rev has been delivered (a
	// progress notification): the state is etcd's as of rev, though no
	// event moved it there (writes outside the prefix). rev is always
	// above the revision of the last OnList, OnEvents or OnProgress.
	OnProgress func(rev int64)
	// OnStatus reports a change of status, with what caused it (nil when
	// there is nothing to tell).
	OnStatus func(s Status, why error)
	// OnAge reports how long since etcd last confirmed the state current:
	// 0 at each confirmation, and the time since every ProgressEvery.
	OnAge func(age time.Duration)
	// OnWatch reports a watch opened from revision from: after a list
	// (lost nil), or resuming one that ended (lost says why) from the
	// revision after the last one delivered, without listing again.
	OnWatch func(from int64, lost error)
	// OnRelist reports that the state is listed again after delay, and why
	// (wrapping ErrCompacted or ErrRewound).
	OnRelist func(why error, delay time.Duration)
}

// Watcher lists a prefix at one revision, then follows a watch from the next
// revision, for as long as Run runs. See the package comment for the rules.
type Watcher struct {
	cli *clientv3.Client
	cfg Config
	cb  Callbacks

	started atomic.Bool
	// avoid is the member a watch was stuck on, for the next watch to give
	// up if it lands there again; Run's goroutine only.
	avoid uint64

	notify sync.Mutex // serialises OnStatus and OnAge; taken before mu

	mu        sync.Mutex // guards the fields below
	status    Status
	lastSeen  time.Time
	applied   int64  // the revision of the state handed to the reader
	clusterID uint64 // of the etcd cluster the state was listed from
}

// New returns a Watcher of cfg.Prefix on cli. It reads nothing until Run.
func New(cli *clientv3.Client, cfg Config, cb Callbacks) (*Watcher, error) {
	if cfg.Prefix == "" {
		return nil, errors.New("regwatch: empty prefix")
	}
	// Until the first list, the state's age is the Watcher's.
	return &Watcher{cli: cli, cfg: cfg.withDefaults(), cb: cb, lastSeen: time.Now()}, nil
}

// Config returns the configuration in use, defaults filled in.
func (w *Watcher) Config() Config { return w.cfg }

// Status returns the current status ("" before Run starts).
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Age returns how long since etcd last confirmed the state current.
func (w *Watcher) Age() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Since(w.lastSeen)
}

// Revision returns the revision of the state handed to the reader: the
// list's, then the last event's or progress notification's (0 before the
// first list).
func (w *Watcher) Revision() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

// Run lists and watches until ctx ends, and returns ctx's error. It retries
// everything else: an unreachable etcd, a lost or stuck watch, a compaction.
// It may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("regwatch: Run called twice")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.monitor(ctx)
	}()

	l := &runLoop{w: w, retry: backoff.New(w.cfg.Retry), relist: w.relistDelays()}
	for {
		open := l.fromList
		if l.listed {
			open = l.fromResume
		}
		from, reported, err := open(ctx)
		if err == nil {
			err = l.follow(ctx, from, reported)
		}
		if err != nil && !errors.Is(err, errAgain) {
			return err // ctx's
		}
	}
}

// relistDelays draws the random delays before re-lists, each from
// [0, RelistJitter] without growth: a re-list is not a failure to back off
// from, only a moment to spread.
func (w *Watcher) relistDelays() *backoff.Backoff {
	return backoff.New(backoff.Policy{Max: w.cfg.RelistJitter})
}

// runLoop is what Run carries from one watch to the next.
type runLoop struct {
	w      *Watcher
	retry  *backoff.Backoff // paces retries of a failed list or resume, and resumes
	relist *backoff.Backoff // draws the random delay before a re-list
	listed bool             // false: the next watch needs a list first
	lost   error            // why the last watch ended, when the next resumes it
}

// errAgain says that a step of Run waited its delay after a failure or a
// lost watch: Run starts over, with a list or a resume. A step fails
// otherwise only with ctx's error, when ctx ends.
var errAgain = errors.New("regwatch: start over")

// fromList lists the prefix and returns where the watch that follows
// starts, and the revision etcd reported. It fails with errAgain once it
// has waited to retry, or with ctx's error when ctx ends.
func (l *runLoop) fromList(ctx context.Context) (from, reported int64, err error) {
	w := l.w
	// While etcd is unreachable a retry is not news: the status stays
	// unreachable until a list succeeds.
	if w.Status() != Unreachable {
		w.setStatus(Listing, nil)
	}
	rev, err := w.list(ctx)
	switch {
	case ctx.Err() != nil:
		return 0, 0, ctx.Err()
	case errors.Is(err, ErrCompacted):
		// etcd answers, but compacted the first page's revision before
		// the last page: list again, spread like any re-list.
		return 0, 0, l.relistAfter(ctx, err)
	case err != nil:
		w.setStatus(Unreachable, err)
		return 0, 0, l.retryAfter(ctx)
	}
	l.listed, l.lost = true, nil
	return rev + 1, rev, nil
}

// fromResume returns where the watch that resumes the lost one starts: the
// revision after the last one delivered, unless etcd's history went back
// past it (then the revisions to come are not the ones missed, and the next
// step lists again). It fails with errAgain once it has waited to retry, or
// with ctx's error when ctx ends.
func (l *runLoop) fromResume(ctx context.Context) (from, reported int64, err error) {
	w := l.w
	now, err := w.resumable(ctx)
	switch {
	case ctx.Err() != nil:
		return 0, 0, ctx.Err()
	case errors.Is(err, ErrRewound):
		l.listed = false
		return 0, 0, l.relistAfter(ctx, err)
	case err != nil:
		w.setStatus(Unreachable, fmt.Errorf("resume the watch lost to %v: %w", l.lost, err))
		return 0, 0, l.retryAfter(ctx)
	}
	from, reported = w.Revision()+1, now
	if now <= from-1 {
		w.seen()
		w.setStatus(Watching, nil)
	}
	return from, reported, nil
}

// follow watches from revision from until the watch ends, then waits before
// the next step: a re-list's random delay when etcd no longer has the
// revisions the watch needs, else the retry back-off. It returns errAgain,
// or ctx's error when ctx ends.
func (l *runLoop) follow(ctx context.Context, from, reported int64) error {
	started := time.Now()
	err := l.w.watch(ctx, from, reported, l.lost)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if time.Since(started) > 10*l.retry.Policy().Max {
		l.retry.Reset()
	}
	if errors.Is(err, ErrCompacted) || errors.Is(err, ErrRewound) {
		l.listed = false
		return l.relistAfter(ctx, err)
	}
	// Anything else (lost leader, closed stream, stuck member) waits first,
	// longer each time a watch dies young, so that a flapping member cannot
	// make the Watcher reopen watches in a tight loop.
	l.lost = err
	return l.retryAfter(ctx)
}

// relistAfter reports a coming re-list, waits its random delay and returns
// errAgain, or ctx's error when ctx ends meanwhile.
func (l *runLoop) relistAfter(ctx context.Context, why error) error {
	d := l.relist.Next()
	if l.w.cb.OnRelist != nil {
		l.w.cb.OnRelist(why, d)
	}
	if backoff.Sleep(ctx, d) != nil {
		return ctx.Err()
	}
	return errAgain
}

// retryAfter waits the next retry delay and returns errAgain, or ctx's
// error when ctx ends meanwhile.
func (l *runLoop) retryAfter(ctx context.Context) error {
	if l.retry.Wait(ctx) != nil {
		return ctx.Err()
	}
	return errAgain
}

// list reads the prefix at one revision, hands it to the reader and returns
// its revision. A list response's header revision is the revision the data
// was read at, so the state then holds exactly etcd's data as of it (unlike
// a watch response's header).
func (w *Watcher) list(ctx context.Context) (int64, error) {
	kvs, hdr, err := listPages(clientv3.WithRequireLeader(ctx), w.cli, w.cfg.Prefix, w.cfg.PageSize, w.cfg.RequestTimeout)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.applied, w.clusterID = hdr.Revision, hdr.ClusterId
	w.mu.Unlock()
	if w.cb.OnList != nil {
		w.cb.OnList(kvs, hdr.Revision)
	}
	w.seen()
	w.setStatus(Watching, nil)
	return hdr.Revision, nil
}

// resumable reads etcd's revision (through a member with a leader) before a
// lost watch is resumed, failing with ErrRewound when etcd no longer has the
// history the state was read from. Whether etcd compacted the revisions
// missed only the watch can tell.
func (w *Watcher) resumable(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), w.cfg.RequestTimeout)
	defer cancel()
	return w.currentRevision(rctx, w.Revision())
}

// delivered records that the state handed to the reader is etcd's as of rev.
func (w *Watcher) delivered(rev int64) {
	w.mu.Lock()
	w.applied = max(w.applied, rev)
	w.mu.Unlock()
}

// setStatus records the status and reports it when it changed.
func (w *Watcher) setStatus(s Status, why error) {
	w.notify.Lock()
	defer w.notify.Unlock()
	w.mu.Lock()
	old := w.status
	w.status = s
	w.mu.Unlock()
	if old != s && w.cb.OnStatus != nil {
		w.cb.OnStatus(s, why)
	}
}

// seen notes word from etcd that the state is current as of now.
func (w *Watcher) seen() {
	w.notify.Lock()
	defer w.notify.Unlock()
	w.mu.Lock()
	w.lastSeen = time.Now()
	w.mu.Unlock()
	if w.cb.OnAge != nil {
		w.cb.OnAge(0)
	}
}

// monitor reports the age of the state and reports etcd unreachable when it
// has been silent too long. It runs beside the list and watch calls because
// those can block while etcd is down (opening a watch waits for the stream),
// and staleness must show all the same.
func (w *Watcher) monitor(ctx context.Context) {
	tick := time.NewTicker(w.cfg.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			age := w.Age()
			if w.cb.OnAge != nil {
				w.notify.Lock()
				w.cb.OnAge(age)
				w.notify.Unlock()
			}
			if age > w.cfg.StaleAfter {
				w.setStatus(Unreachable, fmt.Errorf("%w for %v", ErrSilent, age.Round(time.Second)))
			}
		}
	}
}
