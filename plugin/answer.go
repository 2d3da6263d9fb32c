package rollcall

// Response building: each name kind's records for the asked type, picked per
// instance by the client's view, rotated, and packed (wire.go) as far as
// they fit the client's buffer.

import (
	"math/rand/v2"

	"github.com/miekg/dns"
)

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

// found is what a query name names in the index: settled before anything
// is written, so that a name error can still fall through.
type found struct {
	res   result
	kind  int
	rev   int64 // revision served, the SOA serial
	sa    *svcAnswers
	ia    *instAnswers   // kindInstance
	shard []*instAnswers // kindShard
	pa    *portAnswers   // kindPort
	svc   []byte         // the service's name (lower case), for targets
}

// find looks a parsed name up: one read of the index per query, two for a
// `<service>-master` name.
func (ix *index) find(qn qname) found {
	f := found{res: nameError, kind: kindUnknown}
	switch qn.kind {
	case nameApex:
		f.rev, _ = ix.lookup(nil)
		f.kind, f.res = kindApex, success
	case nameOne:
		f.rev, f.sa = ix.lookup(qn.a)
		if f.sa != nil {
			f.kind, f.res, f.svc = kindService, success, qn.a
			break
		}
		if base := masterBase(qn.a); base != nil {
			if f.rev, f.sa = ix.lookup(base); f.sa != nil && f.sa.master != nil {
				f.kind, f.res, f.svc = kindMaster, success, base
			}
		}
	case nameTwo:
		f.rev, f.sa = ix.lookup(qn.svc)
		if f.sa == nil {
			break
		}
		f.svc = qn.svc
		if ia := f.sa.byHost[string(qn.a)]; ia != nil {
			f.kind, f.res, f.ia = kindInstance, success, ia
		} else if shard := f.sa.byShard[string(qn.a)]; shard != nil {
			f.kind, f.res, f.shard = kindShard, success, shard
		}
	case namePort:
		f.rev, f.sa = ix.lookup(qn.svc)
		if f.sa != nil {
			if pa := f.sa.ports[string(qn.a)]; pa != nil {
				f.kind, f.res, f.pa, f.svc = kindPort, success, pa, qn.svc
			}
		}
	default:
		f.rev, _ = ix.lookup(nil)
	}
	return f
}

// reply is one response being packed: the query, the client's view and
// where the names it points at are in the packed question.
type reply struct {
	w     *wire
	qtype uint16
	view  viewSet
	ttl   uint32
	zone  []byte // the zone, packed lower case
	// Offsets in the question: the zone, and <service>.<zone> (for names
	// below a service; the question itself for service names).
	zoneAt, svcAt int
}

// answer packs the answer of f and returns the outcome: success, or noData
// when the name has no records of the type; a name error adds the SOA. The
// caller has written the header and question.
func (p *reply) answer(f *found) result {
	res := f.res
	if res == success {
		switch f.kind {
		case kindApex:
			res = p.apex(f.rev)
		case kindService:
			res = p.service(f.sa, f.svc)
		case kindInstance:
			res = p.instance(f.ia, f.svc)
		case kindShard:
			res = p.shard(f.shard)
		case kindPort:
			res = p.port(f.pa, f.svc)
		case kindMaster:
			res = p.master(f.sa.master, f.svc)
		}
	}
	switch res {
	case nameError:
		p.w.setRcode(dns.RcodeNameError)
		p.w.soa(secAuthority, p.zoneAt, uint32(f.rev), p.ttl)
	case noData:
		p.w.soa(secAuthority, p.zoneAt, uint32(f.rev), p.ttl)
	}
	return res
}

// apex answers Z: its SOA or NS.
func (p *reply) apex(rev int64) result {
	switch p.qtype {
	case dns.TypeSOA:
		p.w.soa(secAnswer, p.zoneAt, uint32(rev), p.ttl)
	case dns.TypeNS:
		p.w.ns(p.zoneAt, p.ttl)
	}
	return p.outcome()
}

// question is the owner of records named as asked.
var question = owner{at: headerLen}

// service answers <service>.Z: A/AAAA of every instance, or SRV of every
// instance port with the targets' addresses in the additional section.
func (p *reply) service(sa *svcAnswers, svc []byte) result {
	n := len(sa.insts)
	off := rotation(n)
	switch {
	case isAddrType(p.qtype):
		if fa := sa.flatFor(p.view); fa != nil {
			p.flat(fa)
			break
		}
		for i := 0; i < n; i++ {
			ia := sa.insts[(off+i)%n]
			if _, ok := p.w.addrs(secAnswer, question, ia.addrsFor(p.view), p.qtype, p.ttl); !ok {
				break
			}
		}
	case p.qtype == dns.TypeSRV:
		for i := 0; i < n && !p.w.full; i++ {
			p.srvs(sa.insts[(off+i)%n], svc)
		}
		p.additional()
	}
	return p.outcome()
}

// flat packs a service's addresses of the asked family from its packed
// array, rotated by a random offset.
func (p *reply) flat(fa *flatAddrs) {
	if p.qtype == dns.TypeA {
		n := len(fa.v4)
		off := rotation(n)
		for i := 0; i < n && p.w.record(secAnswer, question, dns.TypeA, fa.v4[(off+i)%n][:], p.ttl); i++ {
		}
		return
	}
	n := len(fa.v6)
	off := rotation(n)
	for i := 0; i < n && p.w.record(secAnswer, question, dns.TypeAAAA, fa.v6[(off+i)%n][:], p.ttl); i++ {
	}
}

// srvs packs an SRV per port of an instance, its target <host>.<svc>.Z,
// and notes the target for the additional section.
func (p *reply) srvs(ia *instAnswers, svc []byte) {
	for j, port := range ia.ports {
		at := p.w.srv(secAnswer, question, uint16(port.Port), ia.host, svc, p.zone, p.ttl)
		if at < 0 {
			return
		}
		if j == 0 {
			p.w.targets = append(p.w.targets, target{off: at, host: ia.host, ips: ia.addrsFor(p.view)})
		}
	}
}

// additional packs the noted targets' addresses while they fit: a target's
// addresses all or none; leaving some out does not truncate the answer.
func (p *reply) additional() {
	for _, t := range p.w.targets {
		p.w.addrsAll(secAdditional, ownerAt(t.off, t.host, p.svcAt), t.ips, p.ttl)
	}
}

func (p *reply) outcome() result {
	if p.w.count[secAnswer] == 0 {
		return noData
	}
	return success
}

// instance answers <host>.<service>.Z: its A/AAAA, or SRV per port.
func (p *reply) instance(ia *instAnswers, svc []byte) result {
	switch {
	case isAddrType(p.qtype):
		p.w.addrs(secAnswer, question, ia.addrsFor(p.view), p.qtype, p.ttl)
	case p.qtype == dns.TypeSRV:
		p.srvs(ia, svc)
		// The target is the question's name.
		for i := range p.w.targets {
			p.w.targets[i].off = headerLen
		}
		p.additional()
	}
	return p.outcome()
}

// shard answers <shard>.<service>.Z: A/AAAA of the instances that
// registered that shard id.
func (p *reply) shard(insts []*instAnswers) result {
	if !isAddrType(p.qtype) {
		return noData
	}
	n := len(insts)
	off := rotation(n)
	for i := 0; i < n; i++ {
		if _, ok := p.w.addrs(secAnswer, question, insts[(off+i)%n].addrsFor(p.view), p.qtype, p.ttl); !ok {
			break
		}
	}
	return p.outcome()
}

// port answers _<port>._<proto>.<service>.Z: SRV per instance having that
// port, the targets' addresses in the additional section.
func (p *reply) port(pa *portAnswers, svc []byte) result {
	if p.qtype != dns.TypeSRV {
		return noData
	}
	n := len(pa.insts)
	off := rotation(n)
	for i := 0; i < n; i++ {
		j := (off + i) % n
		ia := pa.insts[j]
		at := p.w.srv(secAnswer, question, pa.port[j], ia.host, svc, p.zone, p.ttl)
		if at < 0 {
			break
		}
		p.w.targets = append(p.w.targets, target{off: at, host: ia.host, ips: ia.addrsFor(p.view)})
	}
	p.additional()
	return p.outcome()
}

// master answers <service>-master.Z: CNAME to <host>.<service>.Z with the
// master's records of the asked type, or the TXT "host=" "term=".
func (p *reply) master(ma *masterAnswers, svc []byte) result {
	ia := ma.inst
	if p.qtype == dns.TypeTXT {
		p.w.txt(question, ma.txt, p.ttl)
		return p.outcome()
	}
	at := p.w.cname(question, ia.host, svc, p.zoneAt, p.ttl)
	if at < 0 {
		return p.outcome()
	}
	// Records owned by the CNAME's target: a pointer to it (it is near the
	// start of the message).
	self := owner{at: at}
	switch p.qtype {
	case dns.TypeA, dns.TypeAAAA:
		p.w.addrs(secAnswer, self, ia.addrsFor(p.view), p.qtype, p.ttl)
	case dns.TypeSRV:
		for _, port := range ia.ports {
			if p.w.srv(secAnswer, self, uint16(port.Port), ia.host, svc, p.zone, p.ttl) < 0 {
				break
			}
		}
		if len(ia.ports) > 0 {
			p.w.addrsAll(secAdditional, self, ia.addrsFor(p.view), p.ttl)
		}
	}
	return p.outcome()
}
