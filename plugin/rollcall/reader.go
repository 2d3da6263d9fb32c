package rollcall

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/registry"
)

// Reader runs the loader alone, without a server block: its own etcd client
// and regwatch.Watcher, the decoded state, and one index (that of a block
// with no networks and no `local`), following etcd exactly as a CoreDNS
// server does. Unlike a server block's loader it is never shared, so many
// Readers in one process are many DNS servers' worth of etcd clients and
// watches: the scale benchmark (bench/, part readers) runs hundreds of them
// against one etcd cluster to measure the load and the lag they see.
type Reader struct {
	l      *loader
	ix     *index
	lists  atomic.Int64
	failed atomic.Int64 // reads of etcd that failed
	closed atomic.Bool
}

// ReaderConfig says what a Reader follows and what it tells its caller.
type ReaderConfig struct {
	Endpoints []string // etcd client URLs; etcdconn's default when empty
	Prefix    string   // the registry prefix; registry.DefaultPrefix when empty
	// RelistJitter bounds the random delay before a list after a
	// compaction (regwatch.Config.RelistJitter): 0 is the plugin's default,
	// negative no delay.
	RelistJitter time.Duration
	// OnApplied is called with the revision served each time it moves or
	// the index is replaced: after the first list, each batch of events,
	// each progress notification and each re-list, once the index holds
	// the change. It runs on the Reader's goroutine, one call at a time:
	// it must be quick, as the next change waits for it.
	OnApplied func(rev int64)
	// OnStatus is called on each change of the watch's status (listing,
	// watching, behind, unreachable) with its cause, nil when there is none
	// to tell.
	OnStatus func(status string, why error)
	// OnReadFailed is called with the error of each read of etcd that
	// failed (see FailedReads) and when the read was sent, from the
	// goroutine that made it.
	OnReadFailed func(err error, sent time.Time)
}

// NewReader starts a Reader: it lists the prefix and then follows it until
// Close. It fails only on a bad configuration; an unreachable etcd is
// retried, as in a server block.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = registry.DefaultPrefix
	}
	keys, err := registry.NewKeys(prefix)
	if err != nil {
		return nil, fmt.Errorf("rollcall reader: %w", err)
	}
	cli, err := etcdconn.New(etcdconn.Config{Endpoints: cfg.Endpoints})
	if err != nil {
		return nil, fmt.Errorf("rollcall reader: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// What acquire builds for a server block, but kept out of the loaders
	// registry: no other block or Reader shares it.
	l := newLoader(keys, cli, cfg.Endpoints, cancel)
	r := &Reader{l: l, ix: newIndex(nil, "")}
	// Every read the Watcher makes (list pages, the revision reads) goes
	// through the client's KV: count the ones that fail.
	cli.KV = countingKV{KV: cli.KV, r: r, report: cfg.OnReadFailed}
	l.subs = []subscriber{r.ix, readerHook{r, cfg.OnApplied}}
	var onStatus func(regwatch.Status, error)
	if cfg.OnStatus != nil {
		onStatus = func(s regwatch.Status, why error) { cfg.OnStatus(string(s), why) }
	}
	if err := l.start(ctx, cfg.RelistJitter, onStatus); err != nil {
		cancel()
		cli.Close()
		return nil, fmt.Errorf("rollcall reader: %w", err)
	}
	return r, nil
}

// readerHook is the Reader's last subscriber: it counts lists and reports
// the revision served once the index before it has taken the change.
type readerHook struct {
	r         *Reader
	onApplied func(rev int64)
}

func (h readerHook) replace(st *state) {
	h.r.lists.Add(1)
	if h.onApplied != nil {
		h.onApplied(st.rev)
	}
}

func (h readerHook) update(st *state, _ changes) {
	if h.onApplied != nil {
		h.onApplied(st.rev)
	}
}

// countingKV is the Reader's client's KV, counting the reads that failed.
// A read its caller gave up on (cancelled: the watch it was checking ended,
// or the Reader closed) is not a failure; one that timed out is.
type countingKV struct {
	clientv3.KV
	r      *Reader
	report func(error, time.Time) // nil: count only
}

func (kv countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	sent := time.Now()
	resp, err := kv.KV.Get(ctx, key, opts...)
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) && !kv.r.closed.Load() {
		kv.r.failed.Add(1)
		if kv.report != nil {
			kv.report(err, sent)
		}
	}
	return resp, err
}

// FailedReads is how many reads of etcd (list pages, the reads of etcd's
// revision beside the watch and before a resume) have failed: refused or
// timed out.
func (r *Reader) FailedReads() int64 { return r.failed.Load() }

// Revision is the etcd revision of the data the Reader's index serves (0
// before the first list).
func (r *Reader) Revision() int64 {
	rev, _ := r.ix.lookup(nil)
	return rev
}

// Lists is how many times the Reader has listed the prefix: 1 after the
// first list, one more for each re-list after a compaction.
func (r *Reader) Lists() int64 { return r.lists.Load() }

// Status is the watch's status now ("" before it starts).
func (r *Reader) Status() string { return r.l.getStatus() }

// Instances is how many instances the Reader's state holds.
func (r *Reader) Instances() int {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return r.l.st.ninsts
}

// WaitLoaded waits for the first list, up to ctx.
func (r *Reader) WaitLoaded(ctx context.Context) error {
	if err := r.l.waitLoaded(ctx); err != nil {
		return fmt.Errorf("rollcall reader %s: first list: %w", r.l.source, err)
	}
	return nil
}

// Close stops the watch and closes the etcd client. Closing again does
// nothing.
func (r *Reader) Close() {
	if r.closed.Swap(true) {
		return
	}
	// As release stops a server block's last loader.
	l := r.l
	l.cancel()
	<-l.done
	l.mu.Lock()
	l.stopped = true
	if l.expiry != nil {
		l.expiry.Stop()
	}
	l.mu.Unlock()
	l.cli.Close()
}
