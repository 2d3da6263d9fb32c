package security

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestNoZoneTransferNoOpenResolver: the registry is not handed out whole and
// the server is no open resolver. AXFR and IXFR of the zone (over TCP and
// UDP) are refused with no records; names outside the served zones get
// REFUSED with no answer and are never sent on (a loopback upstream sees no
// query). Only a Corefile that forwards on purpose (a `.` block with
// `forward` to that upstream) answers them, and its rollcall zone still
// refuses transfers.
func TestNoZoneTransferNoOpenResolver(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	hv, _ := registry.EncodeHost(&registry.Host{Name: "h1", Addrs: mustAddrs(map[string][]string{"public": {"192.0.2.1"}})})
	iv, _ := registry.EncodeInstance(&registry.Instance{Service: "web", Host: "h1"})
	testkit.Put(t, cli, keys.Host("h1"), string(hv))
	testkit.Put(t, cli, keys.Instance("h1", "web"), string(iv))

	upstream, upstreamQueries := startUpstream(t)
	const zone = "infra.example.com."

	closed := freeDualPort(t)
	closedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(closed))
	testkit.StartCoreDNS(t, fmt.Sprintf(`%s:%d {
    bind 127.0.0.1 ::1
    rollcall {
        endpoint %s
    }
}`, zone, closed, e.ClientURL))

	forwarding := testkit.FreePort(t)
	fwdAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(forwarding))
	testkit.StartCoreDNS(t, fmt.Sprintf(`%s:%d {
    bind 127.0.0.1
    rollcall {
        endpoint %s
    }
}
.:%d {
    bind 127.0.0.1
    forward . %s
}`, zone, forwarding, e.ClientURL, forwarding, upstream))

	for _, addr := range []string{closedAddr, fwdAddr} {
		testkit.Eventually(t, wait, "web never answered on "+addr, func() bool {
			r, err := testkit.Exchange("udp", addr, "", "web."+zone, dns.TypeA)
			return err == nil && len(r.Answer) == 1
		})
	}

	ixfr := func(m *dns.Msg) {
		// An IXFR carries the client's SOA in the authority section.
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
			Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1}}
	}
	transfers := []struct {
		name  string
		qname string
		qtype uint16
		opts  []func(*dns.Msg)
	}{
		{name: "AXFR of the zone", qname: zone, qtype: dns.TypeAXFR},
		{name: "IXFR of the zone", qname: zone, qtype: dns.TypeIXFR, opts: []func(*dns.Msg){ixfr}},
		{name: "AXFR of a service", qname: "web." + zone, qtype: dns.TypeAXFR},
	}
	for _, addr := range []string{closedAddr, fwdAddr} {
		for _, tc := range transfers {
			for _, netw := range []string{"tcp", "udp"} {
				t.Run(fmt.Sprintf("%s over %s to %s", tc.name, netw, addr), func(t *testing.T) {
					r := testkit.Query(t, netw, addr, "", tc.qname, tc.qtype, tc.opts...)
					if r.Rcode != dns.RcodeRefused && r.Rcode != dns.RcodeNotImplemented || len(r.Answer) != 0 {
						t.Errorf("%s %s: rcode %s with %d answers %v; want REFUSED (or NOTIMP) and no records",
							tc.qname, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], len(r.Answer), r.Answer)
					}
				})
			}
		}
	}

	outside := []struct {
		qname string
		qtype uint16
	}{
		{"example.org.", dns.TypeA},
		{"google.com.", dns.TypeA},
		{".", dns.TypeNS},
		{"com.", dns.TypeSOA},
		{"example.com.", dns.TypeA}, // the zone's parent
		{"www.example.org.", dns.TypeAAAA},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR},
	}
	for _, q := range outside {
		for _, netw := range []string{"udp", "tcp"} {
			for _, from := range []string{"127.0.0.1", "::1"} {
				server := closedAddr
				if from == "::1" {
					server = net.JoinHostPort("::1", strconv.Itoa(closed))
				}
				t.Run(fmt.Sprintf("%s %s over %s from %s: refused", q.qname, dns.TypeToString[q.qtype], netw, from), func(t *testing.T) {
					r := testkit.Query(t, netw, server, from, q.qname, q.qtype)
					if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 || r.RecursionAvailable {
						t.Errorf("rcode %s, %d answers, RA %v; want REFUSED, no answer, no recursion offered",
							dns.RcodeToString[r.Rcode], len(r.Answer), r.RecursionAvailable)
					}
				})
			}
		}
	}
	if n := upstreamQueries.Load(); n != 0 {
		t.Errorf("the upstream saw %d queries from the non-forwarding server; want none (it must never recurse)", n)
	}

	t.Run("a Corefile that forwards on purpose answers", func(t *testing.T) {
		for _, netw := range []string{"udp", "tcp"} {
			r := testkit.Query(t, netw, fwdAddr, "", "example.org.", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || len(testkit.Addrs(r.Answer)) != 1 || testkit.Addrs(r.Answer)[0] != upstreamAnswer {
				t.Errorf("example.org. over %s via forward: rcode %s, answer %v; want %s from the upstream", netw, dns.RcodeToString[r.Rcode], r.Answer, upstreamAnswer)
			}
		}
		if upstreamQueries.Load() == 0 {
			t.Error("the upstream saw no query")
		}
		// The rollcall zone is still answered by rollcall, not forwarded.
		before := upstreamQueries.Load()
		r := testkit.Query(t, "udp", fwdAddr, "", "nosuch."+zone, dns.TypeA)
		if r.Rcode != dns.RcodeNameError || upstreamQueries.Load() != before {
			t.Errorf("nosuch in the zone: rcode %s, upstream queries %d -> %d; want NXDOMAIN from rollcall", dns.RcodeToString[r.Rcode], before, upstreamQueries.Load())
		}
	})
}

// upstreamAnswer is the one address the loopback upstream answers with.
const upstreamAnswer = "203.0.113.53"

// startUpstream runs a loopback DNS server (UDP and TCP on one port) that
// answers every A query with upstreamAnswer, and counts the queries it sees.
func startUpstream(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.ParseIP(upstreamAnswer)}}
		}
		_ = w.WriteMsg(m)
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
	for _, netw := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: addr, Net: netw, Handler: h, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("upstream DNS over %s: %v", netw, err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return addr, &n
}
