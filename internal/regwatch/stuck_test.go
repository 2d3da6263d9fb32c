package regwatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestStuckWatchResumesElsewhere hangs each member of a three-member cluster
// in turn (raft stopped, client port open: its watches stay open and
// silent, still believing in their leader) while a Watcher on all three
// follows writes. The round that hangs the member under the watch must end
// with the watch taken for stuck and resumed, without a list, on another
// member; a resumed watch that the client's round robin puts on the hung
// member again is given up at once. Every round's write is delivered within
// a bound that holds only when the watch does not go back to the hung member
// for another stale period.
func TestStuckWatchResumesElsewhere(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	cfg := Config{
		Prefix:         "/p/",
		ProgressEvery:  200 * time.Millisecond,
		StaleAfter:     time.Second,
		RequestTimeout: time.Second,
		Retry:          backoff.Policy{Min: 50 * time.Millisecond, Base: 100 * time.Millisecond, Max: 500 * time.Millisecond},
	}
	r := start(t, c.Client(t), cfg)
	testkit.Eventually(t, 10*time.Second, "never watching", func() bool { return r.getStatus() == Watching })

	// Writes all along, so that a stuck watch falls behind etcd.
	ctx, cancel := context.WithCancel(context.Background())
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		for i := 0; ctx.Err() == nil; i++ {
			wctx, wcancel := context.WithTimeout(ctx, time.Second)
			_, _ = cli.Put(wctx, "/p/churn", fmt.Sprint(i))
			wcancel()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { cancel(); <-writer }()

	put := func(key, value string) int64 {
		t.Helper()
		var err error
		for range 20 { // a write that lands on the hung member times out
			pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
			var resp *clientv3.PutResponse
			resp, err = cli.Put(pctx, key, value)
			pcancel()
			if err == nil {
				return resp.Header.Revision
			}
		}
		t.Fatalf("put %s: %v", key, err)
		return 0
	}
	// The stuck watch is noticed after StaleAfter and a freshness read or
	// two; each further stale period on the hung member would add over a
	// second.
	const bound = 5 * time.Second
	for i, m := range c.Members {
		time.Sleep(300 * time.Millisecond)
		t0 := time.Now()
		m.Server().Server.HardStop()
		rev := put("/p/marker", fmt.Sprint(i))
		testkit.Eventually(t, 30*time.Second, fmt.Sprintf("marker %d never delivered with %s hung", i, m.Name), func() bool {
			v, _ := r.get("/p/marker")
			return v == fmt.Sprint(i)
		})
		took := time.Since(t0)
		t.Logf("%s hung: write at revision %d delivered after %v", m.Name, rev, took.Round(time.Millisecond))
		if took > bound {
			t.Errorf("%s hung: write delivered after %v, want within %v", m.Name, took.Round(time.Millisecond), bound)
		}
		m.Stop()
		c.StartMembers(t, i)
	}
	r.mu.Lock()
	resumed, lists := slices.Clone(r.resumed), len(r.lists)
	r.mu.Unlock()
	var reasons []string
	stuck, last := 0, ""
	for _, err := range resumed {
		reasons = append(reasons, err.Error())
		if !errors.Is(err, ErrStuck) {
			continue
		}
		stuck++
		// Each member hung once: a watch stuck twice on one member went
		// back to it.
		_, member, _ := strings.Cut(err.Error(), "(member ")
		if member == last {
			t.Errorf("the watch was stuck on the same member twice (%s): resumed on the hung member", strings.TrimSuffix(member, ")"))
		}
		last = member
	}
	t.Logf("watches resumed after:\n%s", strings.Join(reasons, "\n"))
	if stuck == 0 {
		t.Errorf("no watch was taken for stuck, though every member hung once under it")
	}
	if lists != 1 {
		t.Errorf("%d lists, want 1: nothing was compacted", lists)
	}
}
