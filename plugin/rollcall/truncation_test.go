package rollcall_test

// Issue #7, large answers: a service with 500 instances served by a real
// CoreDNS. Over UDP an answer fits the client's buffer (512 bytes, or its
// EDNS0 size) with TC set and holds only correct records; over TCP it is
// complete. Sizes are measured on the wire bytes the server sent.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

const (
	bigZone      = "infra.example.com."
	bigService   = "big"
	bigInstances = 500
	bigTTL       = 5 // the plugin's default ttl
)

// bigInst is what one instance of the big service is served with.
type bigInst struct {
	v4, v6 net.IP
	port   uint16
}

func bigHost(i int) string { return fmt.Sprintf("t%03d", i) }

// bigData returns the instances by host name and writes them to etcd, a
// hundred keys per transaction.
func bigData(t *testing.T, cli *clientv3.Client) map[string]bigInst {
	t.Helper()
	insts := map[string]bigInst{}
	var ops []clientv3.Op
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("write instances: %v", err)
		}
		ops = ops[:0]
	}
	for i := 0; i < bigInstances; i++ {
		h := bigHost(i)
		in := bigInst{
			v4:   net.ParseIP(fmt.Sprintf("10.9.%d.%d", i/200, i%200+1)).To4(),
			v6:   net.ParseIP(fmt.Sprintf("2001:db8:9::%x", i+1)),
			port: uint16(8000 + i),
		}
		insts[h] = in
		v := fmt.Sprintf(`{"service":%q,"host":%q,"addrs":{"public":[%q,%q]},"ports":[{"name":"http","port":%d,"proto":"tcp"}]}`,
			bigService, h, in.v4, in.v6, in.port)
		ops = append(ops, clientv3.OpPut("/rollcall/hosts/"+h+"/services/"+bigService, v))
		if len(ops) == 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
	return insts
}

// exchangeWire sends m and returns the reply and its size on the wire.
func exchangeWire(t *testing.T, netw, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	co, err := dns.DialTimeout(netw, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", netw, addr, err)
	}
	defer co.Close()
	co.UDPSize = dns.MaxMsgSize // read whatever the server sends
	if err := co.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := co.WriteMsg(m); err != nil {
		t.Fatalf("send over %s: %v", netw, err)
	}
	b, err := co.ReadMsgHeader(nil)
	if err != nil {
		t.Fatalf("read over %s: %v", netw, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("reply over %s does not unpack: %v", netw, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r, len(b)
}

// checkBigRecords checks that every record of m is a correct record of the
// big service for a query of name and qtype, and returns how many answer and
// additional records it has.
func checkBigRecords(t *testing.T, m *dns.Msg, name string, qtype uint16, insts map[string]bigInst) (answers, extras int) {
	t.Helper()
	svcName := bigService + "." + bigZone
	target := func(n string) (string, bool) {
		h, ok := strings.CutSuffix(strings.ToLower(n), "."+svcName)
		_, known := insts[h]
		return h, ok && known
	}
	v4s, v6s := map[string]bool{}, map[string]bool{}
	for _, in := range insts {
		v4s[in.v4.String()], v6s[in.v6.String()] = true, true
	}
	seen := map[string]bool{}
	targets := map[string]bool{}
	for _, rr := range m.Answer {
		if seen[rr.String()] {
			t.Errorf("answer twice: %s", rr)
		}
		seen[rr.String()] = true
		h := rr.Header()
		if !strings.EqualFold(h.Name, name) || h.Ttl != bigTTL || h.Class != dns.ClassINET || h.Rrtype != qtype {
			t.Errorf("answer %s: want owner %s, type %s, ttl %d", rr, name, dns.TypeToString[qtype], bigTTL)
			continue
		}
		switch rr := rr.(type) {
		case *dns.A:
			if !v4s[rr.A.String()] {
				t.Errorf("answer %s: not an address of %s", rr, bigService)
			}
		case *dns.AAAA:
			if !v6s[rr.AAAA.String()] {
				t.Errorf("answer %s: not an address of %s", rr, bigService)
			}
		case *dns.SRV:
			host, ok := target(rr.Target)
			if !ok || rr.Port != insts[host].port || rr.Priority != 10 || rr.Weight != 10 {
				t.Errorf("answer %s: not an SRV of an instance of %s", rr, bigService)
			}
			targets[host] = true
		}
	}
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		if seen[rr.String()] {
			t.Errorf("record twice: %s", rr)
		}
		seen[rr.String()] = true
		host, ok := target(rr.Header().Name)
		if !ok || rr.Header().Ttl != bigTTL {
			t.Errorf("additional %s: owner not an instance of %s, or ttl not %d", rr, bigService, bigTTL)
			continue
		}
		if !targets[host] {
			t.Errorf("additional %s: not the address of an SRV target in the answer", rr)
		}
		switch rr := rr.(type) {
		case *dns.A:
			if !rr.A.Equal(insts[host].v4) {
				t.Errorf("additional %s: %s has %s", rr, host, insts[host].v4)
			}
		case *dns.AAAA:
			if !rr.AAAA.Equal(insts[host].v6) {
				t.Errorf("additional %s: %s has %s", rr, host, insts[host].v6)
			}
		default:
			t.Errorf("additional %s: want A or AAAA", rr)
		}
		extras++
	}
	if len(m.Ns) != 0 {
		t.Errorf("authority %v in an answer", m.Ns)
	}
	return len(m.Answer), extras
}

// TestTruncationLargeService queries A, AAAA, SRV and the _port._proto SRV
// name of a 500-instance service over UDP (512 bytes, and an EDNS0 buffer of
// 4096) and TCP.
func TestTruncationLargeService(t *testing.T) {
	e := testkit.StartEtcd(t)
	insts := bigData(t, e.Client(t))
	_, ports := testkit.StartCoreDNSPorts(t, 1, func(p []int) string {
		return fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n  }\n}\n", bigZone, p[0], e.ClientURL)
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))

	names := []struct {
		name  string
		qname string
		qtype uint16
		// rrLen is the most one more answer record (with its additional
		// records) can take on the wire: a reply cut short of its buffer by
		// more than this left out records that fit.
		rrLen int
	}{
		{name: "A", qname: bigService + "." + bigZone, qtype: dns.TypeA, rrLen: 40},
		{name: "AAAA", qname: bigService + "." + bigZone, qtype: dns.TypeAAAA, rrLen: 52},
		{name: "SRV", qname: bigService + "." + bigZone, qtype: dns.TypeSRV, rrLen: 70 + 45 + 57},
		{name: "port SRV", qname: "_http._tcp." + bigService + "." + bigZone, qtype: dns.TypeSRV, rrLen: 80 + 45 + 57},
	}
	transports := []struct {
		name string
		netw string
		edns uint16 // 0: no OPT record
		// limit is the largest reply allowed; complete replies must hold
		// every record and have TC clear.
		limit    int
		complete bool
	}{
		{name: "udp 512", netw: "udp", limit: dns.MinMsgSize},
		{name: "udp EDNS0 4096", netw: "udp", edns: 4096, limit: 4096},
		{name: "tcp", netw: "tcp", limit: dns.MaxMsgSize, complete: true},
		{name: "tcp EDNS0 1232", netw: "tcp", edns: 1232, limit: dns.MaxMsgSize, complete: true},
	}
	for _, n := range names {
		for _, tr := range transports {
			t.Run(n.name+"/"+tr.name, func(t *testing.T) {
				q := new(dns.Msg)
				q.SetQuestion(n.qname, n.qtype)
				if tr.edns > 0 {
					q.SetEdns0(tr.edns, false)
				}
				m, size := exchangeWire(t, tr.netw, addr, q)
				if m.Rcode != dns.RcodeSuccess {
					t.Fatalf("rcode %s, want NOERROR", dns.RcodeToString[m.Rcode])
				}
				if size > tr.limit {
					t.Errorf("reply of %d bytes, more than %d", size, tr.limit)
				}
				if tr.edns > 0 && m.IsEdns0() == nil {
					t.Errorf("no OPT record in the reply to an EDNS0 query")
				}
				ans, extra := checkBigRecords(t, m, n.qname, n.qtype, insts)
				t.Logf("%d answers, %d additional, %d bytes, TC %v", ans, extra, size, m.Truncated)
				if ans == 0 {
					t.Fatalf("no answer records")
				}
				if !tr.complete {
					if !m.Truncated {
						t.Errorf("%d of %d records in %d bytes, TC not set", ans, bigInstances, size)
					}
					if size+n.rrLen <= tr.limit {
						t.Errorf("%d records in %d bytes of %d: more would have fit", ans, size, tr.limit)
					}
					return
				}
				if m.Truncated {
					t.Errorf("TC set over TCP (%d answers, %d additional, %d bytes)", ans, extra, size)
				}
				if ans != bigInstances {
					t.Errorf("%d answers over TCP, want all %d", ans, bigInstances)
				}
				if n.qtype == dns.TypeSRV && extra != 2*bigInstances && size+n.rrLen <= tr.limit {
					t.Errorf("%d additional addresses in %d bytes, want all %d as they fit", extra, size, 2*bigInstances)
				}
			})
		}
	}
}

// TestMaxAnswers serves the 500-instance service under `max_answers 100`:
// every answer (A, AAAA, SRV, port SRV) holds at most 100 instances, a
// fresh random subset per query, the SRV additional records belong to the
// subset's targets, and over UDP a subset that does not fit still sets TC.
func TestMaxAnswers(t *testing.T) {
	const max = 100
	e := testkit.StartEtcd(t)
	insts := bigData(t, e.Client(t))
	_, ports := testkit.StartCoreDNSPorts(t, 1, func(p []int) string {
		return fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n    max_answers %d\n  }\n}\n", bigZone, p[0], e.ClientURL, max)
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	svc := bigService + "." + bigZone
	for _, tt := range []struct {
		qname string
		qtype uint16
	}{
		{svc, dns.TypeA}, {svc, dns.TypeAAAA}, {svc, dns.TypeSRV}, {"_http._tcp." + svc, dns.TypeSRV},
	} {
		t.Run(dns.TypeToString[tt.qtype]+" "+tt.qname, func(t *testing.T) {
			union := map[string]bool{}
			var first []string
			for i := 0; i < 5; i++ {
				q := new(dns.Msg)
				q.SetQuestion(tt.qname, tt.qtype)
				m, _ := exchangeWire(t, "tcp", addr, q)
				ans, extra := checkBigRecords(t, m, tt.qname, tt.qtype, insts)
				if ans != max || m.Truncated {
					t.Fatalf("%d answers over TCP, TC %v; want %d, no TC", ans, m.Truncated, max)
				}
				if tt.qtype == dns.TypeSRV && extra != 2*max {
					t.Errorf("%d additional addresses, want the %d of the subset's targets", extra, 2*max)
				}
				got := answers(m)
				for _, a := range got {
					union[a] = true
				}
				if i == 0 {
					first = got
				}
			}
			// Five subsets of 100 out of 500: the same five times is a
			// chance of about 1e-400; a fixed window would repeat.
			if len(union) <= max {
				t.Errorf("5 queries answered the same %d instances (first: %v...): want a fresh subset per query", len(union), first[:3])
			}
			q := new(dns.Msg)
			q.SetQuestion(tt.qname, tt.qtype)
			m, size := exchangeWire(t, "udp", addr, q)
			ans, _ := checkBigRecords(t, m, tt.qname, tt.qtype, insts)
			if !m.Truncated || ans == 0 || ans >= max || size > dns.MinMsgSize {
				t.Errorf("UDP 512: %d answers in %d bytes, TC %v; want some of the subset and TC", ans, size, m.Truncated)
			}
		})
	}
}
