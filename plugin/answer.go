package rollcall

// Response building: each name kind's records for the asked type, picked per
// instance by the client's view, rotated, and bounded for UDP.

import (
	"math/rand/v2"
	"net"

	"github.com/miekg/dns"
)

// minRRLen is the smallest an A record can be on the wire with a compressed
// owner name; no answer record is smaller.
const minRRLen = 16

// limitOf bounds how many records a UDP answer can possibly carry in the
// client's buffer (512 or its EDNS0 size), so a service with thousands of
// instances is not copied whole only to be cut. CoreDNS then trims the
// message to the exact size once and sets TC. Over TCP there is no limit.
func limitOf(w dns.ResponseWriter, r *dns.Msg) int {
	if _, ok := w.RemoteAddr().(*net.UDPAddr); !ok {
		return int(^uint(0) >> 1)
	}
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	return size / minRRLen
}

// rotation returns where a shuffled walk of n entries starts: answers are
// rotated by a random offset, which spreads load at the cost of one random
// number instead of a permutation.
func rotation(n int) int {
	if n <= 1 {
		return 0
	}
	return rand.IntN(n)
}

func isAddrType(qtype uint16) bool { return qtype == dns.TypeA || qtype == dns.TypeAAAA }

// answerService answers <service>.Z: A/AAAA of every instance, or SRV of
// every instance port with the targets' addresses in the additional section.
func answerService(m *dns.Msg, sa *svcAnswers, qtype uint16, view viewSet, lim int) result {
	n := len(sa.insts)
	off := rotation(n)
	switch {
	case isAddrType(qtype):
		ans := make([]dns.RR, 0, min(n, lim))
		for i := 0; i < n; i++ {
			rrs := sa.insts[(off+i)%n].svc
			set := sa.insts[(off+i)%n].set(rrs, view).of(qtype)
			if len(ans)+len(set) > lim {
				m.Truncated = true
				break
			}
			ans = append(ans, set...)
		}
		m.Answer = ans
	case qtype == dns.TypeSRV:
		// Typically one port and one or two addresses per instance.
		ans := make([]dns.RR, 0, min(n, lim))
		extra := make([]dns.RR, 0, min(2*n, lim))
		for i := 0; i < n; i++ {
			ia := sa.insts[(off+i)%n]
			if len(ia.srvSvc) == 0 {
				continue
			}
			if len(ans)+len(ia.srvSvc) > lim {
				m.Truncated = true
				break
			}
			ans = append(ans, ia.srvSvc...)
			extra = appendAddrs(extra, ia.set(ia.self, view), lim-len(ans))
		}
		m.Answer, m.Extra = ans, extra
	}
	if len(m.Answer) == 0 {
		return noData
	}
	return success
}

// appendAddrs adds a target's A and AAAA records to the additional section
// while they fit the UDP limit; CoreDNS trims the rest.
func appendAddrs(extra []dns.RR, s *addrSet, room int) []dns.RR {
	if len(extra)+len(s.a)+len(s.aaaa) > room {
		return extra
	}
	extra = append(extra, s.a...)
	return append(extra, s.aaaa...)
}

// answerInstance answers <host>.<service>.Z: its A/AAAA, or SRV per port.
func answerInstance(m *dns.Msg, ia *instAnswers, qtype uint16, view viewSet) result {
	switch {
	case isAddrType(qtype):
		m.Answer = own(ia.set(ia.self, view).of(qtype))
	case qtype == dns.TypeSRV && len(ia.srvSelf) > 0:
		m.Answer = own(ia.srvSelf)
		m.Extra = appendAddrs(nil, ia.set(ia.self, view), 1<<30)
	}
	if len(m.Answer) == 0 {
		return noData
	}
	return success
}

// answerShard answers <shard>.<service>.Z: A/AAAA of the instances that
// registered that shard id.
func answerShard(m *dns.Msg, insts []*instAnswers, qtype uint16, view viewSet, lim int) result {
	if !isAddrType(qtype) {
		return noData
	}
	n := len(insts)
	if n == 1 {
		m.Answer = own(insts[0].set(insts[0].shard, view).of(qtype))
	} else {
		off := rotation(n)
		var ans []dns.RR
		for i := 0; i < n; i++ {
			ia := insts[(off+i)%n]
			set := ia.set(ia.shard, view).of(qtype)
			if len(ans)+len(set) > lim {
				m.Truncated = true
				break
			}
			ans = append(ans, set...)
		}
		m.Answer = ans
	}
	if len(m.Answer) == 0 {
		return noData
	}
	return success
}

// answerPort answers _<port>._<proto>.<service>.Z: SRV per instance having
// that port, the targets' addresses in the additional section.
func answerPort(m *dns.Msg, pa *portAnswers, qtype uint16, view viewSet, lim int) result {
	if qtype != dns.TypeSRV {
		return noData
	}
	n := len(pa.srv)
	off := rotation(n)
	ans := make([]dns.RR, 0, min(n, lim))
	extra := make([]dns.RR, 0, min(2*n, lim))
	for i := 0; i < n; i++ {
		j := (off + i) % n
		if len(ans) >= lim {
			m.Truncated = true
			break
		}
		ans = append(ans, pa.srv[j])
		ia := pa.insts[j]
		extra = appendAddrs(extra, ia.set(ia.self, view), lim-len(ans))
	}
	m.Answer, m.Extra = ans, extra
	return success
}

// answerMaster answers <service>-master.Z: CNAME to <host>.<service>.Z with
// the master's records of the asked type, or the TXT "host=" "term=".
func answerMaster(m *dns.Msg, ma *masterAnswers, qtype uint16, view viewSet, lim int) result {
	ia := ma.inst
	switch qtype {
	case dns.TypeTXT:
		m.Answer = []dns.RR{ma.txt}
		return success
	case dns.TypeCNAME:
		m.Answer = []dns.RR{ma.cname}
		return success
	case dns.TypeA, dns.TypeAAAA:
		set := ia.set(ia.self, view).of(qtype)
		ans := make([]dns.RR, 0, 1+len(set))
		ans = append(ans, ma.cname)
		m.Answer = append(ans, set...)
	case dns.TypeSRV:
		ans := make([]dns.RR, 0, 1+len(ia.srvSelf))
		ans = append(ans, ma.cname)
		m.Answer = append(ans, ia.srvSelf...)
		m.Extra = appendAddrs(nil, ia.set(ia.self, view), lim)
	default:
		m.Answer = []dns.RR{ma.cname}
	}
	return success
}

// own copies index records into a slice of the response's own. Sections are
// never handed out aliased: later plugins and CoreDNS append to them (OPT)
// or reorder them in place (loadbalance), which must not touch the index.
func own(rrs []dns.RR) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	return append(make([]dns.RR, 0, len(rrs)), rrs...)
}
