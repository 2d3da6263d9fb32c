package inspect

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollcall/rollcall/registry"
)

// KV is one listed key-value, with the metadata inspect needs. It mirrors the
// fields of etcd's mvccpb.KeyValue so that Build can be tested without etcd.
type KV struct {
	Key            string
	Value          []byte
	Lease          int64 // 0: no lease
	CreateRevision int64
}

// Snapshot is the registry as read at one revision.
type Snapshot struct {
	Prefix   string
	Revision int64
	Services []Service // sorted by name
	Hosts    []Host    // sorted by name
	Skipped  []Skipped // in key order
	// Maintenance is every maintenance record, expired ones too, by host
	// then service (the host-wide record first).
	Maintenance []Maintenance
	// ReadAt is when it was read: which maintenance is active, and how
	// long ago a state began.
	ReadAt time.Time
}

// Service is a service with its present instances and its election state.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"` // sorted by host
	// Master is the current master, nil when nobody campaigns.
	Master *Master `json:"master,omitempty"`
	// Candidates counts the election keys (the master included).
	Candidates int `json:"candidates"`
	// FailingOpen is set when no instance is in service but some are
	// critical (and not in maintenance): DNS then serves those, unless its
	// Corefile says fail_open off (plugin/rollcall/README.md, "Health").
	FailingOpen bool `json:"failing_open,omitempty"`
}

// Instance is a service present on a host.
type Instance struct {
	Host  string `json:"host"`
	Shard string `json:"shard,omitempty"`
	// Addrs are the addresses DNS serves for the instance, by network: the
	// instance's own when it sets them, else its host's.
	Addrs map[string][]string `json:"addrs"`
	// AddrsFrom says where Addrs came from: "instance", "host", or "none"
	// when the instance sets none and its host has no valid host record (DNS
	// then has no address to serve for it).
	AddrsFrom string          `json:"addrs_from"`
	Ports     []registry.Port `json:"ports"`
	Lease     string          `json:"lease,omitempty"`
	TTL       *int64          `json:"ttl,omitempty"`
	// Role is "master" or "standby" when the host campaigns in the service's
	// election, else empty.
	Role string `json:"role,omitempty"`
	// State is the instance's health as its agent wrote it: passing (also
	// for a record without one, from an agent older than health checks),
	// warning, critical or draining.
	State string `json:"state"`
	// Since is when the state began, Unix seconds; absent when the agent
	// did not say.
	Since int64 `json:"since,omitempty"`
	// Reason is why a critical instance is critical, as its agent says.
	Reason string `json:"reason,omitempty"`
	// Maintenance is the active maintenance record that covers the
	// instance, its own or its host's; absent when none.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// InService says whether DNS serves the instance under its service's
	// names: passing or warning, and not in maintenance (but see
	// Service.FailingOpen).
	InService bool `json:"in_service"`
}

// Maintenance is an operator's maintenance record (`rollcall maint`).
type Maintenance struct {
	Host    string `json:"host"`
	Service string `json:"service,omitempty"` // absent: the whole host
	Reason  string `json:"reason"`
	Who     string `json:"who,omitempty"`
	// Until is when it ends by itself, Unix seconds; absent: when it is
	// disabled.
	Until int64 `json:"until,omitempty"`
	// Active is false once until has passed: the record then counts as
	// absent, and DNS serves the instances again.
	Active bool `json:"active"`
}

// Master is the owner of a service's election key with the lowest create
// revision (docs/DESIGN.md, "Elections and terms"): that revision is
// its term.
type Master struct {
	// Host is the candidate's host, empty when the winning key's value is
	// malformed (the key is then also listed as skipped).
	Host  string `json:"host"`
	Term  int64  `json:"term"`
	Lease string `json:"lease"`
}

// Host is a host seen in the registry.
type Host struct {
	Name string `json:"name"`
	// Record is false when instances name the host but its host record is
	// missing or malformed.
	Record     bool                `json:"record"`
	Addrs      map[string][]string `json:"addrs"`
	Services   []string            `json:"services"` // sorted
	Lease      string              `json:"lease,omitempty"`
	TTL        *int64              `json:"ttl,omitempty"`
	GrantedTTL int64               `json:"granted_ttl,omitempty"`
	// Maintenance is the host's own active maintenance record, covering
	// every instance on it; absent when none.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	lease       int64
}

// Skipped is a key that could not be decoded, and why.
type Skipped struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// LeaseTTL is what etcd says about a lease: seconds left (-1 when expired or
// unknown to etcd) and the TTL it was granted with.
type LeaseTTL struct {
	TTL, Granted int64
}

// LeaseHex spells a lease ID as etcdctl does.
func LeaseHex(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 16)
}

// builder gathers what Build has decoded: records by service and host, and
// election candidates, until every key is read.
type builder struct {
	keys      registry.Keys
	ttls      map[int64]LeaseTTL
	s         *Snapshot
	hosts     map[string]*Host
	instances map[string][]instance              // by service
	cands     map[string][]registry.Candidate    // by service
	leases    map[string]int64                   // election key -> the lease it is on
	maint     map[string]map[string]*Maintenance // host -> service ("" whole host) -> record
}

type instance struct {
	rec   *registry.Instance
	lease int64
}

// Build decodes the key-values listed under keys at revision rev into a
// Snapshot, read now. ttls gives each lease's time to live (from Leases and
// etcd); a lease missing from it leaves TTL unset. Build never fails: what it
// cannot decode goes to Skipped.
func Build(keys registry.Keys, rev int64, kvs []KV, ttls map[int64]LeaseTTL) *Snapshot {
	return BuildAt(keys, rev, kvs, ttls, time.Now())
}

// BuildAt is Build for a snapshot read at now: which maintenance is active
// depends on it.
func BuildAt(keys registry.Keys, rev int64, kvs []KV, ttls map[int64]LeaseTTL, now time.Time) *Snapshot {
	b := &builder{
		keys:      keys,
		ttls:      ttls,
		s:         &Snapshot{Prefix: keys.Prefix(), Revision: rev, ReadAt: now},
		hosts:     map[string]*Host{},
		instances: map[string][]instance{},
		cands:     map[string][]registry.Candidate{},
		leases:    map[string]int64{},
		maint:     map[string]map[string]*Maintenance{},
	}
	sorted := append([]KV(nil), kvs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	for _, kv := range sorted {
		b.add(kv)
	}
	// Instances are resolved only after every key was read, so each one
	// sees its host's record whatever the key order.
	b.services()
	b.finishHosts()
	s := b.s
	if s.Services == nil {
		s.Services = []Service{}
	}
	if s.Skipped == nil {
		s.Skipped = []Skipped{}
	}
	if s.Maintenance == nil {
		s.Maintenance = []Maintenance{}
	}
	return s
}

// add decodes one key-value, or lists it in Skipped.
func (b *builder) add(kv KV) {
	k, err := b.keys.Parse(kv.Key)
	if err != nil {
		b.skip(kv.Key, err)
		return
	}
	switch k.Kind {
	case registry.KindHost:
		rec, err := registry.DecodeHost(k, kv.Value)
		if err != nil {
			b.skip(kv.Key, err)
			return
		}
		h := b.host(k.Host)
		h.Record = true
		h.Addrs = addrStrings(rec.Addrs)
		h.lease = kv.Lease
	case registry.KindInstance:
		rec, err := registry.DecodeInstance(k, kv.Value)
		if err != nil {
			b.skip(kv.Key, err)
			return
		}
		b.instances[k.Service] = append(b.instances[k.Service], instance{rec: rec, lease: kv.Lease})
	case registry.KindElection:
		// A malformed value is skipped but still a candidate: etcd's
		// election counts its key (registry.Leader).
		c := registry.NewCandidate(kv.Key, kv.CreateRevision, kv.Value)
		if c.Err != nil {
			b.skip(kv.Key, c.Err)
		}
		b.cands[k.Service] = append(b.cands[k.Service], c)
		b.leases[kv.Key] = kv.Lease
	case registry.KindMaintenance:
		rec, err := registry.DecodeMaintenance(k, kv.Value)
		if err != nil {
			// Like the plugin: garbage holds nothing out of service.
			b.skip(kv.Key, err)
			return
		}
		m := &Maintenance{Host: k.Host, Service: k.Service, Reason: rec.Reason, Who: rec.Who, Until: rec.Until,
			Active: rec.Active(b.s.ReadAt)}
		if b.maint[k.Host] == nil {
			b.maint[k.Host] = map[string]*Maintenance{}
		}
		b.maint[k.Host][k.Service] = m
		// Keys arrive sorted, and "<host>" sorts before "<host>/<service>".
		b.s.Maintenance = append(b.s.Maintenance, *m)
	}
}

// maintOf returns the active maintenance covering host's instance of
// service, as the plugin picks it: the instance's own, else the host's.
func (b *builder) maintOf(host, service string) *Maintenance {
	if m := b.maint[host][service]; m != nil && m.Active {
		return m
	}
	if m := b.maint[host][""]; m != nil && m.Active {
		return m
	}
	return nil
}

func (b *builder) skip(key string, err error) {
	b.s.Skipped = append(b.s.Skipped, Skipped{Key: key, Reason: err.Error()})
}

// host returns the host named name, seen for the first time or not.
func (b *builder) host(name string) *Host {
	h, ok := b.hosts[name]
	if !ok {
		h = &Host{Name: name, Addrs: map[string][]string{}, Services: []string{}}
		b.hosts[name] = h
	}
	return h
}

// ttlOf is the TTL etcd reported for lease, nil for no lease or no report.
func (b *builder) ttlOf(lease int64) *int64 {
	if lease == 0 {
		return nil
	}
	lt, ok := b.ttls[lease]
	if !ok {
		return nil
	}
	v := lt.TTL
	return &v
}

// services makes a Service of every name that has instances or candidates.
func (b *builder) services() {
	names := map[string]bool{}
	for n := range b.instances {
		names[n] = true
	}
	for n := range b.cands {
		names[n] = true
	}
	for name := range names {
		svc := Service{Name: name, Instances: []Instance{}, Candidates: len(b.cands[name])}
		var roles map[string]string
		svc.Master, roles = b.master(name)
		inService, critical := 0, 0
		for _, in := range b.instances[name] {
			out := b.instance(name, in, roles[in.rec.Host])
			if out.InService {
				inService++
			} else if out.Maintenance == nil && out.State == string(registry.StateCritical) {
				critical++
			}
			svc.Instances = append(svc.Instances, out)
		}
		svc.FailingOpen = inService == 0 && critical > 0
		sort.Slice(svc.Instances, func(i, j int) bool { return svc.Instances[i].Host < svc.Instances[j].Host })
		b.s.Services = append(b.s.Services, svc)
	}
	sort.Slice(b.s.Services, func(i, j int) bool { return b.s.Services[i].Name < b.s.Services[j].Name })
}

// master returns the master of service's election (nil when nobody
// campaigns) and the role of each campaigning host: "master" for the leader,
// "standby" for the others. A leader whose value is not a host name is shown
// with its term and no host, and gives nobody the master role.
func (b *builder) master(service string) (*Master, map[string]string) {
	cs := b.cands[service]
	lead, ok := registry.Leader(slices.Values(cs))
	if !ok {
		return nil, nil
	}
	roles := map[string]string{}
	for _, c := range cs {
		switch {
		case c.Host == "":
		case c.Key == lead.Key:
			roles[c.Host] = "master"
		case roles[c.Host] == "":
			roles[c.Host] = "standby"
		}
	}
	return &Master{Host: lead.Host, Term: lead.CreateRevision, Lease: LeaseHex(b.leases[lead.Key])}, roles
}

// instance is in as shown under service, its host now known.
func (b *builder) instance(service string, in instance, role string) Instance {
	h := b.host(in.rec.Host)
	h.Services = append(h.Services, service)
	if !h.Record && h.lease == 0 {
		// No host record to say which lease the host holds: its
		// instances' lease is the next best answer.
		h.lease = in.lease
	}
	out := Instance{
		Host:        in.rec.Host,
		Shard:       in.rec.Shard,
		Ports:       append([]registry.Port{}, in.rec.Ports...),
		Lease:       LeaseHex(in.lease),
		TTL:         b.ttlOf(in.lease),
		Role:        role,
		State:       string(in.rec.State.Effective()),
		Since:       in.rec.Since,
		Reason:      in.rec.Reason,
		Maintenance: b.maintOf(in.rec.Host, service),
	}
	out.InService = out.Maintenance == nil && in.rec.State.InService()
	switch {
	case len(in.rec.Addrs) > 0:
		out.Addrs, out.AddrsFrom = addrStrings(in.rec.Addrs), "instance"
	case h.Record:
		out.Addrs, out.AddrsFrom = h.Addrs, "host"
	default:
		out.Addrs, out.AddrsFrom = map[string][]string{}, "none"
	}
	return out
}

// finishHosts sorts each host's services, sets its lease and TTL, and lists
// the hosts in the snapshot.
func (b *builder) finishHosts() {
	for name, byService := range b.maint {
		// A host in maintenance that registers nothing is still listed,
		// so that the record is not forgotten.
		if m := byService[""]; m != nil && m.Active {
			b.host(name).Maintenance = m
		}
	}
	for _, h := range b.hosts {
		sort.Strings(h.Services)
		h.Lease = LeaseHex(h.lease)
		h.TTL = b.ttlOf(h.lease)
		if lt, ok := b.ttls[h.lease]; ok && h.lease != 0 {
			h.GrantedTTL = lt.Granted
		}
		b.s.Hosts = append(b.s.Hosts, *h)
	}
	sort.Slice(b.s.Hosts, func(i, j int) bool { return b.s.Hosts[i].Name < b.s.Hosts[j].Name })
	if b.s.Hosts == nil {
		b.s.Hosts = []Host{}
	}
}

// Leases returns the distinct non-zero leases of kvs, sorted: those Load asks
// etcd about.
func Leases(kvs []KV) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, kv := range kvs {
		if kv.Lease != 0 && !seen[kv.Lease] {
			seen[kv.Lease] = true
			out = append(out, kv.Lease)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func addrStrings(a registry.Addrs) map[string][]string {
	out := make(map[string][]string, len(a))
	for nw, ips := range a {
		ss := make([]string, len(ips))
		for i, ip := range ips {
			ss[i] = ip.String()
		}
		out[nw] = ss
	}
	return out
}

// Counts summarises a snapshot for `rollcall status`.
type Counts struct {
	Services   int `json:"services"`
	Instances  int `json:"instances"`
	Hosts      int `json:"hosts"`
	Candidates int `json:"candidates"`
	Skipped    int `json:"skipped"`
	// States counts instances by ShownState: passing, warning, critical,
	// draining, maintenance (those absent count none).
	States map[string]int `json:"states"`
	// FailingOpen counts the services failing open (Service.FailingOpen).
	FailingOpen int `json:"failing_open"`
}

// StateMaintenance is the state shown for an instance that an active
// maintenance record covers, whatever its agent says.
const StateMaintenance = "maintenance"

// ShownState is the state to show for an instance: "maintenance" while a
// maintenance record covers it, else its agent's state. DNS's TXT record
// of <host>.<service>.Z says the same.
func (in *Instance) ShownState() string {
	if in.Maintenance != nil {
		return StateMaintenance
	}
	return in.State
}

// shownStates is the order states are counted in.
var shownStates = []string{string(registry.StatePassing), string(registry.StateWarning), string(registry.StateCritical), string(registry.StateDraining), StateMaintenance}

// Counts returns the snapshot's totals.
func (s *Snapshot) Counts() Counts {
	c := Counts{Services: len(s.Services), Hosts: len(s.Hosts), Skipped: len(s.Skipped), States: map[string]int{}}
	for _, svc := range s.Services {
		c.Instances += len(svc.Instances)
		c.Candidates += svc.Candidates
		for i := range svc.Instances {
			c.States[svc.Instances[i].ShownState()]++
		}
		if svc.FailingOpen {
			c.FailingOpen++
		}
	}
	return c
}

func (c Counts) String() string {
	instances := fmt.Sprintf("%d instances", c.Instances)
	var states []string
	for _, st := range shownStates {
		if n := c.States[st]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(states) > 0 {
		instances += " (" + strings.Join(states, ", ") + ")"
	}
	failing := ""
	if c.FailingOpen > 0 {
		failing = fmt.Sprintf("; services failing open: %d", c.FailingOpen)
	}
	return fmt.Sprintf("%d services, %s, %d hosts, %d election candidates%s; malformed keys skipped: %d",
		c.Services, instances, c.Hosts, c.Candidates, failing, c.Skipped)
}

// Only keeps the named services (all of them when names is empty) and
// returns the names that are not registered, in the order given. Hosts and
// skipped keys are kept whole.
func (s *Snapshot) Only(names []string) (missing []string) {
	if len(names) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	kept := []Service{}
	found := map[string]bool{}
	for _, svc := range s.Services {
		if want[svc.Name] {
			kept = append(kept, svc)
			found[svc.Name] = true
		}
	}
	s.Services = kept
	for _, n := range names {
		if !found[n] {
			missing = append(missing, n)
			found[n] = true // report each once
		}
	}
	return missing
}
