package rollcall

import (
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/registry"
)

// The index is one server block's DNS view of the registry: for every zone
// and service, the resource records each kind of name answers with, built
// when the registry changes so that a query only picks and copies pointers.
// Records are shared by concurrent queries and never modified once built.

// addrSet is one instance's A and AAAA records on one network, under one owner
// name.
type addrSet struct {
	a, aaaa []dns.RR
}

func (s *addrSet) of(qtype uint16) []dns.RR {
	if qtype == dns.TypeA {
		return s.a
	}
	return s.aaaa
}

// instAnswers is what one instance contributes to answers. The address sets
// are indexed by network (Corefile order); the last one is public.
type instAnswers struct {
	// The records this was built from: an unchanged instance is reused
	// when its service is rebuilt.
	src     *registry.Instance
	srcHost *registry.Host

	host  string
	nets  viewSet   // networks the instance has addresses on
	svc   []addrSet // owner <service>.Z
	self  []addrSet // owner <host>.<service>.Z
	shard []addrSet // owner <shard>.<service>.Z, nil without a shard
	// SRV records for every port, target <host>.<service>.Z.
	srvSvc  []dns.RR // owner <service>.Z
	srvSelf []dns.RR // owner <host>.<service>.Z
	// Per port: its "_<port>._<proto>" and SRV owned by that name.
	portKeys []string
	srvPort  []dns.RR
}

// set returns the addresses a client with this view gets (DESIGN.md, Views).
func (ia *instAnswers) set(sets []addrSet, view viewSet) *addrSet {
	k := pick(view, ia.nets)
	if k < 0 || k >= len(sets)-1 {
		k = len(sets) - 1
	}
	return &sets[k]
}

// portAnswers is one named port of a service: an SRV per instance having it.
type portAnswers struct {
	srv   []dns.RR
	insts []*instAnswers // insts[i] is srv[i]'s target
}

// masterAnswers is the elected master of a service.
type masterAnswers struct {
	cname dns.RR
	txt   dns.RR
	inst  *instAnswers
}

// svcAnswers is everything served under one service in one zone. A service
// exists in DNS while it has at least one instance.
type svcAnswers struct {
	insts   []*instAnswers // sorted by host
	byHost  map[string]*instAnswers
	byShard map[string][]*instAnswers
	ports   map[string]*portAnswers // by "_<port>._<proto>"
	master  *masterAnswers          // nil: no master served
}

// zoneData is one zone's answers: the apex records and the services.
type zoneData struct {
	soa, ns  dns.RR
	services map[string]*svcAnswers
}

// index is one server block's answers for all its zones. Queries take the
// read lock only to look a service up; what they get is immutable.
type index struct {
	zones []string // lower-case, fully qualified
	nets  []network
	ttl   uint32
	local string // `local HOST`, "" when unset

	loaded atomic.Bool // set once the first list is in

	mu        sync.RWMutex
	data      []*zoneData // per zone, same order as zones
	localView viewSet
}

func newIndex(zones []string, nets []network, ttl uint32, local string) *index {
	ix := &index{zones: zones, nets: nets, ttl: ttl, local: local}
	ix.data = make([]*zoneData, len(zones))
	for i, z := range zones {
		ix.data[i] = &zoneData{services: map[string]*svcAnswers{}, soa: ix.soa(z, 0), ns: ix.nsRR(z)}
	}
	return ix
}

// lookup returns the zone's SOA and the named service (nil when absent) in
// one consistent read.
func (ix *index) lookup(zone int, svc []byte) (soa, ns dns.RR, sa *svcAnswers) {
	ix.mu.RLock()
	zd := ix.data[zone]
	soa, ns = zd.soa, zd.ns
	if svc != nil {
		sa = zd.services[string(svc)]
	}
	ix.mu.RUnlock()
	return soa, ns, sa
}

func (ix *index) view() viewSet {
	ix.mu.RLock()
	v := ix.localView
	ix.mu.RUnlock()
	return v
}

func (ix *index) isLoaded() bool { return ix.loaded.Load() }

// replace rebuilds every answer from st: after the first list and after every
// re-list, so that deletes missed while the watch was down are applied.
func (ix *index) replace(st *state) {
	data := make([]*zoneData, len(ix.zones))
	for i, z := range ix.zones {
		zd := &zoneData{services: make(map[string]*svcAnswers, len(st.insts)), soa: ix.soa(z, st.rev), ns: ix.nsRR(z)}
		for svc := range st.insts {
			if sa := ix.buildService(st, z, svc, nil); sa != nil {
				zd.services[svc] = sa
			}
		}
		data[i] = zd
	}
	lv := ix.buildLocalView(st)
	ix.mu.Lock()
	ix.data = data
	ix.localView = lv
	ix.mu.Unlock()
	ix.loaded.Store(true)
}

// update rebuilds only the services a batch of events touched. Their new
// answers are built before the lock is taken; the lock covers map writes.
func (ix *index) update(st *state, ch changes) {
	type built struct {
		svc string
		sa  []*svcAnswers // per zone
	}
	var all []built
	for svc := range ch.services {
		b := built{svc: svc, sa: make([]*svcAnswers, len(ix.zones))}
		for i, z := range ix.zones {
			// Only this goroutine writes ix.data, so it may read it unlocked.
			b.sa[i] = ix.buildService(st, z, svc, ix.data[i].services[svc])
		}
		all = append(all, b)
	}
	soas := make([]dns.RR, len(ix.zones))
	for i, z := range ix.zones {
		soas[i] = ix.soa(z, st.rev)
	}
	lv, newLocal := viewSet(0), false
	if _, ok := ch.hosts[ix.local]; ok && ix.local != "" {
		lv, newLocal = ix.buildLocalView(st), true
	}
	ix.mu.Lock()
	for i, zd := range ix.data {
		for _, b := range all {
			if b.sa[i] == nil {
				delete(zd.services, b.svc)
			} else {
				zd.services[b.svc] = b.sa[i]
			}
		}
		zd.soa = soas[i]
	}
	if newLocal {
		ix.localView = lv
	}
	ix.mu.Unlock()
}

// buildLocalView is the view of loopback clients under `local HOST`: every
// network HOST's record lists addresses under, or whose ranges hold one of
// HOST's addresses.
func (ix *index) buildLocalView(st *state) viewSet {
	if ix.local == "" {
		return 0
	}
	h := st.hosts[ix.local]
	if h == nil {
		return 0
	}
	var v viewSet
	for i, n := range ix.nets {
		if len(h.Addrs[n.name]) > 0 {
			v |= 1 << uint(i)
		}
	}
	for _, addrs := range h.Addrs {
		v |= networksOf(ix.nets, addrs)
	}
	return v
}

func (ix *index) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ix.ttl}
}

// soa is the zone's SOA: the serial is the etcd revision of the data served
// (truncated to 32 bits), the minimum (negative TTL) is the answer TTL.
func (ix *index) soa(zone string, rev int64) dns.RR {
	return &dns.SOA{
		Hdr:     ix.hdr(zone, dns.TypeSOA),
		Ns:      "ns.dns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  uint32(rev),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ix.ttl,
	}
}

func (ix *index) nsRR(zone string) dns.RR {
	return &dns.NS{Hdr: ix.hdr(zone, dns.TypeNS), Ns: "ns.dns." + zone}
}

// buildService builds one service's answers in one zone, or nil when the
// service has no instance. Instances whose records are unchanged since old
// was built are reused, so a change to one instance of a large service
// rebuilds that instance's records only (and the service's lists).
func (ix *index) buildService(st *state, zone, svc string, old *svcAnswers) *svcAnswers {
	insts := st.insts[svc]
	if len(insts) == 0 {
		return nil
	}
	svcName := svc + "." + zone
	sa := &svcAnswers{
		byHost:  make(map[string]*instAnswers, len(insts)),
		byShard: map[string][]*instAnswers{},
		ports:   map[string]*portAnswers{},
	}
	hosts := make([]string, 0, len(insts))
	for h := range insts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		in := insts[h]
		var ia *instAnswers
		if old != nil {
			if o := old.byHost[h]; o != nil && o.src == in && o.srcHost == st.hosts[h] {
				ia = o
			}
		}
		if ia == nil {
			ia = ix.buildInstance(st, in, svcName)
		}
		sa.insts = append(sa.insts, ia)
		sa.byHost[h] = ia
		if in.Shard != "" {
			sa.byShard[in.Shard] = append(sa.byShard[in.Shard], ia)
		}
		for j, key := range ia.portKeys {
			pa := sa.ports[key]
			if pa == nil {
				pa = &portAnswers{}
				sa.ports[key] = pa
			}
			pa.srv = append(pa.srv, ia.srvPort[j])
			pa.insts = append(pa.insts, ia)
		}
	}
	// The master is served only while the elected host has an instance of
	// the service: its CNAME then always points at a name that resolves.
	if host, term, ok := st.leader(svc); ok {
		if ia := sa.byHost[host]; ia != nil {
			owner := svc + "-master." + zone
			sa.master = &masterAnswers{
				cname: &dns.CNAME{Hdr: ix.hdr(owner, dns.TypeCNAME), Target: host + "." + svcName},
				txt:   &dns.TXT{Hdr: ix.hdr(owner, dns.TypeTXT), Txt: []string{"host=" + host, "term=" + strconv.FormatInt(term, 10)}},
				inst:  ia,
			}
		}
	}
	return sa
}

func (ix *index) srv(owner, target string, port int) dns.RR {
	// Every target has the same priority and weight: clients spread load
	// themselves, and the answer order is shuffled per query.
	return &dns.SRV{Hdr: ix.hdr(owner, dns.TypeSRV), Priority: 10, Weight: 10, Port: uint16(port), Target: target}
}

func (ix *index) buildInstance(st *state, in *registry.Instance, svcName string) *instAnswers {
	addrs := st.addrsOf(in)
	selfName := in.Host + "." + svcName
	ia := &instAnswers{src: in, srcHost: st.hosts[in.Host], host: in.Host}
	for i, n := range ix.nets {
		if len(addrs[n.name]) > 0 {
			ia.nets |= 1 << uint(i)
		}
	}
	ia.svc = ix.addrSets(addrs, ia.nets, svcName)
	ia.self = ix.addrSets(addrs, ia.nets, selfName)
	if in.Shard != "" {
		ia.shard = ix.addrSets(addrs, ia.nets, in.Shard+"."+svcName)
	}
	for _, p := range in.Ports {
		key := "_" + p.Name + "._" + p.Proto
		ia.srvSvc = append(ia.srvSvc, ix.srv(svcName, selfName, p.Port))
		ia.srvSelf = append(ia.srvSelf, ix.srv(selfName, selfName, p.Port))
		ia.portKeys = append(ia.portKeys, key)
		ia.srvPort = append(ia.srvPort, ix.srv(key+"."+svcName, selfName, p.Port))
	}
	return ia
}

// addrSets returns one address set per network of the block plus public
// (last), each under owner. Networks the instance is not on stay empty.
func (ix *index) addrSets(addrs registry.Addrs, nets viewSet, owner string) []addrSet {
	sets := make([]addrSet, len(ix.nets)+1)
	for i, n := range ix.nets {
		if nets&(1<<uint(i)) != 0 {
			sets[i] = ix.addrSet(addrs[n.name], owner)
		}
	}
	sets[len(ix.nets)] = ix.addrSet(addrs[registry.PublicNetwork], owner)
	return sets
}

func (ix *index) addrSet(ips []netip.Addr, owner string) addrSet {
	var s addrSet
	for _, ip := range ips {
		if ip.Is4() {
			s.a = append(s.a, &dns.A{Hdr: ix.hdr(owner, dns.TypeA), A: ip.AsSlice()})
		} else if ip.Is6() && !ip.Is4In6() {
			s.aaaa = append(s.aaaa, &dns.AAAA{Hdr: ix.hdr(owner, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	return s
}
