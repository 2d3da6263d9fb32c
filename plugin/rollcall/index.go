package rollcall

import (
	"cmp"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"slices"
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

// instAnswers is what one instance contributes to answers. It is 128
// bytes, an allocation size class: there is one per instance, so a field
// more costs 16 or more bytes an instance. What only the HTTP API reads
// (since, reason, shard) is read from src.
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

	// Health (docs/DESIGN.md, "Health"). maint is the active maintenance
	// that holds the instance out of service, its own or its host's
	// (state.maintOf); nil when none. state is the record's effective
	// state, as a byte rather than the 16-byte string. (The SRV weight is
	// state.Weight(), worked out per record rather than kept.)
	maint *registry.Maintenance
	state health
}

// health is an instance's effective registry.State in one byte.
type health uint8

const (
	healthPassing health = iota
	healthWarning
	healthCritical
	healthDraining
)

// healthStates is each health's registry.State.
var healthStates = [...]registry.State{
	healthPassing:  registry.StatePassing,
	healthWarning:  registry.StateWarning,
	healthCritical: registry.StateCritical,
	healthDraining: registry.StateDraining,
}

// healthOf is the health of a validated record's state (registry.CheckState).
func healthOf(s registry.State) health {
	switch s.Effective() {
	case registry.StateWarning:
		return healthWarning
	case registry.StateCritical:
		return healthCritical
	case registry.StateDraining:
		return healthDraining
	}
	return healthPassing
}

// State is the registry state, never "".
func (h health) State() registry.State { return healthStates[h] }

// InService is registry.State.InService.
func (h health) InService() bool { return h == healthPassing || h == healthWarning }

// Weight is registry.State.Weight.
func (h health) Weight() uint16 {
	if h == healthWarning {
		return registry.WeightWarning
	}
	return registry.WeightPassing
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
	return inst.maint == nil && inst.state == healthCritical
}

// dnsState is the state <host>.<service>.Z names in its TXT record, and
// what operators see: "maintenance" while a maintenance record covers the
// instance, else its state.
func (inst *instAnswers) dnsState() string {
	if inst.maint != nil {
		return stateMaintenance
	}
	return string(inst.state.State())
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
	key   string // "_<name>._<proto>"
	insts []*instAnswers
	port  []uint16
}

// shardSpan is one shard of a service: its instances are
// svcAnswers.shardInsts[previous span's end:end].
type shardSpan struct {
	name string
	end  int
}

// manyNames is how many names (hosts, shards, ports) a service has before
// it finds them with a map: below it, a scan of their hashes (nameSet)
// reads one or two cache lines and costs a few bytes a name where a map
// costs about fifty; most services have a few instances.
const manyNames = 32

// nameSeed seeds nameHash: fixed for the process, so every index agrees.
var nameSeed = maphash.MakeSeed()

func nameHash(name []byte) uint32 { return uint32(maphash.Bytes(nameSeed, name)) }

// nameSet finds the position of a name among a service's hosts, shards or
// ports: by a scan of their hashes when there are at most manyNames, else
// by a map. The caller checks the name at the position found (a hash can
// collide), and name(i) is the i-th name.
type nameSet struct {
	hashes []uint32
	many   map[string]int
}

func newNameSet(n int, name func(i int) string) nameSet {
	var set nameSet
	if n > manyNames {
		set.many = make(map[string]int, n)
		for i := range n {
			set.many[name(i)] = i
		}
		return set
	}
	set.hashes = make([]uint32, n)
	for i := range n {
		set.hashes[i] = uint32(maphash.String(nameSeed, name(i)))
	}
	return set
}

// find returns the position of label, or -1.
func (set *nameSet) find(label []byte, name func(i int) string) int {
	if set.many != nil {
		if i, ok := set.many[string(label)]; ok {
			return i
		}
		return -1
	}
	if len(set.hashes) == 0 {
		return -1
	}
	h := nameHash(label)
	for i, x := range set.hashes {
		if x == h && name(i) == string(label) {
			return i
		}
	}
	return -1
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
	hosts     nameSet // every instance: all's hosts
	// The instances served that have a shard, by shard then host, and
	// where each shard's end (shardNames finds them by name).
	shardInsts []*instAnswers
	shards     []shardSpan
	shardNames nameSet
	ports      []portAnswers // the named ports of the instances served
	portNames  nameSet
	// Which of _tcp.<service> and _udp.<service> have names below them.
	tcp, udp bool
	master   *masterAnswers // nil: no master served
	// failingOpen is set when no instance is in service and the critical
	// ones are served instead (`fail_open`, on by default).
	failingOpen bool
}

// instance returns the instance on host, or nil.
func (service *svcAnswers) instance(host []byte) *instAnswers {
	if i := service.hosts.find(host, service.hostAt); i >= 0 {
		return service.all[i]
	}
	return nil
}

func (service *svcAnswers) hostAt(i int) string { return service.all[i].host }

// shard returns the instances served that registered shard, or nil.
func (service *svcAnswers) shard(shard []byte) []*instAnswers {
	i := service.shardNames.find(shard, service.shardAt)
	if i < 0 {
		return nil
	}
	from := 0
	if i > 0 {
		from = service.shards[i-1].end
	}
	return service.shardInsts[from:service.shards[i].end]
}

func (service *svcAnswers) shardAt(i int) string { return service.shards[i].name }

// port returns the named port label ("_<name>._<proto>"), or nil.
func (service *svcAnswers) port(label []byte) *portAnswers {
	if i := service.portNames.find(label, service.portAt); i >= 0 {
		return &service.ports[i]
	}
	return nil
}

func (service *svcAnswers) portAt(i int) string { return service.ports[i].key }

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
	service := &svcAnswers{all: make([]*instAnswers, 0, len(insts))}
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
			if o := old.instance([]byte(h)); o != nil && o.src == in && o.srcHost == st.hosts[h] {
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
	service.hosts = newNameSet(len(service.all), service.hostAt)
	ix.buildShards(service)
	ix.buildPorts(service)
	service.flat = make([]flatAddrs, len(ix.nets)+1)
	for k := range service.flat {
		var view viewSet
		if k < len(ix.nets) {
			view = 1 << uint(k)
		}
		fa := &service.flat[k]
		n4, n6 := 0, 0
		for _, inst := range service.insts {
			for _, ip := range inst.addrsFor(view) {
				if ip.Is4() {
					n4++
				} else {
					n6++
				}
			}
		}
		if n4 > 0 {
			fa.v4 = make([][4]byte, 0, n4)
		}
		if n6 > 0 {
			fa.v6 = make([][16]byte, 0, n6)
		}
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
		if inst := service.instance([]byte(host)); inst != nil {
			service.master = &masterAnswers{inst: inst, txt: packTXT("host="+host, "term="+strconv.FormatInt(term, 10))}
		}
	}
	return service
}

// buildShards indexes the instances served by shard: sorted by shard, and
// by host within a shard as service.insts is.
//
// Its slices, like the others of the index, are made at their final size:
// growing them by append would leave a quarter to a half of each unused.
func (ix *index) buildShards(service *svcAnswers) {
	n := 0
	for _, inst := range service.insts {
		if inst.src.Shard != "" {
			n++
		}
	}
	if n == 0 {
		return
	}
	service.shardInsts = make([]*instAnswers, 0, n)
	for _, inst := range service.insts {
		if inst.src.Shard != "" {
			service.shardInsts = append(service.shardInsts, inst)
		}
	}
	slices.SortStableFunc(service.shardInsts, func(a, b *instAnswers) int { return cmp.Compare(a.src.Shard, b.src.Shard) })
	n = 0
	for i, inst := range service.shardInsts {
		if i == 0 || inst.src.Shard != service.shardInsts[i-1].src.Shard {
			n++
		}
	}
	service.shards = make([]shardSpan, 0, n)
	for i, inst := range service.shardInsts {
		if i > 0 && inst.src.Shard == service.shardInsts[i-1].src.Shard {
			service.shards[len(service.shards)-1].end = i + 1
			continue
		}
		service.shards = append(service.shards, shardSpan{name: inst.src.Shard, end: i + 1})
	}
	service.shardNames = newNameSet(len(service.shards), service.shardAt)
}

// buildPorts indexes the instances served by named port, and notes which
// of _tcp and _udp have names below them.
func (ix *index) buildPorts(service *svcAnswers) {
	n := 0
	for _, inst := range service.insts {
		if len(inst.ports) > 0 {
			n++
		}
	}
	if n == 0 {
		return
	}
	service.withPorts = make([]*instAnswers, 0, n)
	for _, inst := range service.insts {
		if len(inst.ports) > 0 {
			service.withPorts = append(service.withPorts, inst)
		}
	}
	for _, inst := range service.withPorts {
		for _, p := range inst.ports {
			i := slices.IndexFunc(service.ports, func(np portAnswers) bool { return isPortKey(np.key, p) })
			if i < 0 {
				i = len(service.ports)
				service.ports = append(service.ports, portAnswers{key: portKey(p)})
			}
			np := &service.ports[i]
			np.insts = append(np.insts, inst)
			np.port = append(np.port, uint16(p.Port))
			service.tcp = service.tcp || p.Proto == "tcp"
			service.udp = service.udp || p.Proto == "udp"
		}
	}
	service.ports = slices.Clip(service.ports)
	for i := range service.ports {
		// A port every instance with ports has (the usual case: one
		// port) shares withPorts rather than repeat it: it holds the same
		// instances in the same order.
		if np := &service.ports[i]; len(np.insts) == len(service.withPorts) {
			np.insts = service.withPorts
		}
	}
	service.portNames = newNameSet(len(service.ports), service.portAt)
}

// portKey is the label of a named port below its service, "_<name>._<proto>".
func portKey(p registry.Port) string { return "_" + p.Name + "._" + p.Proto }

// isPortKey reports whether key is portKey(p), without building it.
func isPortKey(key string, p registry.Port) bool {
	n := len(p.Name)
	return len(key) == n+len(p.Proto)+3 && key[1:1+n] == p.Name && key[n+3:] == p.Proto
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
		state: healthOf(in.State), maint: maint,
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
