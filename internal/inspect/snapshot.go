package inspect

import (
	"fmt"
	"sort"
	"strconv"

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
}

// Service is a service with its present instances and its election state.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"` // sorted by host
	// Master is the current master, nil when nobody campaigns.
	Master *Master `json:"master,omitempty"`
	// Candidates counts the election keys (the master included).
	Candidates int `json:"candidates"`
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
	lease      int64
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

type candidate struct {
	host  string // "" when malformed
	lease int64
	rev   int64
}

// Build decodes the key-values listed under keys at revision rev into a
// Snapshot. ttls gives each lease's time to live (from Leases and etcd); a
// lease missing from it leaves TTL unset. Build never fails: what it cannot
// decode goes to Skipped.
func Build(keys registry.Keys, rev int64, kvs []KV, ttls map[int64]LeaseTTL) *Snapshot {
	s := &Snapshot{Prefix: keys.Prefix(), Revision: rev}
	hosts := map[string]*Host{}
	type inst struct {
		rec   *registry.Instance
		lease int64
	}
	instances := map[string][]inst{} // by service
	candidates := map[string][]candidate{}

	skip := func(key string, err error) {
		s.Skipped = append(s.Skipped, Skipped{Key: key, Reason: err.Error()})
	}
	host := func(name string) *Host {
		h, ok := hosts[name]
		if !ok {
			h = &Host{Name: name, Addrs: map[string][]string{}, Services: []string{}}
			hosts[name] = h
		}
		return h
	}

	sorted := append([]KV(nil), kvs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	for _, kv := range sorted {
		k, err := keys.Parse(kv.Key)
		if err != nil {
			skip(kv.Key, err)
			continue
		}
		switch k.Kind {
		case registry.KindHost:
			rec, err := registry.DecodeHost(k, kv.Value)
			if err != nil {
				skip(kv.Key, err)
				continue
			}
			h := host(k.Host)
			h.Record = true
			h.Addrs = addrStrings(rec.Addrs)
			h.lease = kv.Lease
		case registry.KindInstance:
			rec, err := registry.DecodeInstance(k, kv.Value)
			if err != nil {
				skip(kv.Key, err)
				continue
			}
			instances[k.Service] = append(instances[k.Service], inst{rec: rec, lease: kv.Lease})
		case registry.KindElection:
			name, err := registry.DecodeCandidate(kv.Value)
			if err != nil {
				skip(kv.Key, err)
				name = "" // still a candidate: etcd's election counts its key
			}
			candidates[k.Service] = append(candidates[k.Service], candidate{host: name, lease: kv.Lease, rev: kv.CreateRevision})
		}
	}

	ttlOf := func(lease int64) *int64 {
		if lease == 0 {
			return nil
		}
		lt, ok := ttls[lease]
		if !ok {
			return nil
		}
		v := lt.TTL
		return &v
	}

	names := map[string]bool{}
	for n := range instances {
		names[n] = true
	}
	for n := range candidates {
		names[n] = true
	}
	for name := range names {
		svc := Service{Name: name, Instances: []Instance{}, Candidates: len(candidates[name])}
		roles := map[string]string{}
		if cs := candidates[name]; len(cs) > 0 {
			sort.Slice(cs, func(i, j int) bool { return cs[i].rev < cs[j].rev })
			svc.Master = &Master{Host: cs[0].host, Term: cs[0].rev, Lease: LeaseHex(cs[0].lease)}
			for i := len(cs) - 1; i >= 0; i-- {
				if cs[i].host == "" {
					continue
				}
				if i == 0 {
					roles[cs[i].host] = "master"
				} else if roles[cs[i].host] == "" {
					roles[cs[i].host] = "standby"
				}
			}
		}
		for _, in := range instances[name] {
			h := host(in.rec.Host)
			h.Services = append(h.Services, name)
			if !h.Record && h.lease == 0 {
				// No host record to say which lease the host holds:
				// its instances' lease is the next best answer.
				h.lease = in.lease
			}
			out := Instance{
				Host:  in.rec.Host,
				Shard: in.rec.Shard,
				Ports: append([]registry.Port{}, in.rec.Ports...),
				Lease: LeaseHex(in.lease),
				TTL:   ttlOf(in.lease),
				Role:  roles[in.rec.Host],
			}
			switch {
			case len(in.rec.Addrs) > 0:
				out.Addrs, out.AddrsFrom = addrStrings(in.rec.Addrs), "instance"
			case h.Record:
				out.Addrs, out.AddrsFrom = h.Addrs, "host"
			default:
				out.Addrs, out.AddrsFrom = map[string][]string{}, "none"
			}
			svc.Instances = append(svc.Instances, out)
		}
		sort.Slice(svc.Instances, func(i, j int) bool { return svc.Instances[i].Host < svc.Instances[j].Host })
		s.Services = append(s.Services, svc)
	}
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Name < s.Services[j].Name })

	// Instances were resolved only after every key was read, so each one saw
	// its host's record whatever the key order; now finish the hosts.
	for _, h := range hosts {
		sort.Strings(h.Services)
		h.Lease = LeaseHex(h.lease)
		h.TTL = ttlOf(h.lease)
		if lt, ok := ttls[h.lease]; ok && h.lease != 0 {
			h.GrantedTTL = lt.Granted
		}
		s.Hosts = append(s.Hosts, *h)
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })
	if s.Services == nil {
		s.Services = []Service{}
	}
	if s.Hosts == nil {
		s.Hosts = []Host{}
	}
	if s.Skipped == nil {
		s.Skipped = []Skipped{}
	}
	return s
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
}

// Counts returns the snapshot's totals.
func (s *Snapshot) Counts() Counts {
	c := Counts{Services: len(s.Services), Hosts: len(s.Hosts), Skipped: len(s.Skipped)}
	for _, svc := range s.Services {
		c.Instances += len(svc.Instances)
		c.Candidates += svc.Candidates
	}
	return c
}

func (c Counts) String() string {
	return fmt.Sprintf("%d services, %d instances, %d hosts, %d election candidates; malformed keys skipped: %d",
		c.Services, c.Instances, c.Hosts, c.Candidates, c.Skipped)
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
