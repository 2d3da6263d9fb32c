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

// walk is the order in which an answer visits a list of n instances: all
// of them from a random offset, or, under `max_answers`, a fresh random
// subset of that many (so that a resolver that caches at most so many
// records of a type, as BIND does, still takes the answer).
type walk struct {
	n, off int
	idx    []int32 // the subset, when sampled
}

// walk starts a visit of n instances.
func (p *reply) walk(n int) walk {
	if p.max == 0 || n <= p.max {
		return walk{n: n, off: rotation(n)}
	}
	// A partial Fisher-Yates shuffle in the reply's reused buffer: the
	// first max entries become a uniform random subset in random order.
	idx := p.pk.sample[:0]
	for i := 0; i < n; i++ {
		idx = append(idx, int32(i))
	}
	for i := 0; i < p.max; i++ {
		j := i + rand.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	p.pk.sample = idx
	return walk{n: p.max, idx: idx[:p.max]}
}

// at is the index of the i-th instance visited, for i below wk.n.
func (wk walk) at(i int) int {
	if wk.idx != nil {
		return int(wk.idx[i])
	}
	return (wk.off + i) % wk.n
}

func isAddrType(qtype uint16) bool { return qtype == dns.TypeA || qtype == dns.TypeAAAA }

// found is what a query name names in the index: settled before anything
// is written, so that a name error can still fall through.
type found struct {
	res       result
	kind      int
	rev       int64 // revision served, the SOA serial
	service   *svcAnswers
	inst      *instAnswers   // kindInstance
	shard     []*instAnswers // kindShard
	namedPort *portAnswers   // kindPort
	svc       []byte         // the service's name (lower case), for targets
}

// find looks a parsed name up: one read of the index per query, two for a
// `<service>-master` name.
func (ix *index) find(qn qname) found {
	f := found{res: nameError, kind: kindUnknown}
	switch qn.kind {
	case nameApex:
		f.rev, _ = ix.lookup(nil)
		f.kind, f.res = kindApex, success
	case nameService:
		f.rev, f.service = ix.lookup(qn.label)
		if f.service != nil {
			f.kind, f.res, f.svc = kindService, success, qn.label
			break
		}
		if base := masterBase(qn.label); base != nil {
			if f.rev, f.service = ix.lookup(base); f.service != nil && f.service.master != nil {
				f.kind, f.res, f.svc = kindMaster, success, base
			}
		}
	case nameInstance:
		f.rev, f.service = ix.lookup(qn.svc)
		if f.service == nil {
			break
		}
		f.svc = qn.svc
		if inst := f.service.instance(qn.label); inst != nil {
			f.kind, f.res, f.inst = kindInstance, success, inst
		} else if shard := f.service.shard(qn.label); shard != nil {
			f.kind, f.res, f.shard = kindShard, success, shard
		} else if f.service.hasProto(qn.label) {
			// _tcp.<service>.Z has names below it: an empty
			// non-terminal, NODATA and never NXDOMAIN (RFC 8020), or
			// a resolver minimising its queries (RFC 9156) stops here.
			f.kind, f.res = kindPort, noData
		}
	case namePort:
		f.rev, f.service = ix.lookup(qn.svc)
		if f.service != nil {
			if namedPort := f.service.port(qn.label); namedPort != nil {
				f.kind, f.res, f.namedPort, f.svc = kindPort, success, namedPort, qn.svc
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
	pk    *packer // the packed reply
	qtype uint16
	view  viewSet
	ttl   uint32
	max   int    // `max_answers`: instances per answer, 0 for all
	zone  []byte // the zone, packed lower case
	// Offsets in the question: the zone, and <service>.<zone> (for names
	// below a service; the question itself for service names).
	zoneAt, svcAt int
}

// anyOrder is the order in which an ANY query looks for the one RRset it
// answers with (RFC 8482 section 4.1): the first type with records at the
// name, the same rule for every name kind.
var anyOrder = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA}

// answer packs the answer of f and returns the outcome: success, or noData
// when the name has no records of the type; a name error adds the SOA. The
// caller has written the header and question.
func (p *reply) answer(f *found) result {
	res := f.res
	if res == success && p.qtype == dns.TypeANY {
		res = noData
		for _, t := range anyOrder {
			p.qtype = t
			if res = p.records(f); res == success || p.pk.full {
				break
			}
		}
		p.qtype = dns.TypeANY
	} else if res == success {
		res = p.records(f)
	}
	if res == success && f.service != nil && f.service.failingOpen && (f.kind == kindService || f.kind == kindShard || f.kind == kindPort) {
		failOpenAnswers.Inc()
	}
	switch res {
	case nameError:
		p.pk.setRcode(dns.RcodeNameError)
		p.pk.soa(secAuthority, p.zoneAt, uint32(f.rev), p.ttl)
	case noData:
		p.pk.soa(secAuthority, p.zoneAt, uint32(f.rev), p.ttl)
	}
	return res
}

// records packs the records of the asked type at the name f found.
func (p *reply) records(f *found) result {
	res := noData
	switch f.kind {
	case kindApex:
		res = p.apex(f.rev)
	case kindService:
		res = p.service(f.service, f.svc)
	case kindInstance:
		res = p.instance(f.inst, f.svc)
	case kindShard:
		res = p.shard(f.shard)
	case kindPort:
		res = p.port(f.namedPort, f.svc)
	case kindMaster:
		res = p.master(f.service.master, f.svc)
	}
	return res
}

// apex answers Z: its SOA or NS.
func (p *reply) apex(rev int64) result {
	switch p.qtype {
	case dns.TypeSOA:
		p.pk.soa(secAnswer, p.zoneAt, uint32(rev), p.ttl)
	case dns.TypeNS:
		p.pk.ns(p.zoneAt, p.ttl)
	}
	return p.outcome()
}

// question is the owner of records named as asked.
var question = owner{at: headerLen}

// service answers <service>.Z: A/AAAA of every instance, or SRV of every
// instance port with the targets' addresses in the additional section.
func (p *reply) service(service *svcAnswers, svc []byte) result {
	n := len(service.insts)
	switch {
	case isAddrType(p.qtype):
		if fa := service.flatFor(p.view); fa != nil && (p.max == 0 || n <= p.max) {
			p.flat(fa)
			break
		}
		p.addrsOf(service.insts)
	case p.qtype == dns.TypeSRV:
		wk := p.walk(len(service.withPorts))
		for i := 0; i < wk.n && !p.pk.full; i++ {
			p.srvs(service.withPorts[wk.at(i)], svc)
		}
		p.additional()
	}
	return p.outcome()
}

// addrsOf packs the A or AAAA records of instances in the client's view,
// instance by instance, as far as they fit.
func (p *reply) addrsOf(insts []*instAnswers) {
	wk := p.walk(len(insts))
	for i := 0; i < wk.n; i++ {
		if _, ok := p.pk.addrs(secAnswer, question, insts[wk.at(i)].addrsFor(p.view), p.qtype, p.ttl); !ok {
			break
		}
	}
}

// flat packs a service's addresses of the asked family from its packed
// array, rotated by a random offset.
func (p *reply) flat(fa *flatAddrs) {
	if p.qtype == dns.TypeA {
		n := len(fa.v4)
		off := rotation(n)
		for i := 0; i < n && p.pk.record(secAnswer, question, dns.TypeA, fa.v4[(off+i)%n][:], p.ttl); i++ {
		}
		return
	}
	n := len(fa.v6)
	off := rotation(n)
	for i := 0; i < n && p.pk.record(secAnswer, question, dns.TypeAAAA, fa.v6[(off+i)%n][:], p.ttl); i++ {
	}
}

// srvs packs an SRV per port of an instance, its target <host>.<svc>.Z,
// and notes the target for the additional section.
func (p *reply) srvs(inst *instAnswers, svc []byte) {
	for j, port := range inst.ports {
		at := p.pk.srv(secAnswer, question, uint16(port.Port), inst.state.Weight(), inst.host, svc, p.zone, p.ttl)
		if at < 0 {
			return
		}
		if j == 0 {
			p.pk.targets = append(p.pk.targets, target{off: at, host: inst.host, ips: inst.addrsFor(p.view)})
		}
	}
}

// additional packs the noted targets' addresses while they fit: a target's
// addresses all or none; leaving some out does not truncate the answer.
func (p *reply) additional() {
	for _, t := range p.pk.targets {
		p.pk.addrsAll(secAdditional, ownerAt(t.off, t.host, p.svcAt), t.ips, p.ttl)
	}
}

func (p *reply) outcome() result {
	if p.pk.count[secAnswer] == 0 {
		return noData
	}
	return success
}

// instance answers <host>.<service>.Z in every state, while its key
// exists: its A/AAAA, SRV per port, or TXT "state=<state>" ("maintenance"
// while an operator holds it out). The TXT leaves out the reason, who and
// until: free text an operator wrote need not go to every client that can
// query, and `rollcall status` shows it.
func (p *reply) instance(inst *instAnswers, svc []byte) result {
	switch {
	case p.qtype == dns.TypeTXT:
		p.pk.txt(question, stateTXT[inst.dnsState()], p.ttl)
	case isAddrType(p.qtype):
		p.pk.addrs(secAnswer, question, inst.addrsFor(p.view), p.qtype, p.ttl)
	case p.qtype == dns.TypeSRV:
		p.srvs(inst, svc)
		// The target is the question's name.
		for i := range p.pk.targets {
			p.pk.targets[i].off = headerLen
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
	p.addrsOf(insts)
	return p.outcome()
}

// port answers _<port>._<proto>.<service>.Z: SRV per instance having that
// port, the targets' addresses in the additional section.
func (p *reply) port(namedPort *portAnswers, svc []byte) result {
	if p.qtype != dns.TypeSRV {
		return noData
	}
	wk := p.walk(len(namedPort.insts))
	for i := 0; i < wk.n; i++ {
		j := wk.at(i)
		inst := namedPort.insts[j]
		at := p.pk.srv(secAnswer, question, namedPort.port[j], inst.state.Weight(), inst.host, svc, p.zone, p.ttl)
		if at < 0 {
			break
		}
		p.pk.targets = append(p.pk.targets, target{off: at, host: inst.host, ips: inst.addrsFor(p.view)})
	}
	p.additional()
	return p.outcome()
}

// master answers <service>-master.Z with the master's own records, all at
// that name: its A/AAAA in the client's view, SRV per port (target
// <host>.<service>.Z), and TXT "host=" "term=". No CNAME: a CNAME may not
// share its name with the TXT (RFC 2181 section 10.1), and a resolver that
// cached it would follow it for the TXT too and find nothing there.
func (p *reply) master(ma *masterAnswers, svc []byte) result {
	inst := ma.inst
	switch {
	case p.qtype == dns.TypeTXT:
		p.pk.txt(question, ma.txt, p.ttl)
	case isAddrType(p.qtype):
		p.pk.addrs(secAnswer, question, inst.addrsFor(p.view), p.qtype, p.ttl)
	case p.qtype == dns.TypeSRV:
		p.srvs(inst, svc)
		p.additional()
	}
	return p.outcome()
}
