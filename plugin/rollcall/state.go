package rollcall

import (
	"maps"
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
	hostSvcs  map[string]map[string]struct{}           // host -> services it has an instance of
	elections map[string]map[int64]registry.Candidate  // service -> lease -> candidate
	ninsts    int                                      // instances in insts
	// Maintenance records as written, expired ones too: whether one is
	// active depends on the time an answer is built (maintOf).
	maint    map[string]*registry.Maintenance            // host -> the whole host's
	maintSvc map[string]map[string]*registry.Maintenance // host -> service -> that instance's
	// now is the time answers are being built for, set by the loader
	// before it has its subscribers build them: every block then agrees on
	// which maintenance has expired. Zero means the time of building.
	now time.Time
}

func newState(keys registry.Keys) *state {
	return &state{
		keys:      keys,
		hosts:     map[string]*registry.Host{},
		insts:     map[string]map[string]*registry.Instance{},
		hostSvcs:  map[string]map[string]struct{}{},
		elections: map[string]map[int64]registry.Candidate{},
		maint:     map[string]*registry.Maintenance{},
		maintSvc:  map[string]map[string]*registry.Maintenance{},
	}
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
	switch k.Kind {
	case registry.KindHost:
		h, err := registry.DecodeHost(k, value)
		if err != nil {
			s.delHost(k.Host, ch)
			return skipErr(err)
		}
		s.hosts[k.Host] = h
		s.touchHost(k.Host, ch)
	case registry.KindInstance:
		in, err := registry.DecodeInstance(k, value)
		if err != nil {
			s.delInstance(k.Host, k.Service, ch)
			return skipErr(err)
		}
		m := s.insts[k.Service]
		if m == nil {
			m = map[string]*registry.Instance{}
			s.insts[k.Service] = m
		}
		if _, ok := m[k.Host]; !ok {
			s.ninsts++
		}
		m[k.Host] = in
		hs := s.hostSvcs[k.Host]
		if hs == nil {
			hs = map[string]struct{}{}
			s.hostSvcs[k.Host] = hs
		}
		hs[k.Service] = struct{}{}
		ch.services[k.Service] = struct{}{}
	case registry.KindElection:
		// A candidate whose value is garbage stays, so that it still holds
		// its place in the order (registry.Leader).
		c := registry.NewCandidate(key, createRev, value)
		m := s.elections[k.Service]
		if m == nil {
			m = map[int64]registry.Candidate{}
			s.elections[k.Service] = m
		}
		m[k.Lease] = c
		ch.services[k.Service] = struct{}{}
		if c.Err != nil {
			return skipErr(c.Err)
		}
	case registry.KindMaintenance:
		m, err := registry.DecodeMaintenance(k, value)
		if err != nil {
			// Garbage takes nothing out of service: an operator's typo
			// must not drain a host. It is counted and logged instead.
			s.delMaint(k.Host, k.Service, ch)
			return skipErr(err)
		}
		s.setMaint(k.Host, k.Service, m, ch)
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
		if m := s.elections[k.Service]; m != nil {
			if _, ok := m[k.Lease]; ok {
				delete(m, k.Lease)
				if len(m) == 0 {
					delete(s.elections, k.Service)
				}
				ch.services[k.Service] = struct{}{}
			}
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
	for svc := range s.hostSvcs[host] {
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
	if hs := s.hostSvcs[host]; hs != nil {
		delete(hs, svc)
		if len(hs) == 0 {
			delete(s.hostSvcs, host)
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
	for svc := range s.hostSvcs[host] {
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
	lead, ok := registry.Leader(maps.Values(s.elections[svc]))
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
