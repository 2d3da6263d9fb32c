package rollcall

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// httpFeed follows a block's loader beside its index, for the HTTP side
// (http.go): it wakes blocking queries when the revision served moves, and
// notes what changed for the status page. It is a subscriber: replace and
// update come from the loader's goroutine, under the loader's lock, after
// the block's index has applied the same change (the index subscribed
// first, at the block's start-up), so what a woken query reads from the
// index is at least as new as the revision that woke it. Nothing here is
// on the DNS query path.
type httpFeed struct {
	ix *index

	mu     sync.Mutex
	rev    int64         // the revision served
	moved  chan struct{} // closed, and replaced, when rev moves or the feed closes
	closed bool

	// The loader's goroutine only: each service's answers as last seen,
	// the same objects the index holds (so they cost no memory of their
	// own), to tell what a change changed.
	seen   map[string]*svcAnswers
	listed bool // the first replace has been seen

	recent changeRing
}

func newHTTPFeed(ix *index) *httpFeed {
	return &httpFeed{ix: ix, moved: make(chan struct{}), seen: map[string]*svcAnswers{}}
}

// revision returns the revision served as last told by the loader.
func (f *httpFeed) revision() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

// setRevision wakes every blocking query when rev differs from the last.
func (f *httpFeed) setRevision(rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rev == f.rev || f.closed {
		return
	}
	f.rev = rev
	close(f.moved)
	f.moved = make(chan struct{})
}

// close releases every blocking query, now and from now on: the server is
// stopping.
func (f *httpFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.moved)
	}
}

// wait blocks until the revision served passes after, the feed closes or
// ctx ends, and returns the revision then. It is a broadcast: every
// waiter wakes on the same closed channel, nothing polls.
func (f *httpFeed) wait(ctx context.Context, after int64) int64 {
	for {
		f.mu.Lock()
		rev, moved, closed := f.rev, f.moved, f.closed
		f.mu.Unlock()
		if rev > after || closed {
			return rev
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return rev
		}
	}
}

// replace is a list of etcd: the first one (when the server starts) is
// only remembered; a later one, after a compaction or a lost watch, is
// compared whole with what was served before it.
func (f *httpFeed) replace(st *state) {
	now := f.current(nil)
	if f.listed {
		names := slices.Sorted(maps.Keys(f.seen))
		for svc := range now {
			if _, ok := f.seen[svc]; !ok {
				names = append(names, svc)
			}
		}
		slices.Sort(names)
		f.recent.add(httpChange{At: time.Now(), Rev: st.rev, What: "listed etcd again (after a compaction or a lost watch)"})
		f.compare(st.rev, names, now)
	}
	f.listed = true
	f.seen = now
	f.setRevision(st.rev)
}

// update is a batch of watch events (or a progress notification, with no
// changes): the services it touched are compared with what was served.
func (f *httpFeed) update(st *state, ch changes) {
	if len(ch.services) > 0 {
		names := slices.Sorted(maps.Keys(ch.services))
		now := f.current(names)
		f.compare(st.rev, names, now)
		for _, svc := range names {
			if s := now[svc]; s != nil {
				f.seen[svc] = s
			} else {
				delete(f.seen, svc)
			}
		}
	}
	f.setRevision(st.rev)
}

// current reads the answers of the named services (all of them for nil)
// from the index.
func (f *httpFeed) current(names []string) map[string]*svcAnswers {
	f.ix.mu.RLock()
	defer f.ix.mu.RUnlock()
	if names == nil {
		return maps.Clone(f.ix.services)
	}
	out := make(map[string]*svcAnswers, len(names))
	for _, svc := range names {
		if s := f.ix.services[svc]; s != nil {
			out[svc] = s
		}
	}
	return out
}

// compare notes what changed in each named service, at revision rev.
func (f *httpFeed) compare(rev int64, names []string, now map[string]*svcAnswers) {
	at := time.Now()
	for _, svc := range names {
		for _, c := range serviceChanges(f.seen[svc], now[svc]) {
			c.At, c.Rev, c.Service = at, rev, svc
			f.recent.add(c)
		}
	}
}

// serviceChanges says what differs between two versions of a service's
// answers (nil: no instance), instance by instance, then its master.
func serviceChanges(old, cur *svcAnswers) []httpChange {
	var out []httpChange
	var oldAll, curAll []*instAnswers
	if old != nil {
		oldAll = old.all
	}
	if cur != nil {
		curAll = cur.all
	}
	for _, o := range oldAll {
		if cur == nil || cur.instance([]byte(o.host)) == nil {
			out = append(out, httpChange{Host: o.host, What: "deregistered"})
		}
	}
	for _, n := range curAll {
		var o *instAnswers
		if old != nil {
			o = old.instance([]byte(n.host))
		}
		if o == nil {
			out = append(out, httpChange{Host: n.host, What: "registered, " + n.dnsState()})
			continue
		}
		if o == n {
			continue // reused by the index: unchanged
		}
		if what := instanceChange(o, n); what != "" {
			out = append(out, httpChange{Host: n.host, What: what})
		}
	}
	if what, host := masterChange(old, cur); what != "" {
		out = append(out, httpChange{Host: host, What: what})
	}
	return out
}

// instanceChange describes how an instance's answers changed, or "" when
// nothing a client or an operator sees did (the same record written again).
func instanceChange(o, n *instAnswers) string {
	var parts []string
	if os, ns := o.dnsState(), n.dnsState(); os != ns {
		s := os + " → " + ns
		switch {
		case n.maint != nil && n.maint.Reason != "":
			s += ": " + n.maint.Reason
		case n.src.Reason != "":
			s += ": " + n.src.Reason
		}
		parts = append(parts, s)
	}
	if o.src.Shard != n.src.Shard {
		parts = append(parts, fmt.Sprintf("shard %q → %q", o.src.Shard, n.src.Shard))
	}
	if !slices.Equal(o.ports, n.ports) {
		parts = append(parts, "ports "+portList(o.ports)+" → "+portList(n.ports))
	}
	if !sameAddrs(o, n) {
		parts = append(parts, "addresses changed")
	}
	if len(parts) == 0 {
		return ""
	}
	s := parts[0]
	for _, p := range parts[1:] {
		s += "; " + p
	}
	return s
}

// sameAddrs reports whether two versions of an instance answer with the
// same addresses on every network of the block.
func sameAddrs(o, n *instAnswers) bool {
	if o.nets != n.nets || !slices.Equal(o.pub, n.pub) {
		return false
	}
	for i := range o.on {
		if !slices.Equal(o.on[i], n.on[i]) {
			return false
		}
	}
	return true
}

// masterChange describes a change of a service's master and returns the
// host it concerns, or "" when the master and term are the same.
func masterChange(old, cur *svcAnswers) (what, host string) {
	oh, ot := masterOf(old)
	nh, nt := masterOf(cur)
	switch {
	case oh == nh && ot == nt:
		return "", ""
	case nh == "":
		return "no master served (was " + oh + ")", oh
	default:
		return fmt.Sprintf("became master, term %d", nt), nh
	}
}

// httpChange is one change the status page lists.
type httpChange struct {
	At      time.Time `json:"time"`
	Rev     int64     `json:"revision"`
	Service string    `json:"service,omitempty"`
	Host    string    `json:"host,omitempty"`
	What    string    `json:"what"`
}

// maxChanges bounds the changes kept: the status page shows the latest.
const maxChanges = 50

// changeRing keeps the latest maxChanges changes.
type changeRing struct {
	mu   sync.Mutex
	buf  [maxChanges]httpChange
	next int // where the next change goes
	n    int // changes held
}

func (r *changeRing) add(c httpChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = c
	r.next = (r.next + 1) % maxChanges
	r.n = min(r.n+1, maxChanges)
}

// latest returns the changes held, the newest first.
func (r *changeRing) latest() []httpChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]httpChange, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.buf[(r.next-i+maxChanges)%maxChanges])
	}
	return out
}
