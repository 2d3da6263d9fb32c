package regwatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/test/testkit"
)

// reader is what a test Watcher feeds: a copy of the prefix and a record of
// every callback.
type reader struct {
	mu      sync.Mutex
	kv      map[string]string
	rev     int64
	status  Status
	lists   []time.Time // when each OnList came
	relists []error     // why of each OnRelist
	resumed []error     // lost of each OnWatch that resumed a watch
}

func (r *reader) callbacks() Callbacks {
	return Callbacks{
		OnList: func(kvs []*mvccpb.KeyValue, rev int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.kv = map[string]string{}
			for _, kv := range kvs {
				r.kv[string(kv.Key)] = string(kv.Value)
			}
			r.rev = rev
			r.lists = append(r.lists, time.Now())
		},
		OnEvents: func(evs []*clientv3.Event, rev int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, ev := range evs {
				if ev.Type == mvccpb.DELETE {
					delete(r.kv, string(ev.Kv.Key))
				} else {
					r.kv[string(ev.Kv.Key)] = string(ev.Kv.Value)
				}
			}
			r.rev = rev
		},
		OnProgress: func(rev int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.rev = rev
		},
		OnStatus: func(s Status, why error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.status = s
		},
		OnWatch: func(from int64, lost error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if lost != nil {
				r.resumed = append(r.resumed, lost)
			}
		},
		OnRelist: func(why error, delay time.Duration) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.relists = append(r.relists, why)
		},
	}
}

func (r *reader) get(key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.kv[key]
	return v, ok
}

func (r *reader) nlists() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lists)
}

func (r *reader) getStatus() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// fastConfig is a Config with test-sized timing.
func fastConfig(prefix string) Config {
	return Config{
		Prefix:         prefix,
		PageSize:       4,
		ProgressEvery:  100 * time.Millisecond,
		StaleAfter:     500 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		Retry:          backoff.Policy{Min: 50 * time.Millisecond, Base: 100 * time.Millisecond, Max: 200 * time.Millisecond},
	}
}

// start runs a Watcher until the test ends.
func start(t *testing.T, cli *clientv3.Client, cfg Config) *reader {
	t.Helper()
	r := &reader{}
	w, err := New(cli, cfg, r.callbacks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return r
}

// TestResumeAfterRestart: etcd restarts with its data while a Watcher
// follows it. The Watcher reports it unreachable meanwhile, and afterwards
// follows the writes made since without listing again: etcd still has every
// revision after the last one it delivered.
func TestResumeAfterRestart(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	for i := range 10 { // more than a page
		testkit.Put(t, cli, fmt.Sprintf("/p/k%d", i), "v")
	}
	r := start(t, cli, fastConfig("/p/"))
	testkit.Eventually(t, 10*time.Second, "never watching", func() bool { return r.getStatus() == Watching })
	testkit.Put(t, cli, "/p/before", "1")
	testkit.Eventually(t, 10*time.Second, "write before the restart not delivered", func() bool { _, ok := r.get("/p/before"); return ok })

	e.Stop()
	testkit.Eventually(t, 20*time.Second, "never unreachable with etcd down", func() bool { return r.getStatus() == Unreachable })
	e.Start()
	cli2 := e.Client(t)
	testkit.Delete(t, cli2, "/p/k3")
	testkit.Put(t, cli2, "/p/after", "2")
	testkit.Eventually(t, 30*time.Second, "writes after the restart not delivered", func() bool {
		_, after := r.get("/p/after")
		_, k3 := r.get("/p/k3")
		return after && !k3
	})
	testkit.Eventually(t, 10*time.Second, "not watching again", func() bool { return r.getStatus() == Watching })
	if n := r.nlists(); n != 1 {
		t.Errorf("%d lists, want 1: the watch was not resumed", n)
	}
}

// TestResumeAndRelistSpread runs several Watchers, started together, on one
// member of a three-member cluster.
//
// First the member loses its cluster: the watches, which require a leader,
// end. When a leader is back every Watcher resumes its watch from the
// revision after the last one it delivered and catches up without listing.
//
// Then the member goes down while the others delete a key, add one and
// compact. When it is back, every Watcher finds the revisions it missed
// compacted and lists again, so the delete is applied; and the Watchers,
// which found the compaction at the same moment, list at moments spread over
// the re-list jitter instead of all at once.
func TestResumeAndRelistSpread(t *testing.T) {
	const (
		n      = 6
		jitter = 2 * time.Second
	)
	c := testkit.StartCluster(t, 3)
	m0 := c.Members[0]
	cli := c.Client(t)
	testkit.Put(t, cli, "/p/old", "1")
	cfg := fastConfig("/p/")
	cfg.RelistJitter = jitter
	// A short, fixed retry: the spread measured below is the re-list
	// jitter's, not the retries'.
	cfg.Retry = backoff.Policy{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	// etcd ends a watch that requires a leader three election timeouts
	// (here 1.5s) after it lost its leader. With a stale limit beyond that,
	// a Watcher is unreachable only once its watch has ended and the read
	// before resuming it failed, or later: then the resume below is one.
	cfg.StaleAfter = 5 * time.Second
	m0cli := m0.Client(t)
	var rs []*reader
	for range n {
		rs = append(rs, start(t, m0cli, cfg))
	}
	all := func(what string, cond func(r *reader) bool) {
		t.Helper()
		testkit.Eventually(t, 60*time.Second, what, func() bool {
			for _, r := range rs {
				if !cond(r) {
					return false
				}
			}
			return true
		})
	}
	all("not all watching", func(r *reader) bool { return r.getStatus() == Watching })

	// Leader loss: resume, no list.
	c.Members[1].Stop()
	c.Members[2].Stop()
	all("not all unreachable without a leader", func(r *reader) bool { return r.getStatus() == Unreachable })
	c.StartMembers(t, 1)
	testkit.Put(t, newClient(t, m0.ClientURL, c.Members[1].ClientURL), "/p/resumed", "1")
	all("write after the leader came back not delivered to all", func(r *reader) bool { _, ok := r.get("/p/resumed"); return ok })
	for i, r := range rs {
		r.mu.Lock()
		lists, resumed := len(r.lists), slices.Clone(r.resumed)
		r.mu.Unlock()
		if lists != 1 || len(resumed) == 0 {
			t.Errorf("watcher %d: %d lists and %d resumed watches (%v); want 1 list and the lost watch resumed", i, lists, len(resumed), resumed)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Compaction while the member is down: re-list, spread.
	c.StartMembers(t, 2)
	m0.Stop()
	cli2 := newClient(t, c.Members[1].ClientURL, c.Members[2].ClientURL)
	testkit.Delete(t, cli2, "/p/old")
	r := testkit.Put(t, cli2, "/p/new", "1")
	for i := range 3 {
		r = testkit.Put(t, cli2, "/other", fmt.Sprint(i))
	}
	if _, err := cli2.Compact(context.Background(), r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	m0.Start()
	all("delete missed during the outage not applied by all", func(r *reader) bool {
		_, old := r.get("/p/old")
		_, nw := r.get("/p/new")
		return !old && nw
	})
	var relisted []time.Time
	for i, r := range rs {
		r.mu.Lock()
		lists, relists := slices.Clone(r.lists), slices.Clone(r.relists)
		r.mu.Unlock()
		if len(lists) != 2 {
			t.Errorf("watcher %d: %d lists, want 2 (the first, one after the compaction)", i, len(lists))
			continue
		}
		if len(relists) == 0 || !errors.Is(relists[0], ErrCompacted) {
			t.Errorf("watcher %d: re-listed for %v, want a compaction", i, relists)
		}
		relisted = append(relisted, lists[1])
	}
	if t.Failed() {
		t.FailNow()
	}
	slices.SortFunc(relisted, func(a, b time.Time) int { return a.Compare(b) })
	spread := relisted[len(relisted)-1].Sub(relisted[0])
	var gaps []string
	for _, at := range relisted {
		gaps = append(gaps, at.Sub(relisted[0]).Round(time.Millisecond).String())
	}
	t.Logf("re-lists after the compaction at +%v", gaps)
	// Uniform delays in [0, 2s]: 6 of them all within 200ms of each other
	// happen about once in 20,000 runs. Without jitter they come within a
	// few ms.
	if spread < jitter/10 {
		t.Errorf("%d watchers re-listed within %v of each other, want them spread over the %v jitter", n, spread, jitter)
	}
}

func newClient(t *testing.T, urls ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
