package resolvers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// ask sends one question to addr over netw ("udp" or "tcp") from source
// address from ("" for any) and fails the test when no answer comes, after
// a second try: a UDP datagram may be dropped on a busy machine.
func ask(t *testing.T, addr, netw, from, name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	var err error
	for try := 0; try < 2; try++ {
		var m *dns.Msg
		if m, err = testkit.Exchange(netw, addr, from, name, qtype, opts...); err == nil {
			return m
		}
	}
	t.Fatalf("%s %s over %s from %q to %s: %v", name, dns.TypeToString[qtype], netw, from, addr, err)
	return nil
}

// edns is the EDNS0 buffer size every question of these tests offers,
// except the truncation checks: the size resolvers use themselves.
var edns = testkit.WithEDNS0(1232)

// sorted returns the A and AAAA addresses of rrs owned by owner ("" for
// any owner), sorted.
func sorted(rrs []dns.RR, owner string) []string {
	var out []string
	for _, rr := range rrs {
		if owner != "" && !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		out = append(out, testkit.Addrs([]dns.RR{rr})...)
	}
	sort.Strings(out)
	return out
}

// ofType returns the records of rrs of type qtype.
func ofType(rrs []dns.RR, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// hasSOA reports whether the authority section holds the zone's SOA, as a
// negative answer must (RFC 2308: it carries the negative TTL).
func hasSOA(m *dns.Msg, z string) bool {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, z) {
			return true
		}
	}
	return false
}

// ecsOf returns the client subnet option of m's OPT record, or nil.
func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

// networksIn returns the networks (by networkOf) of the addresses in addrs
// that are on an overlay, sorted and unique.
func networksIn(addrs []string) []string {
	netOf := networkOf()
	var out []string
	for _, a := range addrs {
		if n, ok := netOf[a]; ok && n != "public" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// viewOf is the view a client known by the prefix p must get (the rule of
// the issue, written out apart from the plugin): the overlays one of whose
// ranges holds the whole of p. A prefix straddling an overlay's edge holds
// addresses off it, and a cache reuses the answer for all of them.
func viewOf(p netip.Prefix) map[string]bool {
	v := map[string]bool{}
	for _, o := range overlays {
		for _, c := range strings.Fields(o.cidrs) {
			cp := netip.MustParsePrefix(c)
			if cp.Addr().Is4() == p.Addr().Is4() && cp.Bits() <= p.Bits() && cp.Contains(p.Addr()) {
				v[o.name] = true
			}
		}
	}
	return v
}

// view is viewOf for a prefix written as text.
func view(p string) map[string]bool { return viewOf(netip.MustParsePrefix(p)) }

// goResolver is Go's own resolver (PreferGo) sending every question to
// addr, from source address from ("" for any): Go's parsing, its TCP
// fallback on TC and its reading of CNAME chains are what Go programs get.
// Go's errors still name the server of /etc/resolv.conf ("lookup x on
// 10.0.0.53:53"), but Dial sends every question to addr.
func goResolver(addr, from string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if from != "" {
			ip := net.ParseIP(from)
			if strings.HasPrefix(network, "tcp") {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			} else {
				d.LocalAddr = &net.UDPAddr{IP: ip}
			}
		}
		return d.DialContext(ctx, network, addr)
	}}
}

// lookupCtx bounds one Go lookup.
func lookupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// isNotFound reports whether err is Go's "no such host" (NXDOMAIN, or
// NODATA for the type asked).
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// describe is a short form of a message for failure output.
func describe(m *dns.Msg) string {
	if m == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s aa=%v tc=%v answer=[", dns.RcodeToString[m.Rcode], m.Authoritative, m.Truncated)
	for i, rr := range m.Answer {
		if i == 8 {
			fmt.Fprintf(&b, " ...%d more", len(m.Answer)-i)
			break
		}
		b.WriteString(" " + strings.ReplaceAll(rr.String(), "\t", " "))
	}
	b.WriteString(" ] authority=[")
	for _, rr := range m.Ns {
		b.WriteString(" " + strings.ReplaceAll(rr.String(), "\t", " "))
	}
	b.WriteString(" ]")
	if e := ecsOf(m); e != nil {
		fmt.Fprintf(&b, " ecs=%s/%d/%d", e.Address, e.SourceNetmask, e.SourceScope)
	}
	return b.String()
}
