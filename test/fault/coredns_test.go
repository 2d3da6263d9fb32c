package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// writer registers and deregisters instances of service churnService on
// hosts h0..h(n-1) as fast as etcd takes it; h0 stays registered, so the
// true instance set is never empty.
type writer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	writes int
	err    error
}

const churnService = "churn"

func startWriter(t *testing.T, cli *clientv3.Client, n int) *writer {
	t.Helper()
	for i := range n {
		h := hostName(i)
		testkit.Put(t, cli, keys.Host(h), fmt.Sprintf(`{"name":%q,"addrs":{"public":[%q]}}`, h, addrOf(h)))
		testkit.Put(t, cli, keys.Instance(h, churnService), fmt.Sprintf(`{"service":%q,"host":%q}`, churnService, h))
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel}
	w.wg.Go(func() {
		on := make([]bool, n)
		for i := range on {
			on[i] = true
		}
		for ctx.Err() == nil {
			i := 1 + rand.IntN(n-1)
			h := hostName(i)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			if on[i] {
				_, err = cli.Delete(wctx, keys.Instance(h, churnService))
			} else {
				_, err = cli.Put(wctx, keys.Instance(h, churnService), fmt.Sprintf(`{"service":%q,"host":%q}`, churnService, h))
			}
			wcancel()
			if err != nil {
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
			on[i] = !on[i]
			w.mu.Lock()
			w.writes++
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	return w
}

func (w *writer) stop() (int, error) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.err
}

// instancesAt returns the hosts with an instance of service in etcd at
// revision rev.
func instancesAt(t *testing.T, cli *clientv3.Client, service string, rev int64) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, keys.Hosts(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatalf("read etcd at revision %d: %v", rev, err)
	}
	out := map[string]bool{}
	for _, kv := range r.Kvs {
		if k, err := keys.Parse(string(kv.Key)); err == nil && k.Kind == registry.KindInstance && k.Service == service {
			out[k.Host] = true
		}
	}
	return out
}

// snapshotAnswer reads the served state consistently: the SOA serial, the
// instance set, and the serial again, retried until both serials agree, so
// the set is the one of that revision.
func snapshotAnswer(t *testing.T, c *coreDNS) (uint32, map[string]bool) {
	t.Helper()
	for range 100 {
		s1, err := c.serial("tcp")
		if err != nil {
			t.Fatalf("SOA right after ready: %v", err)
		}
		hosts, err := c.hostsOf(t, churnService)
		if err != nil {
			t.Fatalf("%s right after ready: %v", churnService, err)
		}
		s2, err := c.serial("tcp")
		if err != nil {
			t.Fatalf("SOA right after ready: %v", err)
		}
		if s1 == s2 {
			return s1, hosts
		}
	}
	t.Fatal("the served revision moved during every one of 100 reads")
	return 0, nil
}

// TestCoreDNSRestartDuringChurn restarts CoreDNS while a writer changes the
// registry all the time. A new server may answer only once it has read
// etcd: when its ready endpoint first says 200 (and for any answer before
// that) it must serve a revision at least as new as etcd's when the server
// started, with exactly the instances etcd held at that revision. Never an
// empty or older state.
func TestCoreDNSRestartDuringChurn(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	w := startWriter(t, cli, 20)
	c := startCoreDNS(t, e.Endpoints(), 0)
	const restarts = 3
	for round := range restarts {
		c.stop(t)
		started := revision(t, cli)
		c = launchCoreDNS(t, e.Endpoints(), 0)
		// Until ready, any answer the server gives must not be older
		// either; SERVFAIL (not loaded) and no answer (not listening) are
		// allowed.
		early := 0
		testkit.Eventually(t, wait, "restarted CoreDNS never became ready", func() bool {
			if c.Exited() {
				t.Fatalf("coredns exited: %v\n%s", c.Err(), c.Out)
			}
			if m, err := c.query("udp", zone, dns.TypeSOA); err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
				early++
				if s := m.Answer[0].(*dns.SOA).Serial; s < uint32(started) {
					t.Fatalf("round %d: before ready the server answered serial %d, older than etcd's %d at its start", round, s, started)
				}
			}
			return c.isReady()
		})
		serial, hosts := snapshotAnswer(t, c)
		if serial < uint32(started) {
			t.Fatalf("round %d: ready with serial %d, older than etcd's revision %d when the server started", round, serial, started)
		}
		want := instancesAt(t, cli, churnService, int64(serial))
		if len(hosts) == 0 || setString(hosts) != setString(want) {
			t.Fatalf("round %d: ready, serving revision %d with %s on [%s], but etcd held [%s] then", round, serial, churnService, setString(hosts), setString(want))
		}
		t.Logf("round %d: etcd at %d when CoreDNS started; ready serving %d (%d instances, as etcd held then); %d SOA answers before ready",
			round, started, serial, len(hosts), early)
	}
	writes, err := w.stop()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("%d registry writes during %d restarts", writes, restarts)
}
