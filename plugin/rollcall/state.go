package rollcall

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rollcall/rollcall/registry"
)

// Reasons a key or value is skipped, the `reason` label of
// coredns_rollcall_decode_errors_total: registry's, which come with its
// errors (registry.Reason), so the label values are its stable ones.
const (
	reasonKey       = string(registry.ReasonKey)       // key at an unexpected depth, unknown part or bad name
	reasonTooLarge  = string(registry.ReasonTooLarge)  // value over registry.MaxValueSize, skipped unread
	reasonRecord    = string(registry.ReasonRecord)    // not JSON, wrong types, invalid names or addresses
	reasonMismatch  = string(registry.ReasonMismatch)  // record names another host or service than its key
	reasonCandidate = string(registry.ReasonCandidate) // election value is not a host name
)

// state is the registry as the loader last read it: decoded, validated
// records by key. Only the loader goroutine touches it (under loader.mu);
// subscribers turn it into DNS answers.
type state struct {
	keys      registry.Keys
	rev       int64
	hosts     map[string]*registry.Host                // host -> record
	insts     map[string]map[string]*registry.Instance // service -> host -> instance
	hostSvcs  map[string][]string                      // host -> services it has an instance of, sorted
	elections map[string][]candidate                   // service -> its candidates, in the order they came
	ninsts    int                                      // instances in insts
	// Maintenance records as written, expired ones too: whether one is
	// active depends on the time an answer is built (maintOf).
	maint    map[string]*registry.Maintenance            // host -> the whole host's
	maintSvc map[string]map[string]*registry.Maintenance // host -> service -> that instance's
	// now is the time answers are being built for, set by the loader
	// before it has its subscribers build them: every block then agrees on
	// which maintenance has expired. Zero means the time of building.
	now time.Time

	// names holds one copy of every host, service, shard, port and
	// protocol name the records use (intern): a name is otherwise a new
	// string in every record and key that holds it, and a map key cut
	// from an etcd key keeps the whole key alive. sweepAt is the size at
	// which names no longer used are dropped (sweep).
	names   map[string]string
	sweepAt int
	// portLists is the same for instances' port lists, by portListKey:
	// the instances of a service usually all have the same ports.
	portLists map[string][]registry.Port
}

// candidate is one key of a service's election: registry.Candidate without
// the key, which nothing here reads (the lease identifies it).
type candidate struct {
	lease int64
	rev   int64 // create revision: its place in the election, its term
	host  string
	err   error
}

func newState(keys registry.Keys) *state {
	return &state{
		keys:      keys,
		hosts:     map[string]*registry.Host{},
		insts:     map[string]map[string]*registry.Instance{},
		hostSvcs:  map[string][]string{},
		elections: map[string][]candidate{},
		maint:     map[string]*registry.Maintenance{},
		maintSvc:  map[string]map[string]*registry.Maintenance{},
		names:     map[string]string{},
		portLists: map[string][]registry.Port{},
		sweepAt:   minSweep,
	}
}

// minSweep is the fewest names the state holds before it looks for unused
// ones: below it, the table is too small to matter.
const minSweep = 1024

// intern returns the state's copy of name, making one when it has none.
// Only put calls it, and only with names it is about to store: a sweep
// (at the start of put) then keeps them.
func (s *state) intern(name string) string {
	if name == "" {
		return ""
	}
	if c, ok := s.names[name]; ok {
		return c
	}
	c := strings.Clone(name)
	s.names[c] = c
	return c
}

// sweep drops the names no record holds any more (hosts and services that
// left), so that a registry whose names change over time does not grow
// the table without end. It walks the whole state, and runs when the
// table has doubled since the last sweep: its cost per new name is
// constant.
func (s *state) sweep() {
	live := make(map[string]string, len(s.names))
	lists := map[string][]registry.Port{}
	keep := func(name string) {
		if name != "" {
			live[name] = name
		}
	}
	for host := range s.hosts {
		keep(host)
	}
	for svc, m := range s.insts {
		keep(svc)
		for host, in := range m {
			keep(host)
			keep(in.Shard)
			keep(string(in.State))
			for _, p := range in.Ports {
				keep(p.Name)
				keep(p.Proto)
			}
			if len(in.Ports) > 0 {
				lists[portListKey(in.Ports)] = in.Ports
			}
		}
	}
	for svc, cands := range s.elections {
		keep(svc)
		for _, c := range cands {
			keep(c.host)
		}
	}
	for host := range s.maint {
		keep(host)
	}
	for host, hm := range s.maintSvc {
		keep(host)
		for svc := range hm {
			keep(svc)
		}
	}
	s.names, s.portLists = live, lists
	s.sweepAt = max(2*len(live), minSweep)
}

// internInstance points a decoded instance's names at the state's copies:
// host and service are the key's (the record was checked to name them).
func (s *state) internInstance(in *registry.Instance, host, svc string) {
	in.Host, in.Service = host, svc
	in.Shard = s.intern(in.Shard)
	in.State = registry.State(s.intern(string(in.State)))
	if len(in.Ports) == 0 {
		return
	}
	key := portListKey(in.Ports)
	if ports, ok := s.portLists[key]; ok {
		in.Ports = ports
		return
	}
	for i := range in.Ports {
		in.Ports[i].Name = s.intern(in.Ports[i].Name)
		in.Ports[i].Proto = s.intern(in.Ports[i].Proto)
	}
	// The key is interned so that it counts towards the next sweep, which
	// drops the lists no instance holds any more.
	s.portLists[s.intern(key)] = slices.Clip(in.Ports)
}

// portListKey identifies a port list: names and protocols are DNS labels,
// so "/" and "," cannot occur in them.
func portListKey(ports []registry.Port) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name)
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(p.Port))
		b.WriteByte('/')
		b.WriteString(p.Proto)
		b.WriteByte(',')
	}
	return b.String()
}

// changes collects what one batch of events touched, so that subscribers
// rebuild only those services (and the local view when a host changed).
type changes struct {
	services map[string]struct{}
	hosts    map[string]struct{}
}

func newChanges() changes {
	return changes{services: map[string]struct{}{}, hosts: map[string]struct{}{}}
}

// decodeError is a key or value the state skipped, with the metric reason.
type decodeError struct {
	reason string
	err    error
}

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// skipErr makes a registry error a decodeError with the reason registry gave it.
func skipErr(err error) error {
	reason, ok := registry.ReasonOf(err)
	if !ok {
		reason = registry.ReasonRecord
	}
	return &decodeError{string(reason), err}
}

// put applies a key's new value. A value that does not decode removes what
// the key held before: the key now holds garbage, and serving its old good
// value would be serving data etcd no longer has. The returned error (a
// *decodeError) says why the value was skipped.
func (s *state) put(key string, value []byte, createRev int64, ch changes) error {
	k, err := s.keys.Parse(key)
	if err != nil {
		return skipErr(err)
	}
	if len(s.names) >= s.sweepAt {
		s.sweep()
	}
	switch k.Kind {
	case registry.KindHost:
		h, err := registry.DecodeHost(k, value)
		if err != nil {
			s.delHost(k.Host, ch)
			return skipErr(err)
		}
		host := s.intern(k.Host)
		h.Name = host
		s.hosts[host] = h
		s.touchHost(host, ch)
	case registry.KindInstance:
		in, err := registry.DecodeInstance(k, value)
		if err != nil {
			s.delInstance(k.Host, k.Service, ch)
			return skipErr(err)
		}
		host, svc := s.intern(k.Host), s.intern(k.Service)
		s.internInstance(in, host, svc)
		m := s.insts[svc]
		if m == nil {
			m = map[string]*registry.Instance{}
			s.insts[svc] = m
		}
		if _, ok := m[host]; !ok {
			s.ninsts++
		}
		m[host] = in
		hs := s.hostSvcs[host]
		if i, found := slices.BinarySearch(hs, svc); !found {
			s.hostSvcs[host] = slices.Insert(hs, i, svc)
		}
		ch.services[svc] = struct{}{}
	case registry.KindElection:
		// A candidate whose value is garbage stays, so that it still holds
		// its place in the order (registry.Leader).
		rc := registry.NewCandidate(key, createRev, value)
		svc := s.intern(k.Service)
		c := candidate{lease: k.Lease, rev: rc.CreateRevision, host: s.intern(rc.Host), err: rc.Err}
		cands := s.elections[svc]
		if i := slices.IndexFunc(cands, func(o candidate) bool { return o.lease == k.Lease }); i >= 0 {
			cands[i] = c
		} else {
			s.elections[svc] = append(cands, c)
		}
		ch.services[svc] = struct{}{}
		if c.err != nil {
			return skipErr(c.err)
		}
	case registry.KindMaintenance:
		m, err := registry.DecodeMaintenance(k, value)
		if err != nil {
			// Garbage takes nothing out of service: an operator's typo
			// must not drain a host. It is counted and logged instead.
			s.delMaint(k.Host, k.Service, ch)
			return skipErr(err)
		}
		s.setMaint(s.intern(k.Host), s.intern(k.Service), m, ch)
	}
	return nil
}

// del applies a key's deletion. Keys that never parsed are ignored.
func (s *state) del(key string, ch changes) {
	k, err := s.keys.Parse(key)
	if err != nil {
		return
	}
	switch k.Kind {
	case registry.KindHost:
		s.delHost(k.Host, ch)
	case registry.KindInstance:
		s.delInstance(k.Host, k.Service, ch)
	case registry.KindElection:
		cands := s.elections[k.Service]
		if i := slices.IndexFunc(cands, func(o candidate) bool { return o.lease == k.Lease }); i >= 0 {
			if len(cands) == 1 {
				delete(s.elections, k.Service)
			} else {
				s.elections[k.Service] = slices.Delete(cands, i, i+1)
			}
			ch.services[k.Service] = struct{}{}
		}
	case registry.KindMaintenance:
		s.delMaint(k.Host, k.Service, ch)
	}
}

func (s *state) delHost(host string, ch changes) {
	if _, ok := s.hosts[host]; !ok {
		return
	}
	delete(s.hosts, host)
	s.touchHost(host, ch)
}

// touchHost marks a host and every service with an instance on it changed:
// an instance without its own addrs is served with its host's.
func (s *state) touchHost(host string, ch changes) {
	ch.hosts[host] = struct{}{}
	for _, svc := range s.hostSvcs[host] {
		ch.services[svc] = struct{}{}
	}
}

func (s *state) delInstance(host, svc string, ch changes) {
	m := s.insts[svc]
	if _, ok := m[host]; !ok {
		return
	}
	delete(m, host)
	s.ninsts--
	if len(m) == 0 {
		delete(s.insts, svc)
	}
	hs := s.hostSvcs[host]
	if i, found := slices.BinarySearch(hs, svc); found {
		if len(hs) == 1 {
			delete(s.hostSvcs, host)
		} else {
			s.hostSvcs[host] = slices.Delete(hs, i, i+1)
		}
	}
	ch.services[svc] = struct{}{}
}

// setMaint records a maintenance record of a host (svc "") or of one
// instance, and marks what it covers changed.
func (s *state) setMaint(host, svc string, m *registry.Maintenance, ch changes) {
	if svc == "" {
		s.maint[host] = m
	} else {
		hm := s.maintSvc[host]
		if hm == nil {
			hm = map[string]*registry.Maintenance{}
			s.maintSvc[host] = hm
		}
		hm[svc] = m
	}
	s.touchMaint(host, svc, ch)
}

// delMaint removes a maintenance record, if there was one.
func (s *state) delMaint(host, svc string, ch changes) {
	if svc == "" {
		if _, ok := s.maint[host]; !ok {
			return
		}
		delete(s.maint, host)
	} else {
		hm := s.maintSvc[host]
		if _, ok := hm[svc]; !ok {
			return
		}
		delete(hm, svc)
		if len(hm) == 0 {
			delete(s.maintSvc, host)
		}
	}
	s.touchMaint(host, svc, ch)
}

// touchMaint marks the services a maintenance record of host (svc "": the
// whole host) covers changed. Unlike touchHost it leaves the host itself
// alone: maintenance changes no address, so no local view.
func (s *state) touchMaint(host, svc string, ch changes) {
	if svc != "" {
		ch.services[svc] = struct{}{}
		return
	}
	for _, svc := range s.hostSvcs[host] {
		ch.services[svc] = struct{}{}
	}
}

// maintOf returns the maintenance that holds an instance out of service at
// now: its own record when active, else its host's when active, else nil.
// An expired record counts as absent (registry.Maintenance.Active).
func (s *state) maintOf(host, svc string, now time.Time) *registry.Maintenance {
	if m := s.maintSvc[host][svc]; m != nil && m.Active(now) {
		return m
	}
	if m := s.maint[host]; m != nil && m.Active(now) {
		return m
	}
	return nil
}

// buildTime is the time answers built from s are for (see state.now).
func (s *state) buildTime() time.Time {
	if s.now.IsZero() {
		return time.Now()
	}
	return s.now
}

// nextExpiry returns the earliest end of a maintenance record after the
// Unix second after: when answers must next be rebuilt without any etcd
// event. ok is false when no record ends after it.
func (s *state) nextExpiry(after int64) (until int64, ok bool) {
	consider := func(m *registry.Maintenance) {
		if m.Until > after && (!ok || m.Until < until) {
			until, ok = m.Until, true
		}
	}
	for _, m := range s.maint {
		consider(m)
	}
	for _, hm := range s.maintSvc {
		for _, m := range hm {
			consider(m)
		}
	}
	return until, ok
}

// expired marks changed the services covered by maintenance records that
// ended in the Unix seconds (after, upTo]: their answers take those
// instances back.
func (s *state) expired(after, upTo int64, ch changes) {
	for host, m := range s.maint {
		if m.Until > after && m.Until <= upTo {
			s.touchMaint(host, "", ch)
		}
	}
	for host, hm := range s.maintSvc {
		for svc, m := range hm {
			if m.Until > after && m.Until <= upTo {
				s.touchMaint(host, svc, ch)
			}
		}
	}
}

// leader returns the service's elected master and its term
// (registry.Leader). ok is false when there is no candidate or the leading
// candidate's value is garbage: the next one is not master, so nobody is
// served.
func (s *state) leader(svc string) (host string, term int64, ok bool) {
	cands := s.elections[svc]
	lead, ok := registry.Leader(func(yield func(registry.Candidate) bool) {
		for _, c := range cands {
			if !yield(registry.Candidate{Host: c.host, Err: c.err, CreateRevision: c.rev}) {
				return
			}
		}
	})
	if !ok || lead.Err != nil {
		return "", 0, false
	}
	return lead.Host, lead.CreateRevision, true
}

// addrsOf is the addresses an instance is served with: its own when it has
// any, else its host's (none when the host has no record).
func (s *state) addrsOf(in *registry.Instance) registry.Addrs {
	if len(in.Addrs) > 0 {
		return in.Addrs
	}
	if h := s.hosts[in.Host]; h != nil {
		return h.Addrs
	}
	return nil
}
