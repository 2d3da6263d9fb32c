package resolvers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// zone is the zone rollcall serves in every test; cappedZone is the same
// registry served by a second CoreDNS with `max_answers 100` (BIND test).
const (
	zone       = "infra.example.com."
	cappedZone = "capped.example.com."
)

// wait bounds every asynchronous outcome (a server coming up): generous,
// the machine is shared; these are outcomes, not speed tests.
const wait = 30 * time.Second

var keys = registry.MustKeys(registry.DefaultPrefix)

// The overlays of every Corefile, in order. vpn1's IPv4 range is a /25 and
// its IPv6 range a /57, so the /24 and /56 a subnet cache forwards
// (max-client-subnet-ipv4 24, -ipv6 56) straddle their edges; lab holds
// loopback sources, so a resolver that derives ECS from its client's address
// (unbound's subnetcache, dnsmasq's --add-subnet) can pose a client as on an
// overlay.
var overlays = []struct{ name, cidrs string }{
	{"vpn0", "10.100.0.0/16 fd00:100::/48"},
	{"vpn1", "10.200.7.0/25 fd00:200:7::/57"},
	{"lab", "127.77.0.0/16"},
}

// webHost is one host of service web with its addresses by network. Every
// address is on exactly one network, so an answer's addresses say which
// networks it holds.
type webHost struct {
	name  string
	addrs map[string][]string
}

var webHosts = []webHost{
	{"h1", map[string][]string{
		"public": {"192.0.2.11", "2001:db8::11"},
		"vpn0":   {"10.100.0.11", "fd00:100::11"},
		"vpn1":   {"10.200.7.11", "fd00:200:7::11"},
		"lab":    {"172.16.77.11", "fd00:77::11"}}},
	{"h2", map[string][]string{
		"public": {"192.0.2.12", "2001:db8::12"},
		"vpn0":   {"10.100.0.12", "fd00:100::12"},
		"vpn1":   {"10.200.7.12", "fd00:200:7::12"},
		"lab":    {"172.16.77.12", "fd00:77::12"}}},
	{"h3", map[string][]string{
		"public": {"192.0.2.13", "2001:db8::13"}}},
}

// webMaster is the elected master of web; webPort its one port.
const (
	webMaster = "h1"
	webPort   = 8080
)

// Service wide has wideN instances (A only): its answer (about 16 bytes a
// record) overflows 512 bytes of UDP and also a resolver's 1232-byte EDNS0
// buffer towards CoreDNS, so both the resolver and its client must go to
// TCP. It stays under BIND's 100 records per type. Service huge has hugeN,
// over that limit.
const (
	wideN = 90
	hugeN = 150
)

// bulkHost is the name of the i-th host (from 1) of wide and huge.
func bulkHost(i int) string { return fmt.Sprintf("n%03d", i) }

// bulkAddr is the public address of the i-th bulk host.
func bulkAddr(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

// bulkAddrs returns the public addresses of the first n bulk hosts, sorted.
func bulkAddrs(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, bulkAddr(i))
	}
	sort.Strings(out)
	return out
}

// networkOf maps every address of web's hosts to its network.
func networkOf() map[string]string {
	m := map[string]string{}
	for _, h := range webHosts {
		for n, as := range h.addrs {
			for _, a := range as {
				m[a] = n
			}
		}
	}
	return m
}

// webAddrs is what a client whose view is view gets for web (or for the
// hosts named): per host its addresses on the first overlay (Corefile
// order) of view the host is on, else public; v6 picks the family. Sorted.
func webAddrs(view map[string]bool, v6 bool, hosts ...string) []string {
	var out []string
	for _, h := range webHosts {
		if len(hosts) > 0 && !slices.Contains(hosts, h.name) {
			continue
		}
		addrs := h.addrs["public"]
		for _, o := range overlays {
			if view[o.name] && len(h.addrs[o.name]) > 0 {
				addrs = h.addrs[o.name]
				break
			}
		}
		for _, a := range addrs {
			if netip.MustParseAddr(a).Is6() == v6 {
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// registryData starts etcd with the test data: web on h1-h3 (master h1),
// wide and huge on the bulk hosts. It returns the etcd member and web's
// master term (the election key's create revision).
func registryData(t *testing.T) (*testkit.Etcd, int64) {
	t.Helper()
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var ops []clientv3.Op
	put := func(key string, v []byte, err error) {
		if err != nil {
			t.Fatalf("encode %s: %v", key, err)
		}
		ops = append(ops, clientv3.OpPut(key, string(v)))
	}
	for _, h := range webHosts {
		addrs := registry.Addrs{}
		for n, as := range h.addrs {
			for _, a := range as {
				addrs[n] = append(addrs[n], netip.MustParseAddr(a))
			}
		}
		v, err := registry.EncodeHost(&registry.Host{Name: h.name, Addrs: addrs})
		put(keys.Host(h.name), v, err)
		v, err = registry.EncodeInstance(&registry.Instance{Service: "web", Host: h.name,
			Ports: []registry.Port{{Name: "http", Port: webPort, Proto: "tcp"}}})
		put(keys.Instance(h.name, "web"), v, err)
	}
	for i := 1; i <= hugeN; i++ {
		h := bulkHost(i)
		v, err := registry.EncodeHost(&registry.Host{Name: h,
			Addrs: registry.Addrs{"public": {netip.MustParseAddr(bulkAddr(i))}}})
		put(keys.Host(h), v, err)
		v, err = registry.EncodeInstance(&registry.Instance{Service: "huge", Host: h,
			Ports: []registry.Port{{Name: "http", Port: 80, Proto: "tcp"}}})
		put(keys.Instance(h, "huge"), v, err)
		if i <= wideN {
			v, err = registry.EncodeInstance(&registry.Instance{Service: "wide", Host: h,
				Ports: []registry.Port{{Name: "http", Port: 80, Proto: "tcp"}}})
			put(keys.Instance(h, "wide"), v, err)
		}
	}
	// etcd takes at most 128 operations per transaction.
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if _, err := cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			t.Fatalf("write registry data: %v", err)
		}
		ops = ops[n:]
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	r := testkit.Put(t, cli, fmt.Sprintf("%s/%x", keys.Election("web"), int64(lease.ID)), webMaster, clientv3.WithLease(lease.ID))
	return e, r.Header.Revision
}

// coreDNS is bin/coredns running as a process, serving one zone from etcd.
type coreDNS struct {
	proc *testkit.Process
	addr string // 127.0.0.1:port, UDP and TCP
	port int
}

// startCoreDNS runs bin/coredns for zone z with every overlay and `ecs`
// (on everywhere: a resolver that sends no ECS must get the view of its own
// address), plus the rollcall option line extra, and waits until its ready
// endpoint says the first list of etcd is in and it answers. A port taken
// between FreePort and the bind is retried with new ports. ttl 30 keeps
// every answer in a resolver's cache for the whole test: some checks ask
// one type after another at a name with the cache warm.
func startCoreDNS(t *testing.T, e *testkit.Etcd, z, extra string) *coreDNS {
	t.Helper()
	bin := testkit.Binary(t, "coredns")
	dir := t.TempDir()
	for try := 0; ; try++ {
		port, ready := testkit.FreePort(t), testkit.FreePort(t)
		var cf strings.Builder
		fmt.Fprintf(&cf, "%s:%d {\n    bind 127.0.0.1\n    rollcall {\n        endpoint %s\n        ttl 30\n        ecs\n", z, port, e.ClientURL)
		for _, o := range overlays {
			fmt.Fprintf(&cf, "        network %s %s\n", o.name, o.cidrs)
		}
		if extra != "" {
			fmt.Fprintf(&cf, "        %s\n", extra)
		}
		fmt.Fprintf(&cf, "    }\n    ready 127.0.0.1:%d\n}\n", ready)
		path := filepath.Join(dir, fmt.Sprintf("Corefile.%d", try))
		if err := os.WriteFile(path, []byte(cf.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := testkit.StartProcess(exec.Command(bin, "-conf", path))
		if err != nil {
			t.Fatal(err)
		}
		c := &coreDNS{proc: p, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port}
		up := waitUp(p, func() bool {
			if !httpOK("http://127.0.0.1:" + strconv.Itoa(ready) + "/ready") {
				return false
			}
			m, err := testkit.Exchange("tcp", c.addr, "", z, dns.TypeSOA)
			return err == nil && m.Rcode == dns.RcodeSuccess
		})
		if up {
			t.Cleanup(func() {
				p.Stop(10 * time.Second)
				if t.Failed() {
					t.Logf("coredns (%s) output:\n%s", c.addr, p.Out.Tail(4000))
				}
			})
			return c
		}
		p.Stop(5 * time.Second)
		if try < 3 && strings.Contains(p.Out.String(), "address already in use") {
			continue
		}
		t.Fatalf("bin/coredns did not become ready (exited: %v)\nCorefile:\n%s\noutput:\n%s", p.Exited(), cf.String(), p.Out.Tail(4000))
	}
}

// waitUp polls up every 20ms until it says true, then checks that the
// process still runs a moment later (true); false when the process exits
// or wait passes. The second look matters when another test process got
// the same "free" port: up may then be answered by that process's server
// while ours is failing to bind and about to exit.
func waitUp(p *testkit.Process, up func() bool) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return false
		}
		if up() {
			select {
			case <-p.Done():
				return false
			case <-time.After(200 * time.Millisecond):
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == http.StatusOK
}
