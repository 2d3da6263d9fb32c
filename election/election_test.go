package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

var keys = registry.MustKeys(registry.DefaultPrefix)

const wait = 20 * time.Second // generous bound for asynchronous outcomes

func newCandidate(t *testing.T, cli *clientv3.Client, service, host string, opts ...Option) *Candidate {
	t.Helper()
	c, err := NewCandidate(cli, keys, service, host, opts...)
	if err != nil {
		t.Fatalf("NewCandidate(%s, %s): %v", service, host, err)
	}
	return c
}

// result is the outcome of a campaign run in the background.
type result struct {
	l   *Leadership
	err error
}

// campaign runs c.Campaign in the background; the test's end cancels it.
func campaign(t *testing.T, c *Candidate, lease clientv3.LeaseID) <-chan result {
	t.Helper()
	return inBackground(t, func(ctx context.Context) (result, bool) {
		l, err := c.Campaign(ctx, lease)
		return result{l, err}, true
	})
}

// campaignUntilWon retries c.Campaign until it wins (as the agent does).
func campaignUntilWon(t *testing.T, c *Candidate, lease clientv3.LeaseID) <-chan result {
	t.Helper()
	return inBackground(t, func(ctx context.Context) (result, bool) {
		for ctx.Err() == nil {
			l, err := c.Campaign(ctx, lease)
			if err == nil {
				return result{l, nil}, true
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		return result{}, false
	})
}

// inBackground runs f in a goroutine and delivers its result, if it has one,
// on the returned channel. The test's end cancels f's context, waits for f
// and resigns a leadership the test never took.
func inBackground(t *testing.T, f func(ctx context.Context) (result, bool)) <-chan result {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r, ok := f(ctx); ok {
			ch <- r
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		resignLeft(ch)
	})
	return ch
}

// resignLeft resigns a leadership won but never taken by the test.
func resignLeft(ch <-chan result) {
	select {
	case r := <-ch:
		if r.l != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r.l.Resign(ctx)
		}
	default:
	}
}

func won(t *testing.T, ch <-chan result, who string) *Leadership {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: campaign failed: %v", who, r.err)
		}
		resignAtEnd(t, r.l)
		return r.l
	case <-time.After(wait):
		t.Fatalf("%s: not elected after %v", who, wait)
	}
	return nil
}

// pending reports whether a background campaign is still waiting.
func pending(ch <-chan result) bool { return len(ch) == 0 }

func resignAtEnd(t *testing.T, l *Leadership) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Resign(ctx) // may fail when the test stopped etcd; goroutines end anyway
	})
}

func currentLeader(t *testing.T, cli *clientv3.Client, service string) Leader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := CurrentLeader(ctx, cli, keys, service)
	if err != nil && !errors.Is(err, ErrNoLeader) {
		t.Fatalf("CurrentLeader: %v", err)
	}
	return l
}

func resign(t *testing.T, l *Leadership) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := l.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if !errors.Is(l.Err(), ErrResigned) {
		t.Fatalf("after Resign, Err() = %v, want ErrResigned", l.Err())
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done not closed after Resign")
	}
}

func ended(l *Leadership) bool {
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

// TestResignHandsOver: with two candidates exactly one leads; Resign elects
// the other at once, long before the 60s TTL could have, with a larger term.
func TestResignHandsOver(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	a := newCandidate(t, cli, "web", "host-a", WithTTL(60*time.Second))
	b := newCandidate(t, cli, "web", "host-b", WithTTL(60*time.Second))

	la := won(t, campaign(t, a, clientv3.NoLease), "a")
	chB := campaign(t, b, clientv3.NoLease)
	testkit.Eventually(t, wait, "b's candidacy key written", func() bool {
		r, err := cli.Get(context.Background(), keys.Election("web")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	})
	if got := currentLeader(t, cli, "web"); got.Host != "host-a" || got.Term != la.Term() {
		t.Fatalf("leader %+v, want host-a term %d", got, la.Term())
	}
	if !pending(chB) {
		t.Fatal("b elected while a leads")
	}
	if la.Context().Err() != nil || la.Err() != nil {
		t.Fatalf("a's leadership ended early: %v", la.Err())
	}

	resign(t, la)
	lb := won(t, chB, "b")
	if lb.Term() <= la.Term() {
		t.Fatalf("b's term %d not larger than a's %d", lb.Term(), la.Term())
	}
	if got := currentLeader(t, cli, "web"); got.Host != "host-b" || got.Term != lb.Term() {
		t.Fatalf("leader %+v, want host-b term %d", got, lb.Term())
	}
	// Resign is idempotent.
	resign(t, la)
}

// TestThreeCandidatesTakeTurns: three candidates, always exactly one leader
// in etcd and in the candidates' own view; terms grow at every hand-over.
func TestThreeCandidatesTakeTurns(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	hosts := []string{"h1", "h2", "h3"}
	chs := map[string]<-chan result{}
	for _, h := range hosts {
		chs[h] = campaign(t, newCandidate(t, cli, "db", h, WithTTL(30*time.Second)), clientv3.NoLease)
	}
	var lastTerm int64
	for round := range hosts {
		// Exactly one of the waiting campaigns wins.
		var winner string
		var l *Leadership
		testkit.Eventually(t, wait, fmt.Sprintf("round %d: someone elected", round), func() bool {
			for h, ch := range chs {
				if !pending(ch) {
					winner = h
					return true
				}
			}
			return false
		})
		l = won(t, chs[winner], winner)
		delete(chs, winner)
		for h, ch := range chs {
			if !pending(ch) {
				t.Fatalf("round %d: %s and %s both elected", round, winner, h)
			}
		}
		if got := currentLeader(t, cli, "db"); got.Host != winner || got.Term != l.Term() {
			t.Fatalf("round %d: etcd says leader %+v, %s won with term %d", round, got, winner, l.Term())
		}
		if l.Term() <= lastTerm {
			t.Fatalf("round %d: term %d not larger than %d", round, l.Term(), lastTerm)
		}
		lastTerm = l.Term()
		resign(t, l)
	}
	if got := currentLeader(t, cli, "db"); got != (Leader{}) {
		t.Fatalf("leader %+v after all resigned", got)
	}
}

// keptLease grants a lease of ttl seconds and keeps it alive until the test
// ends, as the agent keeps its one lease that candidacies share.
func keptLease(t *testing.T, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAlive(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	return g.ID
}

// TestRevokedLeaseLosesLeadership: a candidate on the agent's lease loses
// leadership when that lease is revoked; the other takes over.
func TestRevokedLeaseLosesLeadership(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx := context.Background()
	// The agent keeps its one lease alive; the candidacy shares it.
	lease := keptLease(t, cli, 5)
	a := newCandidate(t, cli, "web", "host-a")
	b := newCandidate(t, cli, "web", "host-b", WithTTL(5*time.Second))
	la := won(t, campaign(t, a, lease), "a")
	if la.Lease() != lease {
		t.Fatalf("leadership on lease %x, want the agent's %x", la.Lease(), lease)
	}
	chB := campaign(t, b, clientv3.NoLease)

	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "a's leadership ended", func() bool { return ended(la) })
	if !errors.Is(la.Err(), ErrLost) {
		t.Fatalf("a's Err() = %v, want ErrLost", la.Err())
	}
	if !errors.Is(context.Cause(la.Context()), ErrLost) {
		t.Fatalf("a's context cause = %v, want ErrLost", context.Cause(la.Context()))
	}
	lb := won(t, chB, "b")
	if lb.Term() <= la.Term() {
		t.Fatalf("b's term %d not larger than a's %d", lb.Term(), la.Term())
	}
	// Campaigning on a revoked lease fails clearly.
	_, err := a.Campaign(ctx, lease)
	if !errors.Is(err, ErrLeaseGone) {
		t.Fatalf("campaign on a revoked lease: %v, want ErrLeaseGone", err)
	}
}

// TestDeadHolderReplacedAfterTTL: a holder whose client is gone (a crashed
// host) stops renewing; another candidate is elected once etcd expires the
// lease, with a larger term.
func TestDeadHolderReplacedAfterTTL(t *testing.T) {
	e := testkit.StartEtcd(t)
	cliA, err := newClient(e.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	cliB := e.Client(t)
	a := newCandidate(t, cliA, "web", "host-a", WithTTL(2*time.Second))
	b := newCandidate(t, cliB, "web", "host-b", WithTTL(2*time.Second))
	la := won(t, campaign(t, a, clientv3.NoLease), "a")
	chB := campaign(t, b, clientv3.NoLease)
	testkit.Eventually(t, wait, "b's candidacy key written", func() bool {
		r, err := cliB.Get(context.Background(), keys.Election("web")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	})

	cliA.Close() // the host dies: nothing renews its lease any more
	testkit.Eventually(t, wait, "a's leadership ended", func() bool { return ended(la) })
	if !errors.Is(la.Err(), ErrLost) {
		t.Fatalf("a's Err() = %v, want ErrLost", la.Err())
	}
	lb := won(t, chB, "b")
	if lb.Term() <= la.Term() {
		t.Fatalf("b's term %d not larger than a's %d", lb.Term(), la.Term())
	}
}

// TestPartitionStepsDown: etcd goes away; the leader steps down before its
// lease could have expired; once etcd is back there is exactly one leader.
func TestPartitionStepsDown(t *testing.T) {
	e := testkit.StartEtcd(t)
	cliA := e.Client(t)
	cliB := e.Client(t)
	const ttl = 2 * time.Second
	a := newCandidate(t, cliA, "web", "host-a", WithTTL(ttl))
	b := newCandidate(t, cliB, "web", "host-b", WithTTL(ttl))
	la := won(t, campaign(t, a, clientv3.NoLease), "a")

	stopped := time.Now()
	e.Stop()
	testkit.Eventually(t, wait, "a stepped down", func() bool { return ended(la) })
	if !errors.Is(la.Err(), ErrLost) || !errors.Is(la.Err(), ErrUnconfirmed) {
		t.Fatalf("a's Err() = %v, want ErrLost and ErrUnconfirmed", la.Err())
	}
	endedAt, sent, gotTTL := la.confirmed()
	// The bound: a stopped acting as master before etcd could expire its
	// lease, which is no earlier than sent+TTL.
	if !endedAt.Before(sent.Add(gotTTL)) {
		t.Fatalf("stepped down %v after the last renewal was sent, not before the TTL %v", endedAt.Sub(sent), gotTTL)
	}
	t.Logf("stepped down %v after etcd stopped, %v after the last renewal was sent (TTL %v, margin %v)",
		endedAt.Sub(stopped).Round(time.Millisecond), endedAt.Sub(sent).Round(time.Millisecond), gotTTL, la.margin)

	e.Start()
	// a resigns its lost term (removing its old key) and both campaign
	// again, as the agent would. Err keeps saying why the term ended.
	rctx, rcancel := context.WithTimeout(context.Background(), wait)
	defer rcancel()
	if err := la.Resign(rctx); err != nil {
		t.Fatalf("resign the lost term: %v", err)
	}
	if !errors.Is(la.Err(), ErrUnconfirmed) {
		t.Fatalf("after Resign, Err() = %v, want it to still say ErrUnconfirmed", la.Err())
	}
	chA := campaignUntilWon(t, a, clientv3.NoLease)
	chB := campaignUntilWon(t, b, clientv3.NoLease)
	var l *Leadership
	var other <-chan result
	testkit.Eventually(t, wait, "a leader after etcd returned", func() bool {
		switch {
		case !pending(chA):
			l, other = won(t, chA, "a"), chB
		case !pending(chB):
			l, other = won(t, chB, "b"), chA
		}
		return l != nil
	})
	if !pending(other) {
		t.Fatal("two leaders after etcd returned")
	}
	if got := currentLeader(t, cliB, "web"); got.Host != l.Host() || got.Term != l.Term() {
		t.Fatalf("etcd says leader %+v, %s won with term %d", got, l.Host(), l.Term())
	}
	if l.Term() <= la.Term() {
		t.Fatalf("new term %d not larger than the old %d", l.Term(), la.Term())
	}
}

// TestNoResumeAfterLoss: a candidate whose key was deleted loses leadership;
// campaigning again on the same lease gives a new key with a larger term, and
// a new campaign on a lease that still holds an old key does not resume it.
func TestNoResumeAfterLoss(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx := context.Background()
	lease := keptLease(t, cli, 10)
	a := newCandidate(t, cli, "web", "host-a")
	l1 := won(t, campaign(t, a, lease), "a")

	testkit.Delete(t, cli, l1.Key())
	testkit.Eventually(t, wait, "leadership ended on key delete", func() bool { return ended(l1) })
	if !errors.Is(l1.Err(), ErrKeyDeleted) {
		t.Fatalf("Err() = %v, want ErrKeyDeleted", l1.Err())
	}
	// The guard fences the old term's writes.
	r, err := cli.Txn(ctx).If(l1.Guard()).Then(clientv3.OpPut("/fenced", "x")).Commit()
	if err != nil || r.Succeeded {
		t.Fatalf("guarded write of a lost term: succeeded=%v err=%v", r != nil && r.Succeeded, err)
	}

	l2 := won(t, campaign(t, a, lease), "a again")
	if l2.Term() <= l1.Term() {
		t.Fatalf("new term %d not larger than the lost %d", l2.Term(), l1.Term())
	}
	r, err = cli.Txn(ctx).If(l2.Guard()).Then(clientv3.OpPut("/fenced", "x")).Commit()
	if err != nil || !r.Succeeded {
		t.Fatalf("guarded write of the current term: succeeded=%v err=%v", r != nil && r.Succeeded, err)
	}

	// A new campaign while l2's key is still there replaces it: l2 is lost
	// and the new leadership has a new term.
	l3 := won(t, campaign(t, a, lease), "a a third time")
	testkit.Eventually(t, wait, "old leadership ended", func() bool { return ended(l2) })
	if l3.Term() <= l2.Term() {
		t.Fatalf("new term %d not larger than the replaced %d", l3.Term(), l2.Term())
	}
	// Resign leaves the caller's lease alone.
	resign(t, l3)
	ttl, err := cli.TimeToLive(ctx, lease)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("the agent's lease is gone after Resign: %+v %v", ttl, err)
	}
}

// TestObserve: Observe reports every change of leader, and none.
func TestObserve(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := Observe(ctx, cli, keys, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string) Leader {
		t.Helper()
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
			return l
		case <-time.After(wait):
			t.Fatalf("%s: nothing observed after %v", what, wait)
		}
		return Leader{}
	}
	if got := next("start"); got != (Leader{}) {
		t.Fatalf("start: %+v, want no leader", got)
	}
	a := newCandidate(t, cli, "web", "host-a", WithTTL(30*time.Second))
	b := newCandidate(t, cli, "web", "host-b", WithTTL(30*time.Second))
	la := won(t, campaign(t, a, clientv3.NoLease), "a")
	if got, want := next("a elected"), (Leader{Host: "host-a", Term: la.Term(), Key: la.Key()}); got != want {
		t.Fatalf("a elected: %+v, want %+v", got, want)
	}
	chB := campaign(t, b, clientv3.NoLease)
	testkit.Eventually(t, wait, "b's candidacy key written", func() bool {
		r, err := cli.Get(ctx, keys.Election("web")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	})
	resign(t, la)
	lb := won(t, chB, "b")
	if got, want := next("b elected"), (Leader{Host: "host-b", Term: lb.Term(), Key: lb.Key()}); got != want {
		t.Fatalf("b elected: %+v, want %+v", got, want)
	}
	resign(t, lb)
	if got := next("b resigned"); got != (Leader{}) {
		t.Fatalf("b resigned: %+v, want no leader", got)
	}
	cancel()
	for range ch {
	}
}

func TestLeaderOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cands   []registry.Candidate
		want    Leader
		wantErr bool
	}{
		{name: "none"},
		{name: "one", cands: []registry.Candidate{registry.NewCandidate("/p/7", 7, []byte("h1"))}, want: Leader{Host: "h1", Term: 7, Key: "/p/7"}},
		{name: "lowest create revision wins", cands: []registry.Candidate{
			registry.NewCandidate("/p/9", 9, []byte("h2")),
			registry.NewCandidate("/p/5", 5, []byte("h1")),
			registry.NewCandidate("/p/12", 12, []byte("h3")),
		}, want: Leader{Host: "h1", Term: 5, Key: "/p/5"}},
		{name: "malformed leader is not replaced by the next", cands: []registry.Candidate{
			registry.NewCandidate("/p/5", 5, []byte("Not A Host")),
			registry.NewCandidate("/p/9", 9, []byte("h2")),
		}, wantErr: true},
		{name: "malformed follower does not matter", cands: []registry.Candidate{
			registry.NewCandidate("/p/5", 5, []byte("h1")),
			registry.NewCandidate("/p/9", 9, []byte("")),
		}, want: Leader{Host: "h1", Term: 5, Key: "/p/5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := leaderOf(slices.Values(tc.cands))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, registry.ErrBadRecord) {
				t.Fatalf("err %v does not wrap registry.ErrBadRecord", err)
			}
			if got != tc.want {
				t.Fatalf("leader %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	for _, tc := range []struct {
		name    string
		service string
		host    string
		opts    []Option
		want    error
	}{
		{name: "bad service", service: "Web", host: "h1", want: registry.ErrBadName},
		{name: "bad host", service: "web", host: "h_1", want: registry.ErrBadName},
		{name: "ttl below a second", service: "web", host: "h1", opts: []Option{WithTTL(500 * time.Millisecond)}, want: ErrBadOption},
		{name: "ttl not whole seconds", service: "web", host: "h1", opts: []Option{WithTTL(1500 * time.Millisecond)}, want: ErrBadOption},
		{name: "margin not positive", service: "web", host: "h1", opts: []Option{WithMargin(0)}, want: ErrBadOption},
		{name: "margin beyond ttl", service: "web", host: "h1", opts: []Option{WithTTL(2 * time.Second), WithMargin(3 * time.Second)}, want: ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCandidate(cli, keys, tc.service, tc.host, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewCandidate: %v, want %v", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := CurrentLeader(ctx, cli, keys, "nobody"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("CurrentLeader of an empty election: %v, want ErrNoLeader", err)
	}
	if _, err := Observe(ctx, cli, keys, "-bad", nil); !errors.Is(err, registry.ErrBadName) {
		t.Fatalf("Observe(-bad): %v, want ErrBadName", err)
	}
	// A campaign on a lease that does not exist fails at once.
	c := newCandidate(t, cli, "web", "h1")
	if _, err := c.Campaign(ctx, clientv3.LeaseID(0x1234)); !errors.Is(err, ErrLeaseGone) {
		t.Fatalf("Campaign on a missing lease: %v, want ErrLeaseGone", err)
	}
}

// TestRunCampaignsAgain: Run, as the agent uses it, leads again with a new,
// larger term after a loss, and returns ErrLeaseGone when the lease goes.
func TestRunCampaignsAgain(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx := context.Background()
	lease := keptLease(t, cli, 5)
	c := newCandidate(t, cli, "web", "host-a")
	terms := make(chan int64, 10)
	var mu sync.Mutex
	var current *Leadership
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, lease, func(l *Leadership) {
			mu.Lock()
			current = l
			mu.Unlock()
			terms <- l.Term()
			<-l.Done()
		})
	}()
	next := func() int64 {
		t.Helper()
		select {
		case term := <-terms:
			return term
		case <-time.After(wait):
			t.Fatal("not elected")
		}
		return 0
	}
	t1 := next()
	mu.Lock()
	key := current.Key()
	mu.Unlock()
	testkit.Delete(t, cli, key)
	t2 := next()
	if t2 <= t1 {
		t.Fatalf("term after loss %d not larger than %d", t2, t1)
	}
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, ErrLeaseGone) {
			t.Fatalf("Run returned %v, want ErrLeaseGone", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after the lease was revoked")
	}
}

// TestEtcdLeaderChangeKeepsMaster: in a three-member etcd cluster, stopping
// the raft leader does not cost the master its term: renewals go on through
// the other members, and a new etcd leader restarts leases at their full TTL.
func TestEtcdLeaderChangeKeepsMaster(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	a := newCandidate(t, cli, "web", "host-a", WithTTL(10*time.Second))
	b := newCandidate(t, c.Client(t), "web", "host-b", WithTTL(10*time.Second))
	la := won(t, campaign(t, a, clientv3.NoLease), "a")
	chB := campaign(t, b, clientv3.NoLease)

	var leader int
	testkit.Eventually(t, wait, "a raft leader", func() bool { leader = c.Leader(); return leader >= 0 })
	stopped := time.Now()
	c.Members[leader].Stop()
	testkit.Eventually(t, wait, "a new raft leader", func() bool { return c.Leader() >= 0 })
	// Wait for a renewal sent after the change to succeed.
	testkit.Eventually(t, wait, "a renewal through the new etcd leader", func() bool {
		_, sent, _ := la.confirmed()
		return sent.After(stopped) || ended(la)
	})
	if ended(la) {
		t.Fatalf("a lost its leadership over an etcd leader change: %v", la.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if got, err := CurrentLeader(ctx, cli, keys, "web"); err != nil || got.Term != la.Term() {
		t.Fatalf("leader %+v, %v; want a with term %d", got, err, la.Term())
	}
	if !pending(chB) {
		t.Fatal("b elected while a is master")
	}
}
