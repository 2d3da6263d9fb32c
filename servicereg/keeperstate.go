package servicereg

import (
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/registry"
)

// keeperState is the main loop's state with no etcd in it: the desired state
// it writes, the lease it holds, whether etcd may differ from the desired
// records, and the back-off of the retry after a failure. Its methods take
// what happened (the inputs changed, a lease was granted or lost, a write
// worked or failed, the retry is due, the agent stops) and return what the
// loop has to do about it; next says what to do when nothing happens. So
// every transition is tested without etcd (keeperstate_test.go), and keep
// (keeper.go) only turns channel events into these calls and their answers
// into etcd calls, metrics and log lines. Only the main loop touches it.
type keeperState struct {
	want  desiredState     // the last desired state built; want.cfg is nil until one was
	lease clientv3.LeaseID // the lease held; 0 while none is
	// stale: the inputs may have changed since want was built, so it is
	// built again before anything is written.
	stale bool
	// dirty: etcd may differ from want (changed inputs, a new lease, the
	// periodic check, a failed write), so a reconcile is due.
	dirty bool
	// waiting: an etcd operation failed and the retry timer runs. Nothing is
	// tried before it fires, so a failing etcd is asked at the back-off's
	// pace however often the inputs change meanwhile.
	waiting bool
	// failing: the last etcd operation failed, so an outage is on; the next
	// success ends it.
	failing bool
	// retries paces the retries of an outage (retryPolicy): built at the
	// first failure, again when the TTL changed, and Reset by a success.
	retries    *backoff.Backoff
	retriesTTL time.Duration // the TTL retries was built for
	// registered: the services the last good reconcile wrote on the current
	// lease, so that each registration and deregistration is logged once.
	registered map[string]bool
}

func newKeeperState() *keeperState {
	return &keeperState{
		stale:      true,
		dirty:      true,
		registered: map[string]bool{},
	}
}

// keeperStep is what the main loop does next.
type keeperStep int

const (
	// stepIdle: no desired state could be built yet; only a change of the
	// inputs can help.
	stepIdle keeperStep = iota
	// stepWait: nothing to do until an event (input, timer, keepalive).
	stepWait
	// stepGrant: ask etcd for a new lease.
	stepGrant
	// stepReconcile: make etcd equal to want on the held lease.
	stepReconcile
)

func (s keeperStep) String() string {
	return [...]string{"idle", "wait", "grant", "reconcile"}[s]
}

// next returns what to do now.
func (s *keeperState) next() keeperStep {
	switch {
	case s.want.cfg == nil:
		return stepIdle
	case s.waiting:
		return stepWait
	case s.lease == 0:
		return stepGrant
	case s.dirty:
		return stepReconcile
	}
	return stepWait
}

// inputsChanged: a poke (units, addresses or config changed; the host's
// subtree was touched) or the periodic check. The desired state is built
// again and reconciled.
func (s *keeperState) inputsChanged() {
	s.stale, s.dirty = true, true
}

// recompute: something that only some records depend on changed (a
// service's health, a maintenance record) or a timer of the desired state
// ran out. The desired state is built again, and reconciled only when its
// records differ (setDesired): a health change that waits for the rate
// limit costs no etcd request.
func (s *keeperState) recompute() {
	s.stale = true
}

// setDesired takes a newly built desired state. Records that differ from
// the last desired state's make a reconcile due. One that changes the
// host, prefix or TTL (rotate) ends the held lease: its keys would stay
// under the old host or prefix, or live by the old TTL. setDesired returns
// that lease for the loop to revoke (0: none); a new one is granted next.
func (s *keeperState) setDesired(want desiredState) (revoke clientv3.LeaseID) {
	if !maps.Equal(s.want.records, want.records) {
		s.dirty = true
	}
	s.want, s.stale = want, false
	if want.rotate && s.lease != 0 {
		revoke = s.lease
		s.dropLease()
	}
	return revoke
}

// desiredUnavailable: the inputs could not be turned into records. The last
// desired state, if any, stays in force; the next change of the inputs tries
// again (trying on every event would only log the same error again).
func (s *keeperState) desiredUnavailable() {
	s.stale = false
}

// granted: etcd granted lease id. Everything is written again on it, since
// the keys on a lost lease are gone or going. recovered reports that this
// ends an outage.
func (s *keeperState) granted(id clientv3.LeaseID) (recovered bool) {
	s.lease, s.dirty = id, true
	return s.succeeded()
}

// writeDone is what a reconcile that matched etcd to want changed.
type writeDone struct {
	recovered    bool     // it ends an outage
	registered   []string // services registered now that were not before, sorted
	deregistered []string // services no longer registered, sorted
	present      int      // services registered now
}

// written: a reconcile made etcd equal to want.
func (s *keeperState) written() writeDone {
	s.dirty = false
	done := writeDone{recovered: s.succeeded()}
	for _, name := range slices.Sorted(maps.Keys(s.want.svcs)) {
		if !s.want.present[name] {
			continue
		}
		done.present++
		if !s.registered[name] {
			done.registered = append(done.registered, name)
			s.registered[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.registered)) {
		if !s.want.present[name] {
			done.deregistered = append(done.deregistered, name)
			delete(s.registered, name)
		}
	}
	return done
}

// succeeded ends an outage, if one is on, and restarts the back-off.
func (s *keeperState) succeeded() (recovered bool) {
	recovered = s.failing
	s.failing = false
	if s.retries != nil {
		s.retries.Reset()
	}
	return recovered
}

// failure is what the loop does about a failed etcd operation.
type failure struct {
	// first: this failure starts an outage; the one moment to probe what is
	// wrong with the connection (explain, denied.go).
	first bool
	// warn: log it. Only the first failure of an outage is logged, and not a
	// refusal: explain logs that one with the fix.
	warn bool
	// retryIn: when to try again; drawn from the back-off's next window,
	// never longer than half the lease TTL (retryPolicy).
	retryIn time.Duration
}

// failed: an etcd operation (grant or write) failed; denied says etcd refused
// it for lack of rights. Nothing is tried again until retryDue.
func (s *keeperState) failed(denied bool) failure {
	f := failure{first: !s.failing, warn: !s.failing && !denied}
	s.failing, s.waiting = true, true
	var ttl time.Duration
	if s.want.cfg != nil {
		ttl = s.want.cfg.TTL
	}
	if s.retries == nil || s.retriesTTL != ttl {
		// The cap follows the TTL; a TTL changed during an outage starts
		// the growth over, at the first window.
		s.retries, s.retriesTTL = backoff.New(retryPolicy(ttl)), ttl
	}
	f.retryIn = s.retries.Next()
	return f
}

// retryDue: the retry timer fired. What failed is tried again: the grant if
// no lease is held, else a reconcile.
func (s *keeperState) retryDue() {
	s.waiting, s.dirty = false, true
}

// leaseLost: etcd no longer keeps the lease (its renewals gave up, or a write
// found it gone). It returns the lost lease for the log (0: none was held).
// A new one is granted at once, unless a retry is pending: then when it is
// due.
func (s *keeperState) leaseLost() (lost clientv3.LeaseID) {
	lost = s.lease
	s.dropLease()
	return lost
}

func (s *keeperState) dropLease() {
	s.lease, s.dirty = 0, true
	clear(s.registered)
}

// stop: the agent stops. It returns the lease to revoke, so that every name
// of the host vanishes at once (0: none is held).
func (s *keeperState) stop() (revoke clientv3.LeaseID) {
	revoke, s.lease = s.lease, 0
	return revoke
}

// heldRecord is a key's value and lease as etcd holds them.
type heldRecord struct {
	value string
	lease clientv3.LeaseID
}

// recordChanges compares the host's subtree as etcd holds it (held, by key)
// with want on lease. It returns the keys to write, sorted: missing, with
// another value, or on another lease (a lost lease's keys are moved to the
// new one); and the keys to delete, sorted: the host's own host and instance
// keys that want does not hold. Keys of other hosts or of shapes it does not
// know are never deleted, whatever the range read held.
func recordChanges(want desiredState, held map[string]heldRecord, lease clientv3.LeaseID) (writes, deletes []string) {
	for _, key := range slices.Sorted(maps.Keys(want.records)) {
		if h, ok := held[key]; ok && h.value == want.records[key] && h.lease == lease {
			continue
		}
		writes = append(writes, key)
	}
	host := want.cfg.Host
	for _, key := range slices.Sorted(maps.Keys(held)) {
		if _, ok := want.records[key]; ok {
			continue
		}
		parsed, err := want.keys.Parse(key)
		if err != nil || parsed.Host != host || (parsed.Kind != registry.KindHost && parsed.Kind != registry.KindInstance) {
			continue
		}
		deletes = append(deletes, key)
	}
	return writes, deletes
}
