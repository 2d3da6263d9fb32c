package rollcall

import (
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

	// Health (docs/DESIGN.md, "Health"). state is the record's effective
	// state (never ""); since and reason are as the agent wrote them.
	state  registry.State
	since  int64
	reason string
	// maint is the active maintenance that holds the instance out of
	// service, its own or its host's (state.maintOf); nil when none.
	// (The SRV weight is state.Weight(), worked out per record rather than
	// kept: a field would take the struct to the next allocation size.)
	maint *registry.Maintenance
}

// inService reports whether the instance is served under its service's
// names (the service, its ports and shards): passing or warning, and not
// in maintenance. Whether a critical instance is served anyway is the
// service's call (svcAnswers.serves, fail open).
func (inst *instAnswers) inService() bool {
	return inst.maint == nil && inst.state.InService()
}

// failsOpen reports whether the instance is served when its service fails
// open: critical and not in maintenance. Draining instances never are.
func (inst *instAnswers) failsOpen() bool {
	return inst.maint == nil && inst.state == registry.StateCritical
}

// dnsState is the state <host>.<service>.Z names in its TXT record, and
// what operators see: "maintenance" while a maintenance record covers the
// instance, else its state.
func (inst *instAnswers) dnsState() string {
	if inst.maint != nil {
		return stateMaintenance
	}
	return string(inst.state)
}

// stateMaintenance is the state shown for an instance under maintenance:
// not a state an agent writes (registry.State), since an operator sets it.
const stateMaintenance = "maintenance"

// stateTXT holds the packed TXT of <host>.<service>.Z, "state=<dnsState>",
// for each state an instance can be shown in: shared by every instance
// rather than a slice in each, and the query path copies it without
// allocating.
var stateTXT = func() map[string][]byte {
	m := map[string][]byte{}
	for _, s := range []string{string(registry.StatePassing), string(registry.StateWarning), string(registry.StateCritical), string(registry.StateDraining), stateMaintenance} {
		m[s] = packTXT("state=" + s)
	}
	return m
}()

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
// DNS while it has at least one instance, in any state: its
// <host>.<service>.Z names are below it. Its service-level names (the
// service's own records, its ports and shards) hold only the instances it
// serves (serves): a service with none is an empty non-terminal, NODATA.
type svcAnswers struct {
	// flat[i] is what a client on network i alone gets; the last, what a
	// client on none gets. Clients on several networks take the slow walk.
	flat  []flatAddrs
	insts []*instAnswers // the instances served, sorted by host
	all   []*instAnswers // every instance, served or not, sorted by host
	// withPorts is the instances served that have ports: an SRV answer's
	// subset under max_answers is taken from these, or it could come out
	// empty.
	withPorts []*instAnswers
	byHost    map[string]*instAnswers   // every instance
	byShard   map[string][]*instAnswers // instances served
	ports     map[string]*portAnswers   // by "_<port>._<proto>", instances served
	// Which of _tcp.<service> and _udp.<service> have names below them.
	tcp, udp bool
	master   *masterAnswers // nil: no master served
	// failingOpen is set when no instance is in service and the critical
	// ones are served instead (`fail_open`, on by default).
	failingOpen bool
}

// serves reports whether the service's own names answer with inst: in
// service, or critical while the service fails open.
func (service *svcAnswers) serves(inst *instAnswers) bool {
	return inst.inService() || service.failingOpen && inst.failsOpen()
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
	// failClosed is `fail_open off`: a service with no instance in service
	// answers with none rather than with its critical ones.
	failClosed bool
	// failingOpen is the services answering with critical instances, for
	// coredns_rollcall_services_failing_open; only the loader's goroutine
	// touches it.
	failingOpen map[string]struct{}

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
	now := st.buildTime()
	services := make(map[string]*svcAnswers, len(st.insts))
	for svc := range st.insts {
		if service := ix.buildService(st, svc, nil, now); service != nil {
			services[svc] = service
		}
	}
	ix.countFailingOpen(services)
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
	now := st.buildTime()
	all := make([]built, 0, len(ch.services))
	for svc := range ch.services {
		// Only this goroutine writes ix.services, so it may read it unlocked.
		all = append(all, built{svc, ix.buildService(st, svc, ix.services[svc], now)})
	}
	for _, b := range all {
		ix.setFailingOpen(b.svc, b.service != nil && b.service.failingOpen)
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

// countFailingOpen brings the services failing open in line with a whole
// new set of answers (replace); nil takes the block's share out of the
// metric (the block is shutting down).
func (ix *index) countFailingOpen(services map[string]*svcAnswers) {
	for svc := range ix.failingOpen {
		if service := services[svc]; service == nil || !service.failingOpen {
			ix.setFailingOpen(svc, false)
		}
	}
	for svc, service := range services {
		if service.failingOpen {
			ix.setFailingOpen(svc, true)
		}
	}
}

// setFailingOpen notes whether a service fails open, keeping the gauge the
// sum over every block: each block adds and takes back its own.
func (ix *index) setFailingOpen(svc string, on bool) {
	_, was := ix.failingOpen[svc]
	switch {
	case on && !was:
		if ix.failingOpen == nil {
			ix.failingOpen = map[string]struct{}{}
		}
		ix.failingOpen[svc] = struct{}{}
		servicesFailingOpen.Inc()
		log.Warningf("service %s has no instance passing or warning: failing open, serving its critical instances", svc)
	case !on && was:
		delete(ix.failingOpen, svc)
		servicesFailingOpen.Dec()
		log.Infof("service %s no longer failing open", svc)
	}
}

// close takes the block's share out of the metrics; the loader no longer
// updates it.
func (ix *index) close() {
	servicesFailingOpen.Sub(float64(len(ix.failingOpen)))
	ix.failingOpen = nil
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

// buildService builds one service's answers at time now (which maintenance
// is active), or nil when the service has no instance. Instances whose
// records and maintenance are unchanged since old was built are reused, so a
// change to one instance of a large service rebuilds that instance only
// (and the service's lists).
func (ix *index) buildService(st *state, svc string, old *svcAnswers, now time.Time) *svcAnswers {
	insts := st.insts[svc]
	if len(insts) == 0 {
		return nil
	}
	service := &svcAnswers{
		all:    make([]*instAnswers, 0, len(insts)),
		byHost: make(map[string]*instAnswers, len(insts)),
	}
	hosts := make([]string, 0, len(insts))
	for h := range insts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	inService := 0
	for _, h := range hosts {
		in := insts[h]
		maint := st.maintOf(h, svc, now)
		var inst *instAnswers
		if old != nil {
			if o := old.byHost[h]; o != nil && o.src == in && o.srcHost == st.hosts[h] {
				inst = o
				if o.maint != maint {
					// Only the maintenance changed: share the addresses.
					c := *o
					c.maint = maint
					inst = &c
				}
			}
		}
		if inst == nil {
			inst = ix.buildInstance(st, in, maint)
		}
		service.all = append(service.all, inst)
		service.byHost[h] = inst
		if inst.inService() {
			inService++
		}
	}
	// Fail open (docs/DESIGN.md, "Health"): with nothing in service, the
	// critical instances are a better answer than none, since a check can
	// be wrong about all of them at once (a shared dependency down, a bad
	// check deployed everywhere). Draining and maintenance are decisions,
	// and stay out.
	if inService == 0 && !ix.failClosed {
		for _, inst := range service.all {
			if inst.failsOpen() {
				service.failingOpen = true
				break
			}
		}
	}
	service.insts = service.all
	if inService < len(service.all) {
		service.insts = make([]*instAnswers, 0, len(service.all))
		for _, inst := range service.all {
			if service.serves(inst) {
				service.insts = append(service.insts, inst)
			}
		}
	}
	for _, inst := range service.insts {
		in := inst.src
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
	// resolve. Its state does not matter here: an agent whose instance
	// leaves service resigns, and the next master is elected.
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

func (ix *index) buildInstance(st *state, in *registry.Instance, maint *registry.Maintenance) *instAnswers {
	addrs := st.addrsOf(in)
	inst := &instAnswers{
		src: in, srcHost: st.hosts[in.Host], host: in.Host, ports: in.Ports,
		state: in.State.Effective(), since: in.Since, reason: in.Reason, maint: maint,
	}
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
