package rollcall_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// stack is a real etcd holding the fixture and a real CoreDNS serving it
// from a Corefile with every fixture block on one port.
type stack struct {
	etcd  *testkit.Etcd
	cli   *clientv3.Client
	dns   *testkit.CoreDNS
	port  int
	terms map[string]int64
}

func corefile(port int, endpoints []string, extra string) string {
	var b strings.Builder
	for _, blk := range rollcall.Blocks {
		fmt.Fprintf(&b, "%s:%d {\n  rollcall {\n    endpoint %s\n%s\n  }\n%s}\n", blk.Zone, port, strings.Join(endpoints, " "), blk.Body, extra)
	}
	return b.String()
}

func putFixture(t *testing.T, cli *clientv3.Client) map[string]int64 {
	t.Helper()
	terms := map[string]int64{}
	for _, kv := range rollcall.FixtureKVs() {
		r := testkit.Put(t, cli, kv.Key, kv.Value)
		if rest, ok := strings.CutPrefix(kv.Key, "/rollcall/elections/"); ok {
			svc := strings.Split(rest, "/")[0]
			if _, seen := terms[svc]; !seen {
				terms[svc] = r.Header.Revision
			}
		}
	}
	return terms
}

func startStack(t *testing.T) *stack {
	t.Helper()
	e := testkit.StartEtcd(t)
	s := &stack{etcd: e, cli: e.Client(t), port: testkit.FreePort(t)}
	s.terms = putFixture(t, s.cli)
	s.dns = testkit.StartCoreDNS(t, corefile(s.port, e.Endpoints(), ""))
	return s
}

// addr is where a client at from sends its queries.
func (s *stack) addr(from string) string {
	if strings.Contains(from, ":") {
		return net.JoinHostPort("::1", fmt.Sprint(s.port))
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(s.port))
}

func (s *stack) query(t *testing.T, netw, from, name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	return testkit.Query(t, netw, s.addr(from), from, name, qtype, opts...)
}

// metric returns the value of a rollcall metric with the given labels, or 0.
func metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func source(endpoints []string) string { return "/rollcall@" + strings.Join(endpoints, ",") }

// TestCases runs every case of the shared table against etcd and CoreDNS,
// over UDP and TCP, from client addresses posing as different networks.
func TestCases(t *testing.T) {
	s := startStack(t)
	for _, c := range rollcall.Cases {
		for _, netw := range []string{"udp", "tcp"} {
			t.Run(c.Name+"/"+netw, func(t *testing.T) {
				var opts []func(*dns.Msg)
				if c.ECS != "" {
					opts = append(opts, testkit.WithECS(c.ECSPrefix()))
				}
				m := s.query(t, netw, c.From, c.FQDN(), c.QType, opts...)
				rollcall.CheckCase(t, c, m, s.terms)
			})
		}
	}
	t.Run("one watch for four server blocks", func(t *testing.T) {
		if got := metric(t, "coredns_rollcall_watches_opened_total", map[string]string{"source": source(s.etcd.Endpoints())}); got != 1 {
			t.Errorf("watches opened: %v, want 1", got)
		}
		if got := rollcall.Loaders(); got != 1 {
			t.Errorf("loaders: %d, want 1", got)
		}
	})
	t.Run("decode errors counted", func(t *testing.T) {
		src := source(s.etcd.Endpoints())
		for _, reason := range []string{"key", "record", "mismatch", "too_large", "candidate"} {
			if got := metric(t, "coredns_rollcall_decode_errors_total", map[string]string{"source": src, "reason": reason}); got == 0 {
				t.Errorf("decode errors for %s: 0", reason)
			}
		}
		if got := metric(t, "coredns_rollcall_index_entries", map[string]string{"source": src, "type": "instances"}); got != 84 {
			t.Errorf("instances in index: %v, want 84", got)
		}
	})
	t.Run("ecs echoed with scope", func(t *testing.T) {
		m := s.query(t, "udp", "127.0.0.1", "web.ecs.example.com.", dns.TypeA, testkit.WithECS("10.200.7.0", 24))
		var got *dns.EDNS0_SUBNET
		if o := m.IsEdns0(); o != nil {
			for _, e := range o.Option {
				if sub, ok := e.(*dns.EDNS0_SUBNET); ok {
					got = sub
				}
			}
		}
		if got == nil || got.SourceScope != 24 || !got.Address.Equal(net.ParseIP("10.200.7.0")) {
			t.Errorf("ECS in response: %v, want 10.200.7.0/24 scope 24", got)
		}
	})
	t.Run("SOA serial is the etcd revision", func(t *testing.T) {
		m := s.query(t, "udp", "127.0.0.1", "infra.example.com.", dns.TypeSOA)
		r, err := s.cli.Get(context.Background(), "/rollcall/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Answer[0].(*dns.SOA).Serial; got != uint32(r.Header.Revision) {
			t.Errorf("serial %d, want %d", got, r.Header.Revision)
		}
	})
}

// TestTruncation checks that over UDP as many records as fit are sent with
// TC set, and over TCP (or with a large EDNS0 buffer) all of them.
func TestTruncation(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name    string
		netw    string
		opts    []func(*dns.Msg)
		wantAll bool
	}{
		{name: "udp 512", netw: "udp", wantAll: false},
		{name: "udp EDNS0 1232", netw: "udp", opts: []func(*dns.Msg){testkit.WithEDNS0(1232)}, wantAll: true},
		{name: "tcp", netw: "tcp", wantAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.query(t, tt.netw, "127.0.0.1", "many.infra.example.com.", dns.TypeA, tt.opts...)
			if tt.wantAll && (len(m.Answer) != 60 || m.Truncated) {
				t.Errorf("%d answers, TC %v; want 60, no TC", len(m.Answer), m.Truncated)
			}
			if !tt.wantAll && (len(m.Answer) == 0 || len(m.Answer) >= 60 || !m.Truncated) {
				t.Errorf("%d answers, TC %v; want some, not all, and TC", len(m.Answer), m.Truncated)
			}
			m.Compress = true
			if m.Len() > 512 && tt.netw == "udp" && tt.opts == nil {
				t.Errorf("UDP answer of %d bytes exceeds 512", m.Len())
			}
		})
	}
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

// TestPropagation: a put, a delete, a bad value over a good one and a lease
// expiry each show up in DNS without restarting anything.
func TestPropagation(t *testing.T) {
	s := startStack(t)
	const name = "h9.new.infra.example.com."
	key := "/rollcall/hosts/h9/services/new"
	rcode := func() int { return s.query(t, "udp", "127.0.0.1", name, dns.TypeA).Rcode }

	testkit.Put(t, s.cli, "/rollcall/hosts/h9/host", `{"name":"h9","addrs":{"public":["192.0.2.9"]}}`)
	testkit.Put(t, s.cli, key, `{"service":"new","host":"h9"}`)
	testkit.Eventually(t, 10*time.Second, "put instance not served", func() bool { return rcode() == dns.RcodeSuccess })
	if got := answers(s.query(t, "tcp", "127.0.0.1", name, dns.TypeA)); len(got) != 1 || got[0] != "192.0.2.9" {
		t.Fatalf("answers %v", got)
	}

	testkit.Delete(t, s.cli, key)
	testkit.Eventually(t, 10*time.Second, "deleted instance still served", func() bool { return rcode() == dns.RcodeNameError })

	testkit.Put(t, s.cli, key, `{"service":"new","host":"h9"}`)
	testkit.Eventually(t, 10*time.Second, "put again not served", func() bool { return rcode() == dns.RcodeSuccess })
	testkit.Put(t, s.cli, key, `{"service":"new","host":"h9","addrs":{"public":["not-an-ip"]}}`)
	testkit.Eventually(t, 10*time.Second, "good value replaced by garbage still served", func() bool { return rcode() == dns.RcodeNameError })

	lease, err := s.cli.Grant(context.Background(), 1)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	testkit.Put(t, s.cli, key, `{"service":"new","host":"h9"}`, clientv3.WithLease(lease.ID))
	testkit.Eventually(t, 10*time.Second, "leased instance not served", func() bool { return rcode() == dns.RcodeSuccess })
	testkit.Eventually(t, 30*time.Second, "instance still served after its lease expired", func() bool { return rcode() == dns.RcodeNameError })

	// The master follows the election: the leader resigns, the next leads.
	testkit.Delete(t, s.cli, "/rollcall/elections/web/1")
	testkit.Eventually(t, 10*time.Second, "master did not move to h1", func() bool {
		m := s.query(t, "udp", "127.0.0.1", "web-master.infra.example.com.", dns.TypeTXT)
		if len(m.Answer) != 1 {
			return false
		}
		txt, ok := m.Answer[0].(*dns.TXT)
		return ok && txt.Txt[0] == "host=h1"
	})
}

// TestEtcdRestart: with etcd down the server keeps answering from the last
// state and reports etcd unreachable; back up, it catches up.
func TestEtcdRestart(t *testing.T) {
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond)
	s := startStack(t)
	src := source(s.etcd.Endpoints())
	s.etcd.Stop()
	testkit.Eventually(t, 20*time.Second, "watch state never became unreachable", func() bool {
		return metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "unreachable"}) == 1
	})
	if age := metric(t, "coredns_rollcall_state_age_seconds", map[string]string{"source": src}); age <= 0 {
		t.Errorf("state age %v while etcd is down, want > 0", age)
	}
	for _, netw := range []string{"udp", "tcp"} {
		m := s.query(t, netw, "127.0.0.1", "h1.web.infra.example.com.", dns.TypeA)
		if got := answers(m); len(got) != 1 || got[0] != "192.0.2.1" {
			t.Fatalf("with etcd down over %s: %v, want the last state", netw, got)
		}
	}
	s.etcd.Start()
	cli := s.etcd.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/after", `{"service":"after","host":"h1"}`)
	testkit.Eventually(t, 30*time.Second, "write after restart not served", func() bool {
		return s.query(t, "udp", "127.0.0.1", "after.infra.example.com.", dns.TypeA).Rcode == dns.RcodeSuccess
	})
	testkit.Eventually(t, 10*time.Second, "watch state not back to watching", func() bool {
		return metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "watching"}) == 1
	})
}

// TestCompactionRelist: the member the plugin watches goes down while the
// others delete and add keys and compact; when it is back the watch finds
// its revision compacted, and the plugin lists again and replaces the index
// whole, so the delete it missed is applied.
func TestCompactionRelist(t *testing.T) {
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond)
	c := testkit.StartCluster(t, 3)
	m0 := c.Members[0]
	cli := c.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/host", `{"name":"h1","addrs":{"public":["192.0.2.1"]}}`)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/old", `{"service":"old","host":"h1"}`)
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n }\n}\n", port, m0.ClientURL))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	rcode := func(name string) int { return testkit.Query(t, "udp", addr, "", name, dns.TypeA).Rcode }
	if rcode("old.infra.example.com.") != dns.RcodeSuccess {
		t.Fatal("old not served")
	}
	src := source(m0.Endpoints())
	lists := metric(t, "coredns_rollcall_lists_total", map[string]string{"source": src})

	m0.Stop()
	cli2 := newClientFor(t, c.Members[1].ClientURL, c.Members[2].ClientURL)
	testkit.Delete(t, cli2, "/rollcall/hosts/h1/services/old")
	r := testkit.Put(t, cli2, "/rollcall/hosts/h1/services/new", `{"service":"new","host":"h1"}`)
	for i := 0; i < 3; i++ {
		r = testkit.Put(t, cli2, "/other/filler", fmt.Sprint(i))
	}
	if _, err := cli2.Compact(context.Background(), r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if rcode("old.infra.example.com.") != dns.RcodeSuccess {
		t.Fatal("while its member is down the plugin stopped serving the last state")
	}
	m0.Start()
	testkit.Eventually(t, 60*time.Second, "delete missed during the outage still served", func() bool {
		return rcode("old.infra.example.com.") == dns.RcodeNameError && rcode("new.infra.example.com.") == dns.RcodeSuccess
	})
	if got := metric(t, "coredns_rollcall_lists_total", map[string]string{"source": src}); got <= lists {
		t.Errorf("lists %v, want more than %v: no re-list", got, lists)
	}
}

func newClientFor(t *testing.T, urls ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestCacheWithViewsRefused: a block whose answers depend on the client
// (network, local, ecs) refuses to start next to cache, saying why; without
// views cache is fine.
func TestCacheWithViewsRefused(t *testing.T) {
	e := testkit.StartEtcd(t)
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "network and cache", body: "network vpn0 10.0.0.0/8", wantErr: "network (Corefile:4) makes answers depend on the client, but the block also has cache"},
		{name: "local and cache", body: "local h1", wantErr: "local (Corefile:4)"},
		{name: "ecs and cache", body: "ecs", wantErr: "ecs (Corefile:4)"},
		{name: "no views: cache allowed", body: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf := fmt.Sprintf("infra.example.com:%d {\n cache\n rollcall {\n  %s\n  endpoint %s\n }\n}\n", testkit.FreePort(t), tt.body, e.ClientURL)
			inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(cf), Filepath: "Corefile", ServerTypeName: "dns"})
			if inst != nil {
				defer func() {
					inst.ShutdownCallbacks()
					inst.Stop()
				}()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("start error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "remove cache") {
				t.Errorf("error %v does not say what to do", err)
			}
		})
	}
	if got := rollcall.Loaders(); got != 0 {
		t.Errorf("%d loaders left running after the refused and stopped servers", got)
	}
}

// TestTLS: with `tls CERT KEY CACERT` the plugin reads an etcd that only
// accepts clients with a certificate.
func TestTLS(t *testing.T) {
	files := testkit.NewTLS(t, "rollcall")
	e := testkit.StartEtcd(t, testkit.WithTLS(files))
	testkit.Put(t, e.Client(t), "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","addrs":{"public":["192.0.2.1"]}}`)
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n  tls %s %s %s\n }\n}\n",
		port, e.ClientURL, files.ClientCert, files.ClientKey, files.CA))
	m := testkit.Query(t, "tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), "", "web.infra.example.com.", dns.TypeA)
	if got := answers(m); len(got) != 1 || got[0] != "192.0.2.1" {
		t.Errorf("answers over mTLS etcd: %v", got)
	}
}

// TestLeaderLoss: the member the plugin reads loses its cluster. The watch
// requires a leader, so it ends instead of going silent; the plugin keeps
// answering from the last state, reports etcd unreachable, and once the
// cluster has a leader again it resumes the watch where it ended (no list)
// and catches up.
func TestLeaderLoss(t *testing.T) {
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 5*time.Second, 200*time.Millisecond)
	c := testkit.StartCluster(t, 3)
	m0 := c.Members[0]
	cli := c.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","addrs":{"public":["192.0.2.1"]}}`)
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n }\n}\n", port, m0.ClientURL))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	src := source(m0.Endpoints())
	watches := metric(t, "coredns_rollcall_watches_opened_total", map[string]string{"source": src})
	lists := metric(t, "coredns_rollcall_lists_total", map[string]string{"source": src})

	c.Members[1].Stop()
	c.Members[2].Stop()
	testkit.Eventually(t, 30*time.Second, "plugin never noticed the lost leader", func() bool {
		return metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "unreachable"}) == 1
	})
	if m := testkit.Query(t, "udp", addr, "", "web.infra.example.com.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("without a leader: %v, want the last state", m)
	}
	c.Members[1].Start()
	testkit.Put(t, newClientFor(t, m0.ClientURL, c.Members[1].ClientURL), "/rollcall/hosts/h1/services/db", `{"service":"db","host":"h1"}`)
	testkit.Eventually(t, 30*time.Second, "write after the leader came back not served", func() bool {
		return testkit.Query(t, "udp", addr, "", "h1.db.infra.example.com.", dns.TypeSRV).Rcode == dns.RcodeSuccess
	})
	if got := metric(t, "coredns_rollcall_watches_opened_total", map[string]string{"source": src}); got <= watches {
		t.Errorf("watches opened %v, want more than %v: the watch never ended", got, watches)
	}
	// Nothing was compacted: the lost watch resumes from the revision after
	// the last one served, and the whole prefix is not read again.
	if got := metric(t, "coredns_rollcall_lists_total", map[string]string{"source": src}); got != lists {
		t.Errorf("lists %v, want still %v: a lost watch was resumed by listing again", got, lists)
	}
}

// TestStartWithoutEtcd: with etcd unreachable the server still starts after
// a bounded wait, answers SERVFAIL (not a cacheable NXDOMAIN) and is not
// ready; once etcd is there it loads and answers; shutdown does not hang.
func TestStartWithoutEtcd(t *testing.T) {
	rollcall.SetStartupWait(t, 200*time.Millisecond)
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond)
	e := testkit.StartEtcd(t)
	testkit.Put(t, e.Client(t), "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","addrs":{"public":["192.0.2.1"]}}`)
	e.Stop()
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n }\n}\n", port, e.ClientURL))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	if m := testkit.Query(t, "udp", addr, "", "web.infra.example.com.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("before the first list: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	e.Start()
	testkit.Eventually(t, 30*time.Second, "never loaded after etcd came up", func() bool {
		return testkit.Query(t, "udp", addr, "", "web.infra.example.com.", dns.TypeA).Rcode == dns.RcodeSuccess
	})
}

// TestIdleEtcdStaysFresh: with nothing written, etcd sends no progress
// notification to a watch opened at list revision + 1, so the loader must
// confirm freshness another way: a healthy idle etcd is never reported
// unreachable and the state age stays small.
func TestIdleEtcdStaysFresh(t *testing.T) {
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond)
	s := startStack(t)
	src := source(s.etcd.Endpoints())
	testkit.Eventually(t, 10*time.Second, "watch never started", func() bool {
		return metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "watching"}) == 1
	})
	// Idle for several stale periods: the state must stay "watching".
	for i := 0; i < 15; i++ {
		time.Sleep(100 * time.Millisecond)
		if metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "unreachable"}) == 1 {
			t.Fatalf("idle, healthy etcd reported unreachable after %d00ms", i+1)
		}
	}
	if age := metric(t, "coredns_rollcall_state_age_seconds", map[string]string{"source": src}); age > 0.5 {
		t.Errorf("state age %vs with a healthy idle etcd, want below the stale limit", age)
	}
}

// TestECSSweepUDP asks every prefix of the ECS sweep (ecs_sweep_test.go) of
// a real CoreDNS over UDP, from a source address on no network: an overlay
// address only for a network that holds the whole source prefix, and the
// prefix echoed as the scope.
func TestECSSweepUDP(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	for _, kv := range rollcall.SweepKVs() {
		testkit.Put(t, cli, kv.Key, kv.Value)
	}
	port := testkit.FreePort(t)
	body := strings.ReplaceAll(strings.TrimSpace(rollcall.SweepBody()), "\n", "\n    ")
	testkit.StartCoreDNS(t, fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n    %s\n  }\n}\n", rollcall.SweepZone, port, e.ClientURL, body))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	name := "sw." + rollcall.SweepZone
	testkit.Eventually(t, 10*time.Second, "sweep data never served", func() bool {
		m, err := testkit.Exchange("udp", addr, "127.0.0.1", name, dns.TypeA)
		return err == nil && len(m.Answer) == len(rollcall.SweepKVs())/2
	})
	n := 0
	for _, p := range rollcall.SweepPrefixes() {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := testkit.Query(t, "udp", addr, "127.0.0.1", name, qtype, rollcall.WithPrefixECS(p))
			rollcall.CheckSweep(t, p, qtype, m)
			n++
		}
	}
	t.Logf("%d queries over UDP", n)
}
