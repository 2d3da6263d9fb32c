package servicereg

import (
	"fmt"

	"github.com/rollcall/rollcall/registry"
)

// UnitState is what systemd says about a unit.
type UnitState struct {
	LoadState   string // loaded, not-found, masked, error, ...
	ActiveState string // active, reloading, inactive, failed, activating, deactivating
	SubState    string // running, exited, dead, ...
}

// Present is the one presence decision (docs/DESIGN.md, "The agent"): a unit in
// ActiveState active or reloading is present; anything else, including a unit
// systemd cannot find, is not. A service is registered exactly while its unit
// is present.
func Present(u UnitState) bool {
	if u.LoadState == "not-found" {
		return false
	}
	return u.ActiveState == "active" || u.ActiveState == "reloading"
}

// presentServices decides which services are present now: static ones always,
// configured ones while Present says so of their unit. A unit systemd has not
// reported yet is absent.
func presentServices(svcs, static []Service, units map[string]UnitState) map[string]bool {
	out := make(map[string]bool, len(svcs)+len(static))
	for _, s := range static {
		out[s.Name] = true
	}
	for _, s := range svcs {
		if u, ok := units[s.Unit]; ok && Present(u) {
			out[s.Name] = true
		}
	}
	return out
}

// desiredRecords returns every key the agent should hold in etcd and its
// value: the host record, and one instance record per registered service
// (those in health), carrying its state, since and reason.
func desiredRecords(keys registry.Keys, host string, addrs registry.Addrs, svcs []Service, health map[string]instanceHealth) (map[string]string, error) {
	out := make(map[string]string, len(health)+1)
	hv, err := registry.EncodeHost(&registry.Host{Name: host, Addrs: addrs})
	if err != nil {
		return nil, fmt.Errorf("host record of %s: %w", host, err)
	}
	out[keys.Host(host)] = string(hv)
	for _, s := range svcs {
		h, ok := health[s.Name]
		if !ok {
			continue
		}
		in := &registry.Instance{Service: s.Name, Host: host, Shard: s.Shard, Ports: s.Ports,
			State: h.State, Since: h.Since, Reason: h.Reason}
		v, err := registry.EncodeInstance(in)
		if err != nil {
			return nil, fmt.Errorf("instance record of %s on %s: %w", s.Name, host, err)
		}
		out[keys.Instance(host, s.Name)] = string(v)
	}
	return out, nil
}
