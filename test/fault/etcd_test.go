package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// fleet is a set of agents, one per host, each with the same services, all
// against one systemd manager (units are named per host).
type fleet struct {
	sd       *testkit.Systemd
	cli      *clientv3.Client
	hosts    []string
	services []string
	agents   []*agent
}

func startFleet(t *testing.T, sd *testkit.Systemd, cli *clientv3.Client, endpoints []string, nhosts int, services []string, ttl time.Duration) *fleet {
	t.Helper()
	f := &fleet{sd: sd, cli: cli, services: services}
	for i := range nhosts {
		spec := agentSpec{host: hostName(i), endpoints: endpoints, ttl: ttl}
		for _, s := range services {
			spec.services = append(spec.services, serviceSpec{name: s})
		}
		f.hosts = append(f.hosts, spec.host)
		f.agents = append(f.agents, startAgent(t, sd, cli, spec))
	}
	return f
}

// units returns every unit of the fleet and, for each, its service and host.
func (f *fleet) units() ([]string, map[string][2]string) {
	var units []string
	of := map[string][2]string{}
	for _, h := range f.hosts {
		for _, s := range f.services {
			u := unitName(s, h)
			units = append(units, u)
			of[u] = [2]string{s, h}
		}
	}
	return units, of
}

// want returns, per service, the hosts whose unit is active now.
func (f *fleet) want(t *testing.T) map[string]map[string]bool {
	units, of := f.units()
	active := activeUnits(t, f.sd, units)
	want := map[string]map[string]bool{}
	for _, s := range f.services {
		want[s] = map[string]bool{}
	}
	for u, on := range active {
		if on {
			want[of[u][0]][of[u][1]] = true
		}
	}
	return want
}

// converged says whether etcd holds exactly one instance key per active unit
// and none for a stopped one, and DNS answers exactly those hosts; else it
// says what differs.
func (f *fleet) converged(t *testing.T, c *coreDNS) (bool, string) {
	t.Helper()
	want := f.want(t)
	reg, err := registered(f.cli)
	if err != nil {
		return false, err.Error()
	}
	var diffs []string
	for _, s := range f.services {
		w := setString(want[s])
		if got := setString(reg[s]); got != w {
			diffs = append(diffs, fmt.Sprintf("%s: etcd has [%s], units active on [%s]", s, got, w))
		}
		hosts, err := c.hostsOf(t, s)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: DNS: %v", s, err))
			continue
		}
		if got := setString(hosts); got != w {
			diffs = append(diffs, fmt.Sprintf("%s: DNS answers [%s], units active on [%s]", s, got, w))
		}
	}
	for s := range reg {
		if _, known := want[s]; !known && !strings.HasPrefix(s, "mark") {
			diffs = append(diffs, fmt.Sprintf("unexpected service %s in etcd: %v", s, reg[s]))
		}
	}
	return len(diffs) == 0, strings.Join(diffs, "; ")
}

// churn starts and stops random units of the fleet until stop is called;
// stop returns how many changes were made.
func (f *fleet) churn(t *testing.T) (stop func() int) {
	var units []string
	all, of := f.units()
	for _, u := range all {
		if of[u][0] != anchor {
			units = append(units, u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var n int
	wg.Go(func() {
		on := map[string]bool{}
		for ctx.Err() == nil {
			u := units[rand.IntN(len(units))]
			verb := "start"
			if on[u] {
				verb = "stop"
			}
			if out, err := f.sd.TrySystemctl(verb, u); err != nil {
				t.Errorf("churn: systemctl %s %s: %v %s", verb, u, err, out)
				return
			}
			on[u] = !on[u]
			n++
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	var once sync.Once
	stop = func() int {
		once.Do(func() { cancel(); wg.Wait() })
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// marker checks that etcd takes writes and DNS serves them: it registers a
// new service on host hm (already holding a host record) and waits until
// DNS answers it, logging how long that took after since.
type marker struct {
	cli *clientv3.Client
	c   *coreDNS
	n   int
}

const markerHost = "h9"

// anchor is a service whose units run throughout a test: its registrations
// must never lapse.
const anchor = "anchor"

func newMarker(t *testing.T, cli *clientv3.Client, c *coreDNS) *marker {
	testkit.Put(t, cli, keys.Host(markerHost), fmt.Sprintf(`{"name":%q,"addrs":{"public":[%q]}}`, markerHost, addrOf(markerHost)))
	return &marker{cli: cli, c: c}
}

func (m *marker) visible(t *testing.T, what string, since time.Time) {
	t.Helper()
	m.n++
	svc := fmt.Sprintf("mark%d", m.n)
	// The write itself may fail while etcd elects a leader: retry it.
	testkit.Eventually(t, wait, what+": etcd never took the marker write", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := m.cli.Put(ctx, keys.Instance(markerHost, svc), fmt.Sprintf(`{"service":%q,"host":%q}`, svc, markerHost))
		return err == nil
	})
	written := time.Since(since)
	testkit.Eventually(t, wait, what+": the marker write never reached DNS", func() bool {
		r, err := m.c.query("udp", svc+"."+zone, dns.TypeA)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
	t.Logf("%s: etcd took a write after %v, DNS served it after %v", what, written.Round(time.Millisecond), time.Since(since).Round(time.Millisecond))
}

// TestEtcdLeaderAndFollowerKill kills (hangs) the raft leader, brings it
// back, then a follower, then the last member, while units start and stop
// all the time and a client queries DNS over UDP and TCP. Every query must
// be answered (no timeout, no SERVFAIL, no serial going back), the units
// that run throughout (anchors) must never drop out of DNS, writes must
// reach DNS while a quorum is up, and in the end etcd and DNS must hold
// exactly the active units: no registration lost, none doubled, none left
// over.
func TestEtcdLeaderAndFollowerKill(t *testing.T) {
	cluster := testkit.StartCluster(t, 3)
	cli := cluster.Client(t)
	sd := testkit.StartSystemd(t)
	services := []string{"web", "db", "cache", anchor}
	f := startFleet(t, sd, cli, cluster.Endpoints(), 3, services, 3*time.Second)
	var anchors []string
	for _, h := range f.hosts {
		sd.Systemctl("start", unitName(anchor, h))
		anchors = append(anchors, h+"."+anchor+"."+zone)
	}
	c := startCoreDNS(t, cluster.Endpoints(), 0)
	mk := newMarker(t, cli, c)

	var names []string
	for _, s := range services {
		names = append(names, s+"."+zone)
	}
	names = append(names, "h0.web."+zone, "nosuch."+zone)
	testkit.Eventually(t, wait, "anchors never registered", func() bool {
		hosts, err := c.hostsOf(t, anchor)
		return err == nil && len(hosts) == len(f.hosts)
	})
	probe := startProber(c, names, anchors...)
	stopChurn := f.churn(t)

	// Hang every member once, one at a time, each restarted before the
	// next: the leader first, then a follower, then the last one. Whichever
	// member CoreDNS's watch and each agent's streams are on, one round
	// hangs it under them.
	hung := map[int]bool{}
	for round := range 3 {
		time.Sleep(time.Second) // churn before each fault
		var victim int
		testkit.Eventually(t, wait, "no etcd leader", func() bool {
			l := cluster.Leader()
			if l < 0 {
				return false
			}
			victim = l
			if round > 0 {
				// A member not hung yet, a follower when there is one.
				victim = -1
				for i := range 3 {
					if !hung[i] && (victim < 0 || victim == l) {
						victim = i
					}
				}
			}
			return true
		})
		role := "follower"
		if victim == cluster.Leader() {
			role = "leader"
		}
		hung[victim] = true
		m := cluster.Members[victim]
		t0 := time.Now()
		stop := hang(m)
		mk.visible(t, fmt.Sprintf("%s %s hung", role, m.Name), t0)
		stop()
		time.Sleep(time.Second)
		t0 = time.Now()
		m.Start()
		mk.visible(t, m.Name+" back", t0)
	}
	time.Sleep(time.Second)

	changes := stopChurn()
	t0 := time.Now()
	var first string
	testkit.Eventually(t, wait, "etcd and DNS never matched the active units", func() bool {
		ok, diff := f.converged(t, c)
		if first == "" {
			first = diff
		}
		return ok
	})
	t.Logf("%d unit changes; etcd and DNS matched the active units %v after the churn stopped (first difference: %q)",
		changes, time.Since(t0).Round(time.Millisecond), first)

	for _, a := range f.agents {
		out := a.Out.String()
		t.Logf("agent %s: %d etcd failures logged, %d lease losses, %d leases granted", a.host,
			strings.Count(out, "etcd operation failed"), strings.Count(out, "etcd lease lost")+strings.Count(out, "etcd lease is gone"),
			strings.Count(out, "etcd lease granted"))
	}
	total, failures := probe.stop()
	t.Logf("%d DNS queries during the faults, %d failed", total, len(failures))

	for _, f := range failures {
		t.Errorf("DNS: %s", f)
	}
}

// TestWholeClusterDown kills every etcd member for longer than the agents'
// lease TTL and stops a unit meanwhile. DNS must go on answering the last
// state it read and say that it is stale (watch_state unreachable, a growing
// state age, a log line); once the members are back the agents renew the
// leases etcd kept (a new leader gives every lease a fresh TTL), without a
// grant or a rewrite, and DNS converges to the units that run, without the
// one stopped during the outage.
func TestWholeClusterDown(t *testing.T) {
	cluster := testkit.StartCluster(t, 3)
	cli := cluster.Client(t)
	sd := testkit.StartSystemd(t)
	services := []string{"web", "db"}
	// Longer than the client's reconnect delay (up to 2.4s) plus a lapsed
	// renewal's wait: a shorter lease, restored for its TTL plus an election
	// timeout, could run out before the agents are connected again.
	const ttl = 5 * time.Second
	f := startFleet(t, sd, cli, cluster.Endpoints(), 2, services, ttl)
	units, _ := f.units()
	sd.Systemctl(append([]string{"start"}, units...)...)
	c := startCoreDNS(t, cluster.Endpoints(), 0)
	testkit.Eventually(t, wait, "etcd and DNS never matched the active units", func() bool {
		ok, _ := f.converged(t, c)
		return ok
	})
	leases := map[string]int64{}
	for _, h := range f.hosts {
		leases[h] = hostLease(t, cli, h)
	}
	src := "/rollcall@" + strings.Join(cluster.Endpoints(), ",")
	probe := startProber(c, []string{"web." + zone, "h1.web." + zone}, "db."+zone, "h0.web."+zone)

	down := time.Now()
	var closing []func()
	for _, m := range cluster.Members {
		closing = append(closing, kill(m))
	}
	gone := unitName("web", "h1")
	// The agent sees the unit stop but cannot write it.
	sd.Systemctl("stop", gone)

	testkit.Eventually(t, wait, "watch_state never became unreachable", func() bool {
		v, _ := c.metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "unreachable"})
		return v == 1
	})
	t.Logf("CoreDNS reported etcd unreachable %v after the members were killed", time.Since(down).Round(time.Millisecond))
	age1, _ := c.metric(t, "coredns_rollcall_state_age_seconds", map[string]string{"source": src})
	testkit.Eventually(t, wait, "state age did not grow while etcd was down", func() bool {
		age2, _ := c.metric(t, "coredns_rollcall_state_age_seconds", map[string]string{"source": src})
		return age2 > age1 && age1 > 0
	})
	if !strings.Contains(c.Out.String(), "unreachable, serving the last state read") {
		t.Errorf("CoreDNS logged nothing about serving stale state:\n%s", c.Out)
	}
	// Stay down for longer than the TTL: every lease would have expired
	// had etcd been up. DNS still serves the last state, the stopped unit
	// with it.
	time.Sleep(time.Until(down.Add(ttl + time.Second)))
	for _, s := range services {
		hosts, err := c.hostsOf(t, s)
		if err != nil || setString(hosts) != "h0,h1" {
			t.Errorf("%s with etcd down: DNS answers %v (%v), want the last state h0,h1", s, hosts, err)
		}
	}

	for _, closed := range closing {
		closed()
	}
	// The agents' leases lapsed by their clocks; they renew them on, and
	// etcd, which expired nothing while down, has them back with a fresh
	// TTL. A name missing meanwhile is measured, not asserted.
	probe.relax()
	up := time.Now()
	cluster.StartMembers(t, 0, 1, 2)
	t.Logf("all members back after an outage of %v (starting took %v)", up.Sub(down).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	var first string
	testkit.Eventually(t, wait, "etcd and DNS never matched the active units after the outage", func() bool {
		ok, diff := f.converged(t, c)
		if first == "" {
			first = diff
		}
		return ok
	})
	t.Logf("etcd and DNS matched the active units %v after the members were back (first difference: %q)", time.Since(up).Round(time.Millisecond), first)
	for _, h := range f.hosts {
		if l := hostLease(t, cli, h); l != leases[h] {
			t.Errorf("%s: host record on lease %x after the outage, want the lease etcd kept, %x", h, l, leases[h])
		}
	}
	testkit.Eventually(t, wait, "watch_state never back to watching", func() bool {
		v, _ := c.metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "watching"})
		return v == 1
	})
	if ok, diff := f.converged(t, c); !ok {
		t.Errorf("after the outage: %s", diff)
	}
	total, failures := probe.stop()
	t.Logf("%d DNS queries across the outage, %d failed", total, len(failures))
	if first, last, n := probe.gap(); n > 0 {
		t.Logf("after the restart, running services were missing from DNS %d times, from +%v to +%v after the members were back",
			n, first.Sub(up).Round(time.Millisecond), last.Sub(up).Round(time.Millisecond))
	} else {
		t.Logf("after the restart, no running service was ever missing from DNS")
	}
	for _, f := range failures {
		t.Errorf("DNS: %s", f)
	}
}

// hostLease returns the lease of host's host record, 0 when it has none; it
// fails the test when etcd does not answer, so that a lease is never taken
// for absent (or, read before a change, for 0) because a read failed.
func hostLease(t *testing.T, cli *clientv3.Client, host string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, keys.Host(host))
	if err != nil {
		t.Fatalf("read the host record of %s: %v", host, err)
	}
	if len(r.Kvs) == 0 {
		return 0
	}
	return r.Kvs[0].Lease
}
