package rollcall_test

// Issue #14, health-gated DNS: records written to a real etcd in each state,
// and maintenance records, followed by a real CoreDNS over UDP and TCP.

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

const (
	openZone   = "open.example.com."
	closedZone = "closed.example.com."
)

// healthStack is etcd and CoreDNS with two blocks on one port: one that
// fails open (the default) and one with `fail_open off`.
type healthStack struct {
	cli  *clientv3.Client
	addr string
}

func startHealthStack(t *testing.T) *healthStack {
	t.Helper()
	e := testkit.StartEtcd(t)
	s := &healthStack{cli: e.Client(t)}
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n  }\n}\n%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n    fail_open off\n  }\n}\n",
		openZone, port, e.ClientURL, closedZone, port, e.ClientURL))
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return s
}

// rrTexts writes records as "TYPE rdata", the zone written Z, sorted.
func rrTexts(rrs []dns.RR, zone string) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		rdata := strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
		out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+strings.ReplaceAll(rdata, zone, "Z"))
	}
	sort.Strings(out)
	return out
}

// expect waits until name (relative to zone) answers qtype with rcode and
// exactly want ("TYPE rdata", any order) over UDP, then checks TCP gives
// the same. A negative answer must carry the zone's SOA.
func (s *healthStack) expect(t *testing.T, zone, name string, qtype uint16, rcode int, want ...string) {
	t.Helper()
	sort.Strings(want)
	fqdn := name + "." + zone
	describe := func(m *dns.Msg) string {
		return fmt.Sprintf("%s %q", dns.RcodeToString[m.Rcode], rrTexts(m.Answer, zone))
	}
	matches := func(m *dns.Msg) bool {
		if m.Rcode != rcode || strings.Join(rrTexts(m.Answer, zone), "\n") != strings.Join(want, "\n") {
			return false
		}
		return len(want) > 0 || (len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA)
	}
	var last *dns.Msg
	testkit.Eventually(t, 15*time.Second, fmt.Sprintf("%s %s never answered %s %q", fqdn, dns.TypeToString[qtype], dns.RcodeToString[rcode], want), func() bool {
		m, err := testkit.Exchange("udp", s.addr, "", fqdn, qtype)
		if err != nil {
			return false
		}
		last = m
		return matches(m)
	})
	if last == nil {
		return
	}
	if m := testkit.Query(t, "tcp", s.addr, "", fqdn, qtype); !matches(m) {
		t.Errorf("%s %s over TCP: %s, want %s %q", fqdn, dns.TypeToString[qtype], describe(m), dns.RcodeToString[rcode], want)
	}
}

func (s *healthStack) inst(t *testing.T, host, state, extra string) {
	t.Helper()
	v := `{"service":"hx","host":"` + host + `","ports":[{"name":"http","port":80,"proto":"tcp"}]`
	if state != "" {
		v += `,"state":"` + state + `","since":1700000000`
	}
	testkit.Put(t, s.cli, "/rollcall/hosts/"+host+"/services/hx", v+extra+"}")
}

// TestHealthTransitions moves instances through every state and into and
// out of maintenance, and checks each name kind follows every step.
func TestHealthTransitions(t *testing.T) {
	s := startHealthStack(t)
	testkit.Put(t, s.cli, "/rollcall/hosts/a1/host", `{"name":"a1","addrs":{"public":["192.0.2.41"]}}`)
	testkit.Put(t, s.cli, "/rollcall/hosts/a2/host", `{"name":"a2","addrs":{"public":["192.0.2.42"]}}`)
	const (
		a1, a2   = "A 192.0.2.41", "A 192.0.2.42"
		srv1     = "SRV 10 10 80 a1.hx.Z"
		srv2     = "SRV 10 10 80 a2.hx.Z"
		srv1Warn = "SRV 10 1 80 a1.hx.Z"
	)

	t.Run("an older agent's record: passing", func(t *testing.T) {
		s.inst(t, "a1", "", "")
		s.inst(t, "a2", "passing", "")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
		s.expect(t, openZone, "hx", dns.TypeSRV, dns.RcodeSuccess, srv1, srv2)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=passing"`)
	})
	t.Run("warning: served with weight 1", func(t *testing.T) {
		s.inst(t, "a1", "warning", "")
		s.expect(t, openZone, "_http._tcp.hx", dns.TypeSRV, dns.RcodeSuccess, srv1Warn, srv2)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=warning"`)
	})
	t.Run("critical: left out, its own name still answers", func(t *testing.T) {
		s.inst(t, "a1", "critical", `,"reason":"http: connection refused"`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
		s.expect(t, openZone, "hx", dns.TypeSRV, dns.RcodeSuccess, srv2)
		s.expect(t, openZone, "a1.hx", dns.TypeA, dns.RcodeSuccess, a1)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=critical"`)
	})
	t.Run("draining: left out", func(t *testing.T) {
		s.inst(t, "a1", "draining", "")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=draining"`)
	})
	t.Run("none in service: fail open serves the critical, never the draining", func(t *testing.T) {
		answersBefore := metric(t, "coredns_rollcall_fail_open_answers_total", nil)
		gaugeBefore := metric(t, "coredns_rollcall_services_failing_open", nil)
		s.inst(t, "a2", "critical", "")
		s.expect(t, openZone, "a2.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=critical"`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
		s.expect(t, openZone, "_http._tcp.hx", dns.TypeSRV, dns.RcodeSuccess, srv2)
		// fail_open off: the service is an empty non-terminal, its
		// instances' names below it still answer.
		s.expect(t, closedZone, "hx", dns.TypeA, dns.RcodeSuccess)
		s.expect(t, closedZone, "_http._tcp.hx", dns.TypeSRV, dns.RcodeNameError)
		s.expect(t, closedZone, "a2.hx", dns.TypeA, dns.RcodeSuccess, a2)
		if got := metric(t, "coredns_rollcall_services_failing_open", nil) - gaugeBefore; got != 1 {
			t.Errorf("services failing open went up by %v, want 1 (the open block only)", got)
		}
		if got := metric(t, "coredns_rollcall_fail_open_answers_total", nil) - answersBefore; got < 4 {
			t.Errorf("fail open answers counted: %v, want at least the 4 asked", got)
		}
		s.inst(t, "a1", "passing", "")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1)
		s.expect(t, closedZone, "hx", dns.TypeA, dns.RcodeSuccess, a1)
		if got := metric(t, "coredns_rollcall_services_failing_open", nil) - gaugeBefore; got != 0 {
			t.Errorf("services failing open after a1 passed: %v above before, want 0", got)
		}
	})
	t.Run("host maintenance ends by itself at until", func(t *testing.T) {
		s.inst(t, "a2", "passing", "")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
		until := time.Now().Unix() + 3
		testkit.Put(t, s.cli, "/rollcall/maintenance/a1", fmt.Sprintf(`{"reason":"kernel upgrade","who":"test","until":%d}`, until))
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=maintenance"`)
		// Nothing is written to etcd now: the loader's timer brings a1
		// back once until has passed.
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
		s.expect(t, openZone, "a1.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=passing"`)
		if now := time.Now().Unix(); now < until {
			t.Errorf("maintenance until %d ended at %d, before its end", until, now)
		}
		testkit.Delete(t, s.cli, "/rollcall/maintenance/a1")
	})
	t.Run("instance maintenance, deleted", func(t *testing.T) {
		testkit.Put(t, s.cli, "/rollcall/maintenance/a2/hx", `{"reason":"disk swap","who":"test"}`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1)
		s.expect(t, openZone, "a2.hx", dns.TypeTXT, dns.RcodeSuccess, `TXT "state=maintenance"`)
		testkit.Delete(t, s.cli, "/rollcall/maintenance/a2/hx")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
	})
	t.Run("maintenance and critical: fail open leaves maintenance out", func(t *testing.T) {
		s.inst(t, "a1", "critical", "")
		s.inst(t, "a2", "critical", "")
		testkit.Put(t, s.cli, "/rollcall/maintenance/a1", `{"reason":"kernel upgrade"}`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
		testkit.Put(t, s.cli, "/rollcall/maintenance/a2", `{"reason":"kernel upgrade"}`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess)
		s.expect(t, openZone, "a2.hx", dns.TypeA, dns.RcodeSuccess, a2)
	})
	t.Run("garbage over a maintenance record ends it", func(t *testing.T) {
		s.inst(t, "a1", "passing", "")
		s.inst(t, "a2", "passing", "")
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess)
		testkit.Put(t, s.cli, "/rollcall/maintenance/a1", `{"who":"no reason given"}`)
		testkit.Put(t, s.cli, "/rollcall/maintenance/a2", `not json`)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a1, a2)
	})
	t.Run("a bad state removes the instance", func(t *testing.T) {
		s.inst(t, "a1", "sick", "")
		s.expect(t, openZone, "a1.hx", dns.TypeA, dns.RcodeNameError)
		s.expect(t, openZone, "hx", dns.TypeA, dns.RcodeSuccess, a2)
	})
}
