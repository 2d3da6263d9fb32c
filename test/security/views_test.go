package security

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// overlay is one `network` line of the sweep's Corefile.
type overlay struct {
	name  string
	cidrs []string
}

// The overlays, in Corefile order (the order of preference). Clients pose as
// overlay members by their source address in 127.10/16 or 127.20/16 (or, with
// ecs, by an ECS subnet in those or in the IPv6 ranges). ::1 is on ovb in the
// zones "src" and "ecs", and on no overlay in "pub".
var overlays = []overlay{
	{name: "ova", cidrs: []string{"127.10.0.0/16", "fd00:a::/48"}},
	{name: "ovb", cidrs: []string{"127.20.0.0/16", "fd00:b::/48"}},
}

// sweepZone is one server block of the sweep: its zone, whether ECS is on,
// and whether ::1 is on ovb.
type sweepZone struct {
	name    string
	ecs     bool
	loopOvb bool
}

var sweepZones = []sweepZone{
	{name: "src.example.", loopOvb: true},
	{name: "ecs.example.", ecs: true, loopOvb: true},
	{name: "pub.example.", loopOvb: false},
}

// instance is one instance of service web with the addresses it has (its
// host's, or its own), by network.
type instance struct {
	host, shard string
	addrs       registry.Addrs
	own         bool // addrs are the instance's own, not its host's
}

func mustAddrs(m map[string][]string) registry.Addrs {
	out := registry.Addrs{}
	for n, as := range m {
		for _, a := range as {
			out[n] = append(out[n], netip.MustParseAddr(a))
		}
	}
	return out
}

// Every address is on exactly one network, so an answer's addresses say which
// networks it leaked.
var sweepInstances = []instance{
	{host: "h1", shard: "s1", addrs: mustAddrs(map[string][]string{
		"public": {"192.0.2.1", "2001:db8::1"}, "ova": {"10.10.0.1", "fd00:a::1"}, "ovb": {"10.20.0.1", "fd00:b::1"}})},
	{host: "h2", shard: "s2", addrs: mustAddrs(map[string][]string{
		"public": {"192.0.2.2", "2001:db8::2"}, "ova": {"10.10.0.2", "fd00:a::2"}})},
	{host: "h3", shard: "s3", addrs: mustAddrs(map[string][]string{
		"public": {"192.0.2.3", "2001:db8::3"}, "ovb": {"10.20.0.3", "fd00:b::3"}})},
	{host: "h4", shard: "s4", own: true, addrs: mustAddrs(map[string][]string{
		"public": {"198.51.100.4", "2001:db8:4::4"}, "ova": {"10.10.4.4", "fd00:a:4::4"}})},
}

// sweepMaster is the elected master of web.
const sweepMaster = "h3"

// networkOf maps every address of the data to its network.
func networkOf() map[string]string {
	m := map[string]string{}
	for _, in := range sweepInstances {
		for n, as := range in.addrs {
			for _, a := range as {
				m[a.String()] = n
			}
		}
	}
	return m
}

// viewFor is the set of overlays whose CIDRs hold ip in zone z: the
// contract of docs/DESIGN.md, "Views", written out independently of the
// plugin.
func viewFor(z sweepZone, ip netip.Addr) map[string]bool {
	return viewForPrefix(z, netip.PrefixFrom(ip, ip.BitLen()))
}

// viewForPrefix is the view of a client known by an ECS prefix: the
// overlays one of whose ranges holds the whole prefix.
func viewForPrefix(z sweepZone, p netip.Prefix) map[string]bool {
	v := map[string]bool{}
	for _, o := range overlays {
		cidrs := o.cidrs
		if o.name == "ovb" && z.loopOvb {
			cidrs = append(slices.Clone(cidrs), "::1/128")
		}
		for _, c := range cidrs {
			if cp := netip.MustParsePrefix(c); cp.Bits() <= p.Bits() && cp.Contains(p.Addr()) {
				v[o.name] = true
			}
		}
	}
	return v
}

// chosen is what a client with view gets for in: its addresses on the first
// overlay (Corefile order) both share, else its public ones.
func chosen(in instance, view map[string]bool) []netip.Addr {
	for _, o := range overlays {
		if view[o.name] && len(in.addrs[o.name]) > 0 {
			return in.addrs[o.name]
		}
	}
	return in.addrs["public"]
}

// sweepName is one name queried, the instances its answers come from, and
// whether it has SRV records.
type sweepName struct {
	label   string // relative to the zone
	hosts   []string
	srv     bool
	srvOnly bool // a port name: SRV only, A and AAAA are NODATA
}

var sweepNames = []sweepName{
	{label: "web", hosts: []string{"h1", "h2", "h3", "h4"}, srv: true},
	{label: "_http._tcp.web", hosts: []string{"h1", "h2", "h3", "h4"}, srv: true, srvOnly: true},
	{label: "h1.web", hosts: []string{"h1"}, srv: true},
	{label: "h2.web", hosts: []string{"h2"}, srv: true},
	{label: "h3.web", hosts: []string{"h3"}, srv: true},
	{label: "h4.web", hosts: []string{"h4"}, srv: true},
	{label: "s1.web", hosts: []string{"h1"}},
	{label: "s2.web", hosts: []string{"h2"}},
	{label: "s4.web", hosts: []string{"h4"}},
	{label: "web-master", hosts: []string{sweepMaster}, srv: true},
}

// TestViewIsolationSweep checks the view rule over many clients: no client
// gets an overlay address of a network it is not on, and clients on an
// overlay get its addresses. Clients differ by source address across
// 127.0.0.0/8 (inside and outside the overlays' 127.x ranges) and ::1, and by
// EDNS Client Subnet options (IPv4 and IPv6, inside and outside each overlay)
// that count only where `ecs` is on and are ignored elsewhere. Every name
// shape (service, port, host, shard, master) is asked for A, AAAA and SRV
// (with its additional section), over UDP (with a large EDNS0 buffer and
// with plain 512 bytes) and TCP: about 28,000 queries.
func TestViewIsolationSweep(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	writeSweepData(t, cli)

	port := freeDualPort(t)
	var corefile strings.Builder
	for _, z := range sweepZones {
		fmt.Fprintf(&corefile, "%s:%d {\n    bind 127.0.0.1 ::1\n    rollcall {\n        endpoint %s\n", z.name, port, e.ClientURL)
		for _, o := range overlays {
			cidrs := o.cidrs
			if o.name == "ovb" && z.loopOvb {
				cidrs = append(slices.Clone(cidrs), "::1/128")
			}
			fmt.Fprintf(&corefile, "        network %s %s\n", o.name, strings.Join(cidrs, " "))
		}
		if z.ecs {
			corefile.WriteString("        ecs\n")
		}
		corefile.WriteString("    }\n}\n")
	}
	testkit.StartCoreDNS(t, corefile.String())
	v4 := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	v6 := net.JoinHostPort("::1", strconv.Itoa(port))
	testkit.Eventually(t, wait, "the sweep's data never showed in DNS", func() bool {
		for _, z := range sweepZones {
			r, err := testkit.Exchange("udp", v4, "", "web-master."+z.name, dns.TypeA)
			if err != nil || len(testkit.Addrs(r.Answer)) != 1 {
				return false
			}
			r, err = testkit.Exchange("udp", v4, "", "web."+z.name, dns.TypeA)
			if err != nil || len(testkit.Addrs(r.Answer)) != len(sweepInstances) {
				return false
			}
		}
		return true
	})

	sources := []string{
		"127.0.0.1", "127.0.0.2", "127.1.2.3", "127.9.255.254", "127.10.0.0", "127.10.0.1", "127.10.128.7",
		"127.10.255.254", "127.11.0.1", "127.19.255.254", "127.20.0.1", "127.20.77.77", "127.20.255.254",
		"127.21.0.1", "127.100.10.20", "127.200.20.10", "127.255.255.254", "::1",
	}
	ecsOpts := []struct {
		addr string
		bits uint8
	}{
		{"127.10.3.0", 24}, {"127.10.0.0", 16}, {"127.20.9.0", 24}, {"127.20.9.9", 32},
		{"198.51.100.0", 24}, {"127.30.0.0", 16}, {"10.10.0.0", 16}, {"10.20.0.0", 16}, {"0.0.0.0", 0},
		{"fd00:a:0:1::", 64}, {"fd00:a::", 48}, {"fd00:b::", 56}, {"fd00:b:0:ff::1", 128},
		{"2001:db8:ff::", 48}, {"fd00:c::", 48}, {"::1", 128}, {"::", 0},
		// Prefixes wider than an overlay: they hold addresses off it.
		{"127.10.0.0", 15}, {"127.0.0.0", 8}, {"fd00:a::", 47}, {"fd00::", 16},
	}
	// ECS options are swept from a few sources: one on each overlay and
	// some on none.
	ecsSources := []string{"127.0.0.1", "127.10.0.1", "127.20.0.1", "127.100.10.20", "::1"}

	stats := map[string]int{}
	for _, z := range sweepZones {
		for _, src := range sources {
			t.Run(z.name+" from "+src, func(t *testing.T) {
				q := sweeper{t: t, zone: z, from: src, v4: v4, v6: v6, stats: stats}
				q.all(viewFor(z, netip.MustParseAddr(src)), nil)
			})
		}
		for _, src := range ecsSources {
			for _, o := range ecsOpts {
				t.Run(fmt.Sprintf("%s from %s ECS %s/%d", z.name, src, o.addr, o.bits), func(t *testing.T) {
					view := viewFor(z, netip.MustParseAddr(src))
					if z.ecs {
						view = viewForPrefix(z, netip.PrefixFrom(netip.MustParseAddr(o.addr), int(o.bits)).Masked())
					}
					q := sweeper{t: t, zone: z, from: src, v4: v4, v6: v6, stats: stats}
					q.all(view, testkit.WithECS(o.addr, o.bits))
				})
			}
		}
	}
	t.Logf("queries: %v", stats)
}

// transports are the ways each question is asked: UDP with a large EDNS0
// buffer (whole answers), plain UDP (512 bytes: the additional section, or
// the answer with TC, may be cut), and TCP.
var transports = []struct {
	name, netw string
	edns       bool
}{
	{name: "udp", netw: "udp", edns: true},
	{name: "udp-512", netw: "udp"},
	{name: "tcp", netw: "tcp", edns: true},
}

// sweeper asks every sweep name from one client and checks the answers.
type sweeper struct {
	t      *testing.T
	zone   sweepZone
	from   string
	v4, v6 string
	stats  map[string]int
	errs   int
}

func (s *sweeper) errorf(format string, args ...any) {
	s.t.Helper()
	s.t.Errorf(format, args...)
	if s.errs++; s.errs >= 10 {
		s.t.FailNow()
	}
}

// all asks every name, type and transport; ecs, when not nil, adds the
// client's ECS option. view is the view the client must get.
func (s *sweeper) all(view map[string]bool, ecs func(*dns.Msg)) {
	s.t.Helper()
	server := s.v4
	if strings.Contains(s.from, ":") {
		server = s.v6
	}
	netOf := networkOf()
	byHost := map[string]instance{}
	for _, in := range sweepInstances {
		byHost[in.host] = in
	}
	for _, name := range sweepNames {
		var want4, want6, wantAll []string
		for _, h := range name.hosts {
			for _, a := range chosen(byHost[h], view) {
				wantAll = append(wantAll, a.String())
				if a.Is4() {
					want4 = append(want4, a.String())
				} else {
					want6 = append(want6, a.String())
				}
			}
		}
		slices.Sort(want4)
		slices.Sort(want6)
		if name.srvOnly {
			want4, want6 = nil, nil
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			for _, tr := range transports {
				var opts []func(*dns.Msg)
				if tr.edns {
					opts = append(opts, testkit.WithEDNS0(4096))
				}
				if ecs != nil {
					opts = append(opts, ecs)
				}
				qname := name.label + "." + s.zone.name
				what := fmt.Sprintf("%s %s over %s from %s (view %v)", qname, dns.TypeToString[qtype], tr.name, s.from, view)
				r, err := testkit.Exchange(tr.netw, server, s.from, qname, qtype, opts...)
				if err != nil {
					s.errorf("%s: %v", what, err)
					continue
				}
				s.stats[tr.name]++
				if r.Rcode != dns.RcodeSuccess {
					s.errorf("%s: rcode %s, want NOERROR", what, dns.RcodeToString[r.Rcode])
					continue
				}
				got := testkit.Addrs(append(slices.Clone(r.Answer), r.Extra...))
				for _, a := range got {
					if n := netOf[a]; n != "public" && !view[n] {
						s.errorf("%s: LEAK: overlay %s address %s to a client not on %s", what, n, a, n)
					}
					if !slices.Contains(wantAll, a) {
						s.errorf("%s: address %s (network %s), want only %v", what, a, netOf[a], wantAll)
					}
				}
				answer := testkit.Addrs(r.Answer)
				slices.Sort(answer)
				// A truncated answer (TC) holds some of the records.
				same := func(got, want []string) bool {
					if r.Truncated {
						return !slices.ContainsFunc(got, func(a string) bool { return !slices.Contains(want, a) })
					}
					return slices.Equal(got, want)
				}
				switch qtype {
				case dns.TypeA:
					if !same(answer, want4) {
						s.errorf("%s: answer %v (TC %v), want %v", what, answer, r.Truncated, want4)
					}
				case dns.TypeAAAA:
					if !same(answer, want6) {
						s.errorf("%s: answer %v (TC %v), want %v", what, answer, r.Truncated, want6)
					}
				case dns.TypeSRV:
					if !name.srv || r.Truncated || !tr.edns {
						// Without room, the additional section may be
						// cut: only the leak check above applies.
						break
					}
					n := 0
					for _, rr := range r.Answer {
						if _, ok := rr.(*dns.SRV); ok {
							n++
						}
					}
					if n != len(name.hosts) || len(testkit.Addrs(r.Extra)) == 0 {
						s.errorf("%s: %d SRV with additional addresses %v, want %d SRV and their addresses", what, n, testkit.Addrs(r.Extra), len(name.hosts))
					}
				}
			}
		}
	}
}

// writeSweepData writes the hosts, web's instances and web's master.
func writeSweepData(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range sweepInstances {
		h := &registry.Host{Name: in.host, Addrs: in.addrs}
		if in.own {
			h.Addrs = mustAddrs(map[string][]string{"public": {"203.0.113.99"}})
		}
		hv, err := registry.EncodeHost(h)
		if err != nil {
			t.Fatal(err)
		}
		testkit.Put(t, cli, keys.Host(in.host), string(hv))
		rec := &registry.Instance{Service: "web", Host: in.host, Shard: in.shard,
			Ports: []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}}}
		if in.own {
			rec.Addrs = in.addrs
		}
		iv, err := registry.EncodeInstance(rec)
		if err != nil {
			t.Fatal(err)
		}
		testkit.Put(t, cli, keys.Instance(in.host, "web"), string(iv))
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Put(t, cli, fmt.Sprintf("%s/%x", keys.Election("web"), int64(lease.ID)), sweepMaster, clientv3.WithLease(lease.ID))
}
