package resolvers

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestECSNoLeak checks views with `ecs` through caches that keep answers
// per client subnet: an overlay address never reaches a client off that
// overlay, even when a resolver cuts the client's subnet to a /24 (or /56)
// that straddles the overlay's edge and caches the answer for that whole
// subnet. First CoreDNS's own replies: each answer is the view of the whole
// ECS source prefix, and its scope is one the answer holds for.
func TestECSNoLeak(t *testing.T) {
	t.Parallel()
	e, _ := registryData(t)
	c := startCoreDNS(t, e, zone, "")
	t.Run("scope from CoreDNS", func(t *testing.T) { checkScopes(t, c) })
	t.Run("unbound subnetcache", func(t *testing.T) {
		t.Parallel()
		unboundSubnetCache(t, startUnbound(t, c, unboundOpts{subnet: true}))
	})
	t.Run("dnsmasq add-subnet", func(t *testing.T) {
		t.Parallel()
		dnsmasqAddSubnet(t, startDnsmasq(t, c, "24,56"))
	})
	t.Run("plain dnsmasq and a client's ECS", func(t *testing.T) {
		t.Parallel()
		plainDnsmasqClientECS(t, startDnsmasq(t, c, ""))
	})
}

// scopeProbes are ECS source prefixes: inside, across and around the
// overlays (vpn0 10.100/16 and fd00:100::/48, vpn1 10.200.7.0/25 and
// fd00:200:7::/57, lab 127.77/16), and none at all (/0).
var scopeProbes = []string{
	"10.100.5.7/32", "10.100.5.0/24", "10.100.0.0/16", "10.100.0.0/15", "10.200.7.0/25", "10.200.7.5/32",
	"10.200.7.0/24", "10.200.7.128/25", "10.200.7.200/32", "10.200.0.0/16", "10.0.0.0/8", "192.0.2.0/24",
	"127.77.1.0/24", "127.0.0.0/8", "0.0.0.0/0",
	"fd00:100:0:5::/64", "fd00:100::/48", "fd00:100::/47", "fd00:200:7::/57", "fd00:200:7:1::/64",
	"fd00:200:7::/56", "fd00:200:7:80::/57", "fd00::/8", "::/0",
}

// checkScopes asks CoreDNS directly, with each probe as ECS, for web. The
// answer must be the view of the whole prefix; with S the reply's scope and
// C the probe's address cut to the shorter of S and the source length (what
// a subnet cache reuses the answer for), every overlay in the answer must
// hold all of C, and every source prefix of the probe's length inside C
// must get the same answer ("the answer holds for every address in the
// scope"): sampled at C's ends and at each overlay range's edges within C.
func checkScopes(t *testing.T, c *coreDNS) {
	answer := func(p netip.Prefix) (*dns.Msg, []string) {
		qt := dns.TypeA
		if p.Addr().Is6() {
			qt = dns.TypeAAAA
		}
		m := ask(t, c.addr, "udp", "", "web."+zone, qt, edns, testkit.WithECS(p.Addr().String(), uint8(p.Bits())))
		return m, sorted(m.Answer, "")
	}
	for _, probe := range scopeProbes {
		p := netip.MustParsePrefix(probe).Masked()
		m, got := answer(p)
		if want := webAddrs(viewOf(p), p.Addr().Is6()); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("ECS %s: %s; want %v (the view of the whole prefix: %v)", p, describe(m), want, keysOf(viewOf(p)))
		}
		e := ecsOf(m)
		if e == nil {
			t.Errorf("ECS %s: the reply has no ECS option (RFC 7871 6: a server that uses it echoes it with a scope)", p)
			continue
		}
		cover := netip.PrefixFrom(p.Addr(), min(int(e.SourceScope), p.Bits())).Masked()
		for _, n := range networksIn(got) {
			if !covers(n, cover) {
				t.Errorf("ECS %s: LEAK: scope /%d lets a cache give %s addresses %v to all of %s, which %s does not hold", p, e.SourceScope, n, got, cover, n)
			}
		}
		for _, q := range samples(cover, p.Bits()) {
			if _, other := answer(q); !slices.Equal(other, got) {
				t.Errorf("ECS %s: answer %v with scope /%d, but %s (inside %s) gets %v: the answer does not hold for every address in the scope", p, got, e.SourceScope, q, cover, other)
			}
		}
	}
}

// covers reports whether one of overlay n's ranges holds all of p.
func covers(n string, p netip.Prefix) bool { return viewOf(p)[n] }

// samples returns source prefixes of length bits inside c other than c's
// own: at c's first and last address and at the first address of each
// overlay range within c and the first address after it.
func samples(c netip.Prefix, bits int) []netip.Prefix {
	if c.Bits() >= bits {
		return nil
	}
	addrs := []netip.Addr{c.Addr(), testkit.LastAddr(c)}
	for _, o := range overlays {
		for _, r := range strings.Fields(o.cidrs) {
			x := netip.MustParsePrefix(r)
			addrs = append(addrs, x.Addr(), testkit.LastAddr(x).Next())
		}
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if !a.IsValid() || !c.Contains(a) {
			continue
		}
		if q := netip.PrefixFrom(a, bits).Masked(); !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ecsStep is one question to a subnet-aware resolver: from a source
// address, with or without an ECS option of the client's own, and the
// subnet the resolver forwards (cut to /24 or /56), whose view the answer
// must be.
type ecsStep struct {
	what      string
	from      string // source address ("" for any)
	ecs       string // the client's ECS option, "" for none
	forwarded string // the subnet the resolver sends CoreDNS
	v6        bool   // AAAA, else A
	control   bool   // a positive control: without it the rest proves nothing
}

// client is the client's own address: its ECS address, else its source.
func (s ecsStep) client() netip.Prefix {
	if s.ecs != "" {
		a := netip.MustParsePrefix(s.ecs).Addr()
		return netip.PrefixFrom(a, a.BitLen())
	}
	a := netip.MustParseAddr(s.from)
	return netip.PrefixFrom(a, a.BitLen())
}

// runECSSteps asks web through r for each step in order, one cache.
func runECSSteps(t *testing.T, r *resolver, steps []ecsStep) {
	t.Helper()
	for _, s := range steps {
		qt := dns.TypeA
		if s.v6 {
			qt = dns.TypeAAAA
		}
		var opts []func(*dns.Msg)
		opts = append(opts, edns)
		if s.ecs != "" {
			p := netip.MustParsePrefix(s.ecs)
			opts = append(opts, testkit.WithECS(p.Addr().String(), uint8(p.Bits())))
		}
		m := ask(t, r.addr, "udp", s.from, "web."+zone, qt, opts...)
		got := sorted(m.Answer, "")
		own := viewOf(s.client())
		for _, n := range networksIn(got) {
			if !own[n] {
				t.Errorf("%s (ECS %q from %q) through %s: LEAK: %s addresses to a client off %s: %s", s.what, s.ecs, s.from, r.name, n, n, describe(m))
			}
		}
		want := webAddrs(view(s.forwarded), s.v6)
		if m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			f := t.Errorf
			if s.control {
				f = t.Fatalf
			}
			f("%s (ECS %q from %q; %s forwards %s) through %s: %s; want %v (view %v)", s.what, s.ecs, s.from, r.name, s.forwarded, r.name, describe(m), want, keysOf(view(s.forwarded)))
		}
	}
}

// unboundSubnetCache: unbound's subnetcache module forwards the client's
// ECS option (client-subnet-always-forward), else the client's address,
// cut to a /24 or /56 (max-client-subnet-ipv4/-ipv6), and caches each
// answer for its scope. The order matters: an overlay answer is cached
// first, then clients elsewhere ask; a vpn1 client asks before a client
// off vpn1 in the same /24.
func unboundSubnetCache(t *testing.T, r *resolver) {
	runECSSteps(t, r, []ecsStep{
		{what: "vpn0 client", ecs: "10.100.5.7/32", forwarded: "10.100.5.0/24", control: true},
		{what: "client on another /24, off every overlay, after a vpn0 answer", ecs: "10.101.5.7/32", forwarded: "10.101.5.0/24"},
		{what: "client on neither overlay", ecs: "192.0.2.99/32", forwarded: "192.0.2.0/24"},
		{what: "vpn1 client whose /24 straddles vpn1's /25", ecs: "10.200.7.5/32", forwarded: "10.200.7.0/24"},
		{what: "client off vpn1 in that /24", ecs: "10.200.7.200/32", forwarded: "10.200.7.0/24"},
		{what: "client on the next /24 after that answer", ecs: "10.200.8.9/32", forwarded: "10.200.8.0/24"},
		{what: "no ECS option, from 127.77.9.9 on lab", from: "127.77.9.9", forwarded: "127.77.9.0/24", control: true},
		{what: "no ECS option, from 127.78.9.9 after a lab answer", from: "127.78.9.9", forwarded: "127.78.9.0/24"},
		{what: "no ECS option, from 127.0.0.1", from: "127.0.0.1", forwarded: "127.0.0.0/24"},
		{what: "IPv6 vpn0 client", ecs: "fd00:100:0:5::1/128", forwarded: "fd00:100::/56", v6: true, control: true},
		{what: "IPv6 client on another /56 after a vpn0 answer", ecs: "fd00:101::1/128", forwarded: "fd00:101::/56", v6: true},
		{what: "IPv6 vpn1 client whose /56 straddles vpn1's /57", ecs: "fd00:200:7:1::1/128", forwarded: "fd00:200:7::/56", v6: true},
		{what: "IPv6 client off vpn1 in that /56", ecs: "fd00:200:7:80::1/128", forwarded: "fd00:200:7::/56", v6: true},
		{what: "IPv6 client on the next /56 after that answer", ecs: "fd00:200:7:100::1/128", forwarded: "fd00:200:7:100::/56", v6: true},
	})
	checkGoViews(t, r, "127.77.9.10", "127.0.0.1")
}

// dnsmasqAddSubnet: dnsmasq --add-subnet=24,56 sends the client's address
// cut to a /24 and does not answer such queries from its cache.
func dnsmasqAddSubnet(t *testing.T, r *resolver) {
	runECSSteps(t, r, []ecsStep{
		{what: "from 127.77.4.4 on lab", from: "127.77.4.4", forwarded: "127.77.4.0/24", control: true},
		{what: "from 127.0.0.1 after a lab answer", from: "127.0.0.1", forwarded: "127.0.0.0/24"},
		{what: "from 127.78.4.4 after a lab answer", from: "127.78.4.4", forwarded: "127.78.4.0/24"},
		{what: "from 127.77.4.4 on lab, IPv6", from: "127.77.4.4", forwarded: "127.77.4.0/24", v6: true},
		{what: "from 127.0.0.1, IPv6", from: "127.0.0.1", forwarded: "127.0.0.0/24", v6: true},
	})
	checkGoViews(t, r, "127.77.4.5", "127.0.0.1")
}

// checkGoViews: Go's resolver from a lab source address gets lab's view,
// and from off gets public addresses, through r, in that order.
func checkGoViews(t *testing.T, r *resolver, lab, off string) {
	t.Helper()
	for _, from := range []string{lab, off} {
		a := netip.MustParseAddr(from)
		v := viewOf(netip.PrefixFrom(a, 24).Masked())
		want := append(webAddrs(v, false), webAddrs(v, true)...)
		slices.Sort(want)
		got, err := goResolver(r.addr, from).LookupHost(lookupCtx(t), "web."+zone)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Go LookupHost(web) from %s through %s: %v, %v; want %v (view %v)", from, r.name, got, err, want, keysOf(v))
		}
	}
}

// plainDnsmasqClientECS records what dnsmasq without --add-subnet does with
// a client's own ECS option: it forwards the option as it is and caches the
// tailored answer for every client. That is dnsmasq, not rollcall, and
// rollcall cannot tell such a forwarder from an ECS-aware one: `ecs` must
// only face resolvers that keep answers per subnet (or none). It is logged,
// not asserted, so that a change in dnsmasq shows in the test log.
func plainDnsmasqClientECS(t *testing.T, r *resolver) {
	name := "h1.web." + zone
	first := ask(t, r.addr, "udp", "", name, dns.TypeA, edns, testkit.WithECS("10.100.5.7", 32))
	second := ask(t, r.addr, "udp", "127.0.0.1", name, dns.TypeA, edns)
	if n := networksIn(sorted(second.Answer, "")); len(n) > 0 {
		t.Logf("known hazard: dnsmasq without --add-subnet forwarded a client's ECS option (answer %v) and then served that %v answer from its cache to a client with no ECS: %v. Put `ecs` only behind resolvers that cache per subnet.",
			sorted(first.Answer, ""), n, sorted(second.Answer, ""))
	} else {
		t.Logf("dnsmasq without --add-subnet did not serve a tailored answer to another client: %s then %s", describe(first), describe(second))
	}
}
