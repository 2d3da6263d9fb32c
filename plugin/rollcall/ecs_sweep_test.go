package rollcall

// The EDNS Client Subnet sweep: every source prefix length (0-32, 0-128)
// around the edges of nested and adjacent networks, IPv4 and IPv6. The
// rule it checks (DESIGN.md, Views): a network counts for an ECS query only
// when the whole source prefix lies inside it, and the echoed scope is the
// source prefix, so a resolver that caches the answer for that prefix hands
// no client an overlay address of a network it is not on. Run here through
// the handler (both write paths) and, in e2e_test.go, over real UDP.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// SweepZone is the zone of the ECS sweep's server block.
const SweepZone = "sweep.example."

// sweepNet is one overlay of the sweep: its CIDRs, and the addresses its
// one instance has on it (which name the network in an answer).
type sweepNet struct {
	name  string
	cidrs []string
	v4    string
	v6    string
}

// Nested (n8 holds lo and hi), adjacent (lo and hi; v6b and v6c) and mixed
// (both holds an IPv4 and an IPv6 range).
var sweepNets = []sweepNet{
	{name: "n8", cidrs: []string{"10.0.0.0/8"}, v4: "100.64.1.1", v6: "fd99::1"},
	{name: "lo", cidrs: []string{"10.200.7.0/25"}, v4: "100.64.2.1", v6: "fd99::2"},
	{name: "hi", cidrs: []string{"10.200.7.128/25"}, v4: "100.64.3.1", v6: "fd99::3"},
	{name: "v6a", cidrs: []string{"fd00:1::/48"}, v4: "100.64.4.1", v6: "fd99::4"},
	{name: "v6b", cidrs: []string{"fd00:1:0:1::/64"}, v4: "100.64.5.1", v6: "fd99::5"},
	{name: "v6c", cidrs: []string{"fd00:1:0:2::/64"}, v4: "100.64.6.1", v6: "fd99::6"},
	{name: "both", cidrs: []string{"172.16.9.0/24", "fd00:9::/56"}, v4: "100.64.7.1", v6: "fd99::7"},
}

// SweepBody is the Corefile body of the sweep's rollcall block.
func SweepBody() string {
	var b strings.Builder
	b.WriteString("ecs\n")
	for _, n := range sweepNets {
		fmt.Fprintf(&b, "network %s %s\n", n.name, strings.Join(n.cidrs, " "))
	}
	return b.String()
}

// SweepKVs is the sweep's registry: service "sw" with one instance per
// network, on that network and public.
func SweepKVs() []FixtureKV {
	var kvs []FixtureKV
	for i, n := range sweepNets {
		h := fmt.Sprintf("e%d", i)
		kvs = append(kvs,
			FixtureKV{"/rollcall/hosts/" + h + "/host", fmt.Sprintf(`{"name":%q,"addrs":{"public":["192.0.2.%d","2001:db8::%d"],%q:[%q,%q]}}`, h, i+1, i+1, n.name, n.v4, n.v6)},
			FixtureKV{"/rollcall/hosts/" + h + "/services/sw", fmt.Sprintf(`{"service":"sw","host":%q}`, h)})
	}
	return kvs
}

// SweepPrefixes is every ECS source prefix the sweep asks with: each
// length from 0 to the family's size, at addresses on both sides of each
// network's edges.
func SweepPrefixes() []netip.Prefix {
	bases := []string{
		"10.200.7.0", "10.200.7.127", "10.200.7.128", "10.200.7.255", "10.200.6.255", "10.200.8.0",
		"10.0.0.0", "10.255.255.255", "11.0.0.0", "9.255.255.255", "172.16.9.77", "172.16.8.255",
		"fd00:1::", "fd00:1:0:0:ffff:ffff:ffff:ffff", "fd00:1:0:1::9", "fd00:1:0:1:ffff::", "fd00:1:0:2::",
		"fd00:1:0:3::", "fd00:0:ffff:ffff::", "fd00:2::", "fd00:9:0:ff::1", "fd00:9:0:100::",
	}
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, b := range bases {
		a := netip.MustParseAddr(b)
		for bits := 0; bits <= a.BitLen(); bits++ {
			p, _ := a.Prefix(bits)
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// sweepInside reports whether every address of p is on n: its first and
// last addresses are in one of n's ranges (worked out apart from the
// plugin's own prefix arithmetic).
func sweepInside(n sweepNet, p netip.Prefix) bool {
	for _, c := range n.cidrs {
		cp := netip.MustParsePrefix(c)
		if cp.Contains(p.Addr()) && cp.Contains(testkit.LastAddr(p)) {
			return true
		}
	}
	return false
}

// CheckSweep checks one answer to "sw.<SweepZone>" (A or AAAA) asked with
// ECS p: an overlay address only for a network holding all of p, that
// network's address for every instance whose network holds all of p, and
// the client subnet echoed with p as its scope.
func CheckSweep(t testing.TB, p netip.Prefix, qtype uint16, m *dns.Msg) {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess {
		t.Errorf("ECS %v %s: rcode %s", p, dns.TypeToString[qtype], dns.RcodeToString[m.Rcode])
		return
	}
	var want []string
	for i, n := range sweepNets {
		switch {
		case sweepInside(n, p) && qtype == dns.TypeA:
			want = append(want, n.v4)
		case sweepInside(n, p):
			want = append(want, n.v6)
		case qtype == dns.TypeA:
			want = append(want, fmt.Sprintf("192.0.2.%d", i+1))
		default:
			want = append(want, fmt.Sprintf("2001:db8::%d", i+1))
		}
	}
	var got []string
	for _, rr := range m.Answer {
		var ip net.IP
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A
		case *dns.AAAA:
			ip = r.AAAA
		}
		a, _ := netip.AddrFromSlice(ip)
		got = append(got, a.Unmap().String())
		for _, n := range sweepNets {
			if (a.Unmap().String() == n.v4 || a.String() == n.v6) && !sweepInside(n, p) {
				t.Errorf("LEAK: ECS %v got %s, an address on %s, which does not hold all of %v", p, a, n.name, p)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ECS %v %s: answer %v, want %v", p, dns.TypeToString[qtype], got, want)
	}
	var echo *dns.EDNS0_SUBNET
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				echo = s
			}
		}
	}
	if echo == nil {
		t.Errorf("ECS %v: no client subnet echoed", p)
		return
	}
	if int(echo.SourceScope) != p.Bits() || int(echo.SourceNetmask) != p.Bits() {
		t.Errorf("ECS %v: echoed source /%d scope /%d, want both /%d (the answer holds for the whole source prefix, no wider)", p, echo.SourceNetmask, echo.SourceScope, p.Bits())
	}
}

// WithPrefixECS adds an EDNS0 client subnet option for p.
func WithPrefixECS(p netip.Prefix) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
		if p.Addr().Is4() {
			e.Family = 1
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
}

// sweepState decodes the sweep's registry as the loader would.
func sweepState(t testing.TB) *state {
	st, _ := fixtureState(t)
	st = newState(st.keys)
	ch := newChanges()
	for i, kv := range SweepKVs() {
		if err := st.put(kv.Key, []byte(kv.Value), int64(i+1), ch); err != nil {
			t.Fatalf("sweep record %s: %v", kv.Key, err)
		}
		st.rev = int64(i + 1)
	}
	return st
}

// TestECSSweepHandler asks every sweep prefix through the handler, from a
// source address on no network, on both ways out (packed and dns.Msg).
func TestECSSweepHandler(t *testing.T) {
	h := blockHandler(t, SweepZone, SweepBody(), sweepState(t))
	n := 0
	for _, p := range SweepPrefixes() {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r := new(dns.Msg)
			r.SetQuestion("sw."+SweepZone, qtype)
			WithPrefixECS(p)(r)
			rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: "192.0.2.200"})
			if _, err := h.ServeDNS(t.Context(), rec, r); err != nil {
				t.Fatalf("ServeDNS: %v", err)
			}
			CheckSweep(t, p, qtype, rec.Msg)
			cw := serveWrapped(t, h, r, "192.0.2.200", false)
			if cw.raw == nil {
				t.Fatalf("ECS %v: answer not packed", p)
			}
			m := new(dns.Msg)
			if err := m.Unpack(cw.raw); err != nil {
				t.Fatalf("ECS %v: packed answer does not unpack: %v", p, err)
			}
			CheckSweep(t, p, qtype, m)
			n++
		}
	}
	t.Logf("%d prefixes, %d questions, each on both ways out", len(SweepPrefixes()), n)
}
