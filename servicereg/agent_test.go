package servicereg

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// wait bounds asynchronous outcomes; generous, as the machine is shared.
const wait = 30 * time.Second

// testLogger sends the agent's log lines to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runAgent runs a until the returned stop is called (or the test ends) and
// waits for its first registration.
// newDemoAgent makes, without starting it, the agent of host h1 on etcd at
// endpoints with one service, demo, taken as active (no systemd); ttl 0 is
// the default TTL.
func newDemoAgent(t *testing.T, endpoints []string, ttl time.Duration) *Agent {
	t.Helper()
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: endpoints}, TTL: ttl}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true, Static: []Service{{Name: "demo"}}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startAgent runs a until the test ends or stop is called; a Run error fails
// the test.
func startAgent(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// runAgent is startAgent, then waits until a has written its registration.
func runAgent(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	stop = startAgent(t, a)
	select {
	case <-a.Ready():
	case <-time.After(wait):
		t.Fatalf("agent not ready after %v", wait)
	}
	return stop
}

func get(t *testing.T, cli *clientv3.Client, key string) (string, clientv3.LeaseID, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil {
		// Never "absent" for etcd not answering: a "gone" assertion
		// would pass without checking anything.
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) == 0 {
		return "", 0, false
	}
	return string(r.Kvs[0].Value), clientv3.LeaseID(r.Kvs[0].Lease), true
}

// userConfig is a config for the test's systemd user manager and etcd.
func userConfig(e *testkit.Etcd, ttl time.Duration, svcs ...Service) *Config {
	return &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()}, Systemd: SystemdUser, TTL: ttl, Services: svcs}
}

var keys = registry.MustKeys(registry.DefaultPrefix)

// unit names a test unit of this package uniquely on this machine (see
// testkit.UnitName).
func unit(name string) string { return testkit.UnitName("rcsr", name) }

func TestRegisterFollowsUnits(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.WriteUnit(unit("flaky"), testkit.FailingUnit(2*time.Second))

	cfg := userConfig(e, 10*time.Second,
		Service{Name: "web", Unit: unit("web"), Ports: []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}}, Shard: "s1"},
		Service{Name: "flaky", Unit: unit("flaky")},
		Service{Name: "ghost", Unit: unit("ghost")}, // no such unit
	)
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)

	if !testkit.Exists(t, cli, keys.Host("h1")) {
		t.Fatal("no host record after Ready")
	}
	web := keys.Instance("h1", "web")
	if testkit.Exists(t, cli, web) {
		t.Fatal("web registered before its unit started")
	}

	sd.Systemctl("start", unit("web"))
	testkit.Eventually(t, wait, "web registered after its unit started", func() bool { return testkit.Exists(t, cli, web) })
	v, _, _ := get(t, cli, web)
	in, err := registry.DecodeInstance(registry.Key{Kind: registry.KindInstance, Host: "h1", Service: "web"}, []byte(v))
	if err != nil || in.Shard != "s1" || len(in.Ports) != 1 || in.Ports[0].Port != 8080 {
		t.Fatalf("web record %s: %+v %v", v, in, err)
	}

	sd.Systemctl("stop", unit("web"))
	testkit.Eventually(t, wait, "web deregistered after its unit stopped", func() bool { return !testkit.Exists(t, cli, web) })

	flaky := keys.Instance("h1", "flaky")
	sd.Systemctl("start", unit("flaky"))
	testkit.Eventually(t, wait, "flaky registered while its unit runs", func() bool { return testkit.Exists(t, cli, flaky) })
	testkit.Eventually(t, wait, "flaky deregistered after its unit failed", func() bool { return !testkit.Exists(t, cli, flaky) })
	out, _ := sd.TrySystemctl("is-failed", unit("flaky"))
	if strings.TrimSpace(out) != "failed" {
		t.Errorf("flaky should have failed, is %q", out)
	}

	// The missing unit is absent, reported, and the agent goes on.
	if testkit.Exists(t, cli, keys.Instance("h1", "ghost")) {
		t.Error("ghost registered though its unit does not exist")
	}
	if got := metricValue(t, a, `rollcall_servicereg_unit_not_found{unit="`+unit("ghost")+`"}`); got != "1" {
		t.Errorf("unit_not_found for ghost.service = %q, want 1", got)
	}
	sd.Systemctl("start", unit("web"))
	testkit.Eventually(t, wait, "web registered again", func() bool { return testkit.Exists(t, cli, web) })
}

func TestSystemdReexecReconnects(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	a, err := New(userConfig(e, 10*time.Second, Service{Name: "web", Unit: unit("web")}), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	// daemon-reexec replaces the manager process: every D-Bus connection to
	// it breaks, the units keep running.
	sd.Systemctl("daemon-reexec")
	sd.Systemctl("start", unit("web"))
	testkit.Eventually(t, wait, "web registered after the manager re-executed", func() bool {
		return testkit.Exists(t, cli, keys.Instance("h1", "web"))
	})
	sd.Systemctl("stop", unit("web"))
	testkit.Eventually(t, wait, "web deregistered after the manager re-executed", func() bool {
		return !testkit.Exists(t, cli, keys.Instance("h1", "web"))
	})
}

func TestRestartRebuildsAndRemovesOnlyOwnStrays(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.Systemctl("start", unit("web"))
	cfg := userConfig(e, 10*time.Second, Service{Name: "web", Unit: unit("web")})

	a1, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a1)
	web := keys.Instance("h1", "web")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })
	stop()
	if testkit.Exists(t, cli, web) || testkit.Exists(t, cli, keys.Host("h1")) {
		t.Fatal("keys left after the agent stopped and revoked its lease")
	}

	// Left-overs: an instance of this host no longer configured (as after a
	// crash and a config change), and another host's instance.
	stray := keys.Instance("h1", "old")
	other := keys.Instance("h2", "web")
	testkit.Put(t, cli, stray, `{"service":"old","host":"h1"}`)
	testkit.Put(t, cli, other, `{"service":"web","host":"h2"}`)

	a2, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a2)
	testkit.Eventually(t, wait, "web registered by the restarted agent", func() bool { return testkit.Exists(t, cli, web) })
	testkit.Eventually(t, wait, "stray instance of h1 removed", func() bool { return !testkit.Exists(t, cli, stray) })
	if !testkit.Exists(t, cli, other) {
		t.Fatal("the agent of h1 removed a key of h2")
	}
}

// An outage of the whole cluster longer than the TTL loses no lease: etcd
// expires nothing while it has no leader and its new leader gives every lease
// a fresh TTL, so the agent renews the lease it holds instead of granting
// another (which would cost every host a grant and a rewrite on a cluster
// just back).
//
// Three members, stopped one after the other: a member's stop is graceful
// and refuses new requests for seconds before the server ends, and a lone
// member would go on expiring leases meanwhile, unlike a crash. Here the leader loses its quorum, and with it
// the right to expire leases, before the last member goes.
func TestEtcdOutageKeepsLease(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	// Longer than the client's reconnect delay (up to 2.4s, etcdconn) plus a
	// renewal: a 2s lease, restored for 2.5s, can run out before the agent
	// is connected again, and then rightly be replaced.
	const ttl = 5 * time.Second
	a := newDemoAgent(t, c.Endpoints(), ttl)
	runAgent(t, a)
	demo := keys.Instance("h1", "demo")
	_, before, ok := get(t, cli, demo)
	if !ok {
		t.Fatal("demo not registered")
	}

	for _, m := range c.Members {
		m.Stop()
	}
	down := time.Now()
	testkit.Eventually(t, wait, "agent reports its lease unrenewed for a whole TTL", func() bool {
		return strings.Contains(a.health.status(time.Now()), "not renewed for a whole TTL")
	})
	// Down for two TTLs by the agent's clock.
	time.Sleep(time.Until(down.Add(2 * ttl)))
	// Together: a member is ready only once a quorum is up.
	testkit.StartTogether(t, c.Members...)

	testkit.Eventually(t, wait, "healthz healthy again", func() bool { return a.health.status(time.Now()) == "" })
	for _, key := range []string{demo, keys.Host("h1")} {
		if _, l, ok := get(t, cli, key); !ok || l != before {
			t.Fatalf("%s: present %v on lease %x, want it kept on lease %x", key, ok, l, before)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Leases) != 1 || ls.Leases[0].ID != before {
		t.Fatalf("leases after the outage %v, want only the agent's first, %x", ls.Leases, before)
	}
}

// A lease that etcd did expire while the agent could not reach it (its only
// member down, the rest of the cluster up) is replaced once etcd says so:
// everything is written again on a new lease.
func TestLeaseExpiredWhileCutOff(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	const ttl = 2 * time.Second
	m := c.Members[0]
	a := newDemoAgent(t, m.Endpoints(), ttl)
	runAgent(t, a)
	demo := keys.Instance("h1", "demo")
	_, before, ok := get(t, cli, demo)
	if !ok {
		t.Fatal("demo not registered")
	}

	m.Stop()
	testkit.Eventually(t, wait, "the rest of the cluster expires the lease", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := cli.TimeToLive(ctx, before)
		return err == nil && r.TTL == -1
	})
	if testkit.Exists(t, cli, demo) {
		t.Fatal("demo outlived its lease")
	}
	m.Start()

	testkit.Eventually(t, wait, "demo and the host record written again on a new lease", func() bool {
		_, l1, ok1 := get(t, cli, demo)
		_, l2, ok2 := get(t, cli, keys.Host("h1"))
		return ok1 && ok2 && l1 != before && l1 == l2
	})
	testkit.Eventually(t, wait, "healthz healthy again", func() bool { return a.health.status(time.Now()) == "" })
}

func TestLeaseRevokedExternally(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	a := newDemoAgent(t, e.Endpoints(), 5*time.Second)
	runAgent(t, a)
	demo := keys.Instance("h1", "demo")
	_, lease, _ := get(t, cli, demo)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "demo back on a new lease", func() bool {
		_, l, ok := get(t, cli, demo)
		return ok && l != lease
	})
}

func TestHostRecordAddresses(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()},
		Addrs: registry.Addrs{"vpn0": {netip.MustParseAddr("10.100.0.5")}}}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	detected, err := DetectAddrs()
	if err != nil {
		t.Fatal(err)
	}
	want := SortAddrs(detected, nil, cfg.Addrs)
	runAgent(t, a)
	h := hostRecord(t, cli, "h1")
	if !equalAddrs(h.Addrs, want) {
		t.Fatalf("host record addrs %v, want %v (detected %v)", h.Addrs, want, detected)
	}
	if got := h.Addrs["vpn0"]; len(got) != 1 || got[0].String() != "10.100.0.5" {
		t.Fatalf("explicit vpn0 address missing: %v", h.Addrs)
	}
	for _, as := range h.Addrs {
		for _, ad := range as {
			if ad.IsLoopback() || ad.IsLinkLocalUnicast() {
				t.Errorf("host record holds %s, which other hosts cannot use", ad)
			}
		}
	}
}

func TestAddressRedetection(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()},
		Networks: []Network{{Name: "vpn0", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16")}}}}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	a.detectEvery = 20 * time.Millisecond
	a.detect = func() ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]netip.Addr(nil), now...), nil
	}
	runAgent(t, a)
	_, _, _ = get(t, cli, keys.Host("h1"))
	rev := func() int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, keys.Host("h1"))
		if err != nil {
			// Never 0 for etcd not answering: "rewritten" would compare
			// against a revision never read.
			t.Fatalf("get %s: %v", keys.Host("h1"), err)
		}
		if len(r.Kvs) == 0 {
			return 0
		}
		return r.Kvs[0].ModRevision
	}
	first := rev()
	mu.Lock()
	now = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("10.100.3.4")}
	mu.Unlock()
	testkit.Eventually(t, wait, "vpn0 address in the host record", func() bool {
		return len(hostRecord(t, cli, "h1").Addrs["vpn0"]) == 1
	})
	second := rev()
	if second == first {
		t.Fatal("host record not rewritten")
	}
	// Unchanged addresses are not written again, however often detected.
	time.Sleep(200 * time.Millisecond)
	if r := rev(); r != second {
		t.Fatalf("host record rewritten (rev %d -> %d) though addresses did not change", second, r)
	}
}

func hostRecord(t *testing.T, cli *clientv3.Client, host string) *registry.Host {
	t.Helper()
	v, _, ok := get(t, cli, keys.Host(host))
	if !ok {
		t.Fatalf("no host record for %s", host)
	}
	h, err := registry.DecodeHost(registry.Key{Kind: registry.KindHost, Host: host}, []byte(v))
	if err != nil {
		t.Fatalf("host record %s: %v", v, err)
	}
	return h
}

func TestReloadAppliesDifference(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	a := newDemoAgent(t, e.Endpoints(), 0)
	runAgent(t, a)

	moved := *a.Config()
	moved.Host = "h2"
	if err := a.Reload(&moved); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "demo moved to h2", func() bool {
		return testkit.Exists(t, cli, keys.Instance("h2", "demo")) && !testkit.Exists(t, cli, keys.Instance("h1", "demo")) &&
			!testkit.Exists(t, cli, keys.Host("h1"))
	})

	bad := moved
	bad.Services = []Service{{Name: "Bad_Name"}}
	if err := a.Reload(&bad); err == nil {
		t.Fatal("bad config accepted on reload")
	}
	if a.Config().Host != "h2" || len(a.Config().Services) != 0 {
		t.Fatal("old config not kept after a refused reload")
	}
}

func TestQuorumLossRecovers(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	// Long enough to be renewed within the TTL the new leader restores (see
	// TestEtcdOutageKeepsLease).
	a := newDemoAgent(t, c.Endpoints(), 5*time.Second)
	runAgent(t, a)
	demo := keys.Instance("h1", "demo")
	_, before, ok := get(t, cli, demo)
	if !ok {
		t.Fatal("demo not registered")
	}
	// Two of three members down: the one left has no leader, and requests
	// that require one fail instead of hanging.
	c.Members[1].Stop()
	c.Members[2].Stop()
	testkit.Eventually(t, wait, "agent reports its lease unrenewed without quorum", func() bool {
		return strings.Contains(a.health.status(time.Now()), "not renewed for a whole TTL")
	})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, m := range c.Members[1:] {
		wg.Go(func() { errs[i] = m.TryStart() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, wait, "healthz healthy again", func() bool { return a.health.status(time.Now()) == "" })
	// Without a leader nothing expired, and the new one renewed the lease
	// for a whole TTL: the agent kept it.
	if _, l, ok := get(t, cli, demo); !ok || l != before {
		t.Fatalf("demo present %v on lease %x, want it kept on lease %x", ok, l, before)
	}
}

func TestRepairsExternalDelete(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	a := newDemoAgent(t, e.Endpoints(), 0)
	runAgent(t, a)
	demo := keys.Instance("h1", "demo")
	testkit.Delete(t, cli, demo)
	testkit.Eventually(t, wait, "deleted record written again", func() bool { return testkit.Exists(t, cli, demo) })
}

// TestSignalOverflowResyncs shrinks the signal buffer to one so that a burst
// of unit changes overflows it: go-systemd then drops signals, and the agent
// must still end in the right state through its full read.
func TestSignalOverflowResyncs(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	var svcs []Service
	var units []string
	for i := range 8 {
		name := fmt.Sprintf("burst%d", i)
		sd.WriteUnit(unit(name), testkit.SleepUnit)
		svcs = append(svcs, Service{Name: name, Unit: unit(name)})
		units = append(units, unit(name))
	}
	a, err := New(userConfig(e, 10*time.Second, svcs...), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a.watcher.bufSize = 1
	runAgent(t, a)
	for range 3 {
		sd.Systemctl(append([]string{"start"}, units...)...)
		sd.Systemctl(append([]string{"stop"}, units...)...)
	}
	sd.Systemctl(append([]string{"start"}, units[:4]...)...)
	testkit.Eventually(t, wait, "exactly the started half registered", func() bool {
		for i, s := range svcs {
			if testkit.Exists(t, cli, keys.Instance("h1", s.Name)) != (i < 4) {
				return false
			}
		}
		return true
	})
	t.Logf("full reads after signal overflow: %s", metricValue(t, a, `rollcall_servicereg_systemd_resyncs_total{reason="signal-error"}`))
}
