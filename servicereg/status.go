package servicereg

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
)

// Status is the agent's account of its services: what /status serves and
// `servicereg status` prints. Check output lives here and in the agent's
// memory only; etcd gets state changes (healthstate.go).
type Status struct {
	Host string    `json:"host"`
	Time time.Time `json:"time"`
	// Etcd is "ok" while the lease is held and etcd answers, else why not
	// (what /healthz says).
	Etcd string `json:"etcd"`
	// MaintenanceKnown: the agent has read its host's maintenance records
	// (it does not campaign before).
	MaintenanceKnown bool `json:"maintenance_known"`
	// Maintenance is the whole host's, when one is in force.
	Maintenance *MaintenanceStatus `json:"maintenance,omitempty"`
	Services    []InstanceStatus   `json:"services"`
}

// InstanceStatus is one service of the agent.
type InstanceStatus struct {
	Service string `json:"service"`
	Unit    string `json:"unit"`
	// Active: the unit is active or reloading.
	Active bool `json:"active"`
	// MinActiveLeft is how long the unit must stay active before its first
	// registration (0: none left).
	MinActiveLeft time.Duration `json:"min_active_left_ns,omitempty"`
	// Registered: the agent holds the instance's record in etcd, with
	// State, Since (Unix seconds) and Reason.
	Registered bool           `json:"registered"`
	State      registry.State `json:"state,omitempty"`
	Since      int64          `json:"since,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	// Pending is a state the checks reached that waits for the state-write
	// rate limit before etcd gets it.
	Pending *PendingState `json:"pending,omitempty"`
	Drained bool          `json:"drained"`
	// Maintenance is the maintenance in force for this instance (the
	// host's or its own).
	Maintenance *MaintenanceStatus `json:"maintenance,omitempty"`
	// InService: registered, passing or warning, no maintenance: served
	// under the service's names, and campaigning when MasterElection.
	InService      bool `json:"in_service"`
	MasterElection bool `json:"master_election,omitempty"`
	// Checks are the service's health checks with their last results, while
	// its unit is active.
	Checks []healthcheck.CheckStatus `json:"checks,omitempty"`
}

// PendingState is a change waiting for the state-write rate limit.
type PendingState struct {
	State  registry.State `json:"state"`
	Reason string         `json:"reason,omitempty"`
}

// MaintenanceStatus is a maintenance record in force and what it covers.
type MaintenanceStatus struct {
	Scope string `json:"scope"` // "host" or "service"
	registry.Maintenance
}

// Status returns the agent's account of its services now.
func (a *Agent) Status() Status {
	checks := map[string][]healthcheck.CheckStatus{}
	for _, s := range a.monitor.Status() {
		checks[s.Service] = s.Checks
	}
	now := time.Now()
	known, recs := a.maint.snapshot()
	a.mu.Lock()
	st := Status{Host: a.cfg.Host, Time: now, Etcd: "ok", MaintenanceKnown: known}
	view := maps.Clone(a.view)
	a.mu.Unlock()
	if reason := a.health.status(now); reason != "" {
		st.Etcd = reason
	}
	if m, scope := maintenanceFor(recs, "", now); m != nil {
		st.Maintenance = &MaintenanceStatus{Scope: scope, Maintenance: *m}
	}
	for _, name := range slices.Sorted(maps.Keys(view)) {
		v := view[name]
		v.Checks = checks[name]
		if v.MinActiveLeft > 0 {
			// The view was built at the last reconcile; count down from now.
			v.MinActiveLeft = max(v.minActiveEnd.Sub(now), 0)
		}
		st.Services = append(st.Services, v.InstanceStatus)
	}
	return st
}

// instanceView is an InstanceStatus as the main loop last built it
// (computeDesired), with what Status needs to bring it up to date.
type instanceView struct {
	InstanceStatus
	minActiveEnd time.Time
}

// serveStatus is /status: Status as JSON.
func (a *Agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.Status())
}
