package fault

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/test/testkit"
)

// hookArgv appends "<host> <event> <term> <unix time>" to path: one shared
// file for every agent, so its line order is the order the hooks ran in.
func hookArgv(path, event string) []string {
	return []string{"/bin/sh", "-c", `echo "$ROLLCALL_HOST $1 $ROLLCALL_TERM $(date +%s.%N)" >> "$0"`, path, event}
}

// hookEvent is one line of the hook file.
type hookEvent struct {
	host, event, term string
	at                time.Time
}

func readHooks(t *testing.T, path string) []hookEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []hookEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		sec, _ := strconv.ParseFloat(f[3], 64)
		out = append(out, hookEvent{host: f[0], event: f[1], term: f[2], at: time.Unix(0, int64(sec*1e9))})
	}
	return out
}

func (a *agent) master(t *testing.T, service string) float64 {
	v, ok := scrape(t, "http://"+a.metrics+"/metrics", "rollcall_servicereg_master", map[string]string{"service": service})
	if !ok {
		return -1
	}
	return v
}

// masterHost returns the host DNS names as master of service ("" when none),
// from the TXT "host=<host>" "term=<term>" at <service>-master.
func masterHost(c *coreDNS, service string) string {
	m, err := c.query("udp", service+"-master."+zone, dns.TypeTXT)
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		return ""
	}
	txt, ok := m.Answer[0].(*dns.TXT)
	if !ok || len(txt.Txt) == 0 {
		return ""
	}
	host, _ := strings.CutPrefix(txt.Txt[0], "host=")
	return host
}

// candidatesAre says whether service has n candidacy keys, for Eventually.
// A failed read says no ("not yet"), never a count: these tests read while
// an etcd member may hang, and no count can be taken from a read that
// failed.
func candidatesAre(cli *clientv3.Client, service string, n int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, keys.Election(service)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err == nil && r.Count == n
}

// TestMasterPartitionStepDown cuts the master's agent off from etcd (a
// blackhole: its packets vanish) while another agent campaigns for the same
// service. The cut-off master must run on_standby before the other host runs
// on_master, DNS must name the new master, and once the partition heals the
// old master rejoins as a standby: one master, never two.
func TestMasterPartitionStepDown(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sd := testkit.StartSystemd(t)
	u, err := url.Parse(e.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	px, err := NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })

	hooks := filepath.Join(t.TempDir(), "hooks")
	const ttl = 5 * time.Second
	spec := func(host string, endpoints []string) agentSpec {
		return agentSpec{host: host, endpoints: endpoints, ttl: ttl, metrics: true, services: []serviceSpec{{
			name: "db", election: true, onMaster: hookArgv(hooks, "master"), onStandby: hookArgv(hooks, "standby"),
		}}}
	}
	c := startCoreDNS(t, e.Endpoints(), 0)

	// h0 reaches etcd only through the proxy; it campaigns first and leads.
	a0 := startAgent(t, sd, cli, spec("h0", []string{"http://" + px.Addr()}))
	sd.Systemctl("start", unitName("db", "h0"))
	testkit.Eventually(t, wait, "h0 never became master", func() bool {
		return masterHost(c, "db") == "h0" && a0.master(t, "db") == 1
	})
	a1 := startAgent(t, sd, cli, spec("h1", e.Endpoints()))
	sd.Systemctl("start", unitName("db", "h1"))
	testkit.Eventually(t, wait, "h1 never campaigned", func() bool { return candidatesAre(cli, "db", 2) })
	before, err := election.CurrentLeader(context.Background(), cli, keys, "db")
	if err != nil || before.Host != "h0" {
		t.Fatalf("leader before the cut: %+v %v, want h0", before, err)
	}
	if a1.master(t, "db") != 0 {
		t.Fatal("h1 believes it is master before the cut")
	}

	oldLease := hostLease(t, cli, "h0")
	cut := time.Now()
	px.Cut()
	testkit.Eventually(t, wait, "DNS never named h1 master after h0 was cut off", func() bool { return masterHost(c, "db") == "h1" })
	testkit.Eventually(t, wait, "h1 never ran on_master", func() bool {
		for _, ev := range readHooks(t, hooks) {
			if ev.host == "h1" && ev.event == "master" {
				return true
			}
		}
		return false
	})
	evs := readHooks(t, hooks)
	var lines []string
	for _, ev := range evs {
		lines = append(lines, ev.host+" "+ev.event)
	}
	got := strings.Join(lines, ", ")
	if want := "h0 master, h0 standby, h1 master"; got != want {
		t.Fatalf("hooks ran in the order %q, want %q: the cut-off master must stand down before another takes over", got, want)
	}
	t.Logf("after the cut: h0 ran on_standby at +%v, h1 ran on_master at +%v (TTL %v)",
		evs[1].at.Sub(cut).Round(time.Millisecond), evs[2].at.Sub(cut).Round(time.Millisecond), ttl)
	testkit.Eventually(t, wait, "master gauges never moved to h1", func() bool {
		return a0.master(t, "db") == 0 && a1.master(t, "db") == 1
	})

	healed := time.Now()
	px.Heal()
	// h0 comes back on a new lease and campaigns again, behind h1.
	testkit.Eventually(t, wait, "h0 never rejoined the election", func() bool {
		l := hostLease(t, cli, "h0")
		return candidatesAre(cli, "db", 2) && testkit.Exists(t, cli, keys.Instance("h0", "db")) && l != 0 && l != oldLease
	})
	t.Logf("h0 rejoined the election %v after the heal", time.Since(healed).Round(time.Millisecond))
	after, err := election.CurrentLeader(context.Background(), cli, keys, "db")
	if err != nil || after.Host != "h1" || after.Term <= before.Term {
		t.Fatalf("leader after the heal: %+v %v, want h1 with a term above %d", after, err, before.Term)
	}
	testkit.Eventually(t, wait, "not exactly one master after the heal", func() bool {
		return a0.master(t, "db") == 0 && a1.master(t, "db") == 1 && masterHost(c, "db") == "h1"
	})
	if evs := readHooks(t, hooks); len(evs) != 3 {
		t.Errorf("hooks after the heal: %+v, want no more runs", evs)
	}
}

// TestMasterHandoverWithHungMember hands the master over (the master's unit
// stops) while one etcd member hangs with its connections open, once per
// member, so that whichever member the agents' requests and watches are on
// hangs once under them. The old master must resign (its unit stopped: no
// election key of its may stay behind), and the standby must take over.
// The hung member is a follower each time (leadership is moved off it
// first): the fault under test is the agents' requests landing on it, not
// etcd electing a new leader.
func TestMasterHandoverWithHungMember(t *testing.T) {
	long(t)
	cluster := testkit.StartCluster(t, 3)
	cli := cluster.Client(t)
	sd := testkit.StartSystemd(t)
	c := startCoreDNS(t, cluster.Endpoints(), 0)
	hooks := filepath.Join(t.TempDir(), "hooks")
	agents := map[string]*agent{}
	for _, h := range []string{"h0", "h1"} {
		agents[h] = startAgent(t, sd, cli, agentSpec{host: h, endpoints: cluster.Endpoints(), ttl: 3 * time.Second, metrics: true,
			services: []serviceSpec{{name: "db", election: true, onMaster: hookArgv(hooks, "master"), onStandby: hookArgv(hooks, "standby")}}})
		sd.Systemctl("start", unitName("db", h))
	}
	var master string
	testkit.Eventually(t, wait, "no master elected", func() bool {
		master = masterHost(c, "db")
		return master != "" && candidatesAre(cli, "db", 2)
	})
	other := map[string]string{"h0": "h1", "h1": "h0"}
	for i, m := range cluster.Members {
		demote(t, cluster, i)
		stop := hang(m)
		t0 := time.Now()
		sd.Systemctl("stop", unitName("db", master))
		next := other[master]
		testkit.Eventually(t, wait, fmt.Sprintf("%s hung: %s never took over from %s", m.Name, next, master), func() bool {
			l, err := election.CurrentLeader(context.Background(), cli, keys, "db")
			return err == nil && l.Host == next && masterHost(c, "db") == next && agents[next].master(t, "db") == 1
		})
		testkit.Eventually(t, wait, fmt.Sprintf("%s hung: %s left its candidacy behind after its unit stopped", m.Name, master), func() bool {
			return candidatesAre(cli, "db", 1) && agents[master].master(t, "db") == 0
		})
		t.Logf("round %d, %s hung: %s took over from %s %v after its unit stopped", i, m.Name, next, master, time.Since(t0).Round(time.Millisecond))
		sd.Systemctl("start", unitName("db", master))
		stop()
		m.Start()
		testkit.Eventually(t, wait, "the old master never campaigned again", func() bool { return candidatesAre(cli, "db", 2) })
		master = next
	}
	var got []string
	for _, ev := range readHooks(t, hooks) {
		got = append(got, ev.host+" "+ev.event)
	}
	t.Logf("hooks: %s", strings.Join(got, ", "))
}

// demote makes sure member i is not the raft leader, handing leadership to
// the next member when it is.
func demote(t *testing.T, cluster *testkit.Cluster, i int) {
	t.Helper()
	testkit.Eventually(t, wait, fmt.Sprintf("leadership never moved off %s", cluster.Members[i].Name), func() bool {
		l := cluster.Leader()
		if l < 0 {
			return false
		}
		if l != i {
			return true
		}
		s := cluster.Members[i].Server().Server
		to := cluster.Members[(i+1)%len(cluster.Members)].Server().Server.MemberID()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.MoveLeader(ctx, s.Lead(), uint64(to)); err != nil {
			t.Logf("move leadership off %s: %v", cluster.Members[i].Name, err)
		}
		return false
	})
}
