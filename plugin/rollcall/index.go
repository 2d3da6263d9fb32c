package rollcall

import (
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rollcall/rollcall/registry"
)

// The index is one server block's DNS view of the registry: for every
// service, what each kind of name answers with, built when the registry
// changes so that a query only follows pointers. It holds no names or
// records: answers are packed at query time (wire.go) from the addresses
// and ports the registry records already hold, so an instance costs a few
// words, whatever the number of zones and networks. Everything reachable
// from the index is shared by concurrent queries and never modified.

// instAnswers is what one instance contributes to answers.
type instAnswers struct {
	// The records this was built from: an unchanged instance is reused
	// when its service is rebuilt.
	src     *registry.Instance
	srcHost *registry.Host

	host string  // its host name, the first label of <host>.<service>.Z
	nets viewSet // networks the instance has addresses on
	pub  []netip.Addr
	// on[i] is its addresses on network i (Corefile order); nil when the
	// instance is on no network of the block.
	on    [][]netip.Addr
	ports []registry.Port
}

// flatFor returns the service's packed addresses for a client's view, or
// nil when the client is on several networks (each instance then picks its
// own, see instAnswers.addrsFor).
func (service *svcAnswers) flatFor(view viewSet) *flatAddrs {
	if view == 0 {
		return &service.flat[len(service.flat)-1]
	}
	if view&(view-1) != 0 {
		return nil
	}
	k := bits.TrailingZeros64(uint64(view))
	if k >= len(service.flat)-1 {
		return &service.flat[len(service.flat)-1]
	}
	return &service.flat[k]
}

// addrsFor returns the addresses a client with this view gets
// (docs/DESIGN.md, "Views"): those on the first network both are on, else the public ones.
func (inst *instAnswers) addrsFor(view viewSet) []netip.Addr {
	if k := pick(view, inst.nets); k >= 0 {
		return inst.on[k]
	}
	return inst.pub
}

// portAnswers is one named port of a service: the instances having it and
// their port numbers.
type portAnswers struct {
	insts []*instAnswers
	port  []uint16
}

// masterAnswers is the elected master of a service.
type masterAnswers struct {
	inst *instAnswers
	txt  []byte // TXT "host=<host>" "term=<term>", packed
}

// flatAddrs is every address a service answers with for one view, packed
// next to each other: a service query reads one small array instead of
// following a pointer per instance, which matters once the index is larger
// than the CPU's caches.
type flatAddrs struct {
	v4 [][4]byte
	v6 [][16]byte
}

// svcAnswers is everything served under one service. A service exists in
// DNS while it has at least one instance.
type svcAnswers struct {
	// flat[i] is what a client on network i alone gets; the last, what a
	// client on none gets. Clients on several networks take the slow walk.
	flat  []flatAddrs
	insts []*instAnswers // sorted by host
	// withPorts is the instances that have ports: an SRV answer's subset
	// under max_answers is taken from these, or it could come out empty.
	withPorts []*instAnswers
	byHost    map[string]*instAnswers
	byShard   map[string][]*instAnswers
	ports     map[string]*portAnswers // by "_<port>._<proto>"
	// Which of _tcp.<service> and _udp.<service> have names below them.
	tcp, udp bool
	master   *masterAnswers // nil: no master served
}

// hasProto reports whether label ("_tcp" or "_udp") names an empty
// non-terminal of the service: some instance has a port of that protocol.
func (service *svcAnswers) hasProto(label []byte) bool {
	switch string(label) {
	case "_tcp":
		return service.tcp
	case "_udp":
		return service.udp
	}
	return false
}

// index is one server block's answers. Queries take the read lock only to
// look a service up; what they get is immutable.
type index struct {
	nets  []network
	local string // `local HOST`, "" when unset

	loaded atomic.Bool // set once the first list is in

	mu        sync.RWMutex
	services  map[string]*svcAnswers
	rev       int64 // etcd revision of the data served: the SOA serial
	localView viewSet
}

func newIndex(nets []network, local string) *index {
	return &index{nets: nets, local: local, services: map[string]*svcAnswers{}}
}

// lookup returns the revision served and the named service (nil when
// absent) in one consistent read.
func (ix *index) lookup(svc []byte) (int64, *svcAnswers) {
	ix.mu.RLock()
	rev := ix.rev
	var service *svcAnswers
	if svc != nil {
		service = ix.services[string(svc)]
	}
	ix.mu.RUnlock()
	return rev, service
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
	services := make(map[string]*svcAnswers, len(st.insts))
	for svc := range st.insts {
		if service := ix.buildService(st, svc, nil); service != nil {
			services[svc] = service
		}
	}
	lv := ix.buildLocalView(st)
	ix.mu.Lock()
	ix.services, ix.rev, ix.localView = services, st.rev, lv
	ix.mu.Unlock()
	ix.loaded.Store(true)
}

// update rebuilds only the services a batch of events touched. Their new
// answers are built before the lock is taken; the lock covers map writes.
func (ix *index) update(st *state, ch changes) {
	type built struct {
		svc     string
		service *svcAnswers
	}
	all := make([]built, 0, len(ch.services))
	for svc := range ch.services {
		// Only this goroutine writes ix.services, so it may read it unlocked.
		all = append(all, built{svc, ix.buildService(st, svc, ix.services[svc])})
	}
	lv, newLocal := viewSet(0), false
	if _, ok := ch.hosts[ix.local]; ok && ix.local != "" {
		lv, newLocal = ix.buildLocalView(st), true
	}
	ix.mu.Lock()
	for _, b := range all {
		if b.service == nil {
			delete(ix.services, b.svc)
		} else {
			ix.services[b.svc] = b.service
		}
	}
	ix.rev = st.rev
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

// buildService builds one service's answers, or nil when the service has
// no instance. Instances whose records are unchanged since old was built are
// reused, so a change to one instance of a large service rebuilds that
// instance only (and the service's lists).
func (ix *index) buildService(st *state, svc string, old *svcAnswers) *svcAnswers {
	insts := st.insts[svc]
	if len(insts) == 0 {
		return nil
	}
	service := &svcAnswers{
		insts:  make([]*instAnswers, 0, len(insts)),
		byHost: make(map[string]*instAnswers, len(insts)),
	}
	hosts := make([]string, 0, len(insts))
	for h := range insts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		in := insts[h]
		var inst *instAnswers
		if old != nil {
			if o := old.byHost[h]; o != nil && o.src == in && o.srcHost == st.hosts[h] {
				inst = o
			}
		}
		if inst == nil {
			inst = ix.buildInstance(st, in)
		}
		service.insts = append(service.insts, inst)
		service.byHost[h] = inst
		if in.Shard != "" {
			if service.byShard == nil {
				service.byShard = map[string][]*instAnswers{}
			}
			service.byShard[in.Shard] = append(service.byShard[in.Shard], inst)
		}
		if len(in.Ports) > 0 {
			service.withPorts = append(service.withPorts, inst)
		}
		for _, p := range in.Ports {
			if service.ports == nil {
				service.ports = map[string]*portAnswers{}
			}
			key := "_" + p.Name + "._" + p.Proto
			namedPort := service.ports[key]
			if namedPort == nil {
				namedPort = &portAnswers{}
				service.ports[key] = namedPort
			}
			namedPort.insts = append(namedPort.insts, inst)
			namedPort.port = append(namedPort.port, uint16(p.Port))
			service.tcp = service.tcp || p.Proto == "tcp"
			service.udp = service.udp || p.Proto == "udp"
		}
	}
	service.flat = make([]flatAddrs, len(ix.nets)+1)
	for k := range service.flat {
		var view viewSet
		if k < len(ix.nets) {
			view = 1 << uint(k)
		}
		fa := &service.flat[k]
		for _, inst := range service.insts {
			for _, ip := range inst.addrsFor(view) {
				if ip.Is4() {
					fa.v4 = append(fa.v4, ip.As4())
				} else {
					fa.v6 = append(fa.v6, ip.As16())
				}
			}
		}
	}
	// The master is served only while the elected host has an instance of
	// the service: its records are that instance's, and its SRV targets
	// resolve.
	if host, term, ok := st.leader(svc); ok {
		if inst := service.byHost[host]; inst != nil {
			service.master = &masterAnswers{inst: inst, txt: packTXT("host="+host, "term="+strconv.FormatInt(term, 10))}
		}
	}
	return service
}

// packTXT packs TXT character strings (each under 256 bytes).
func packTXT(strs ...string) []byte {
	var b []byte
	for _, s := range strs {
		b = appendLabel(b, s)
	}
	return b
}

func (ix *index) buildInstance(st *state, in *registry.Instance) *instAnswers {
	addrs := st.addrsOf(in)
	inst := &instAnswers{src: in, srcHost: st.hosts[in.Host], host: in.Host, ports: in.Ports}
	inst.pub = servable(addrs[registry.PublicNetwork])
	for i, n := range ix.nets {
		if len(addrs[n.name]) == 0 {
			continue
		}
		if inst.on == nil {
			inst.on = make([][]netip.Addr, len(ix.nets))
		}
		inst.nets |= 1 << uint(i)
		inst.on[i] = servable(addrs[n.name])
	}
	return inst
}

// servable returns the addresses that can be served as A or AAAA: the
// registry validates them, but an IPv4-mapped IPv6 address has no family
// of its own and is left out. The slice is shared when nothing is.
func servable(ips []netip.Addr) []netip.Addr {
	for i, ip := range ips {
		if ip.Is4In6() || !ip.IsValid() {
			out := append([]netip.Addr(nil), ips[:i]...)
			for _, ip := range ips[i+1:] {
				if !ip.Is4In6() && ip.IsValid() {
					out = append(out, ip)
				}
			}
			return out
		}
	}
	return ips
}
