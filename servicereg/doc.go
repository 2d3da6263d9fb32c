// Package servicereg is rollcall's host agent (docs/DESIGN.md, "The agent"):
// it watches the systemd units named in its config and, while a unit is
// active, keeps that service's instance record in etcd on the agent's one
// lease, next to the host's record with its addresses sorted into networks.
//
// Agent.Run (agent.go) starts the watchers and runs the main loop, keep
// (keeper.go), which owns the lease and reconciles etcd with the desired
// records; what it does when is decided by keeperState (keeperstate.go),
// which holds no etcd and is tested without it. Every retry loop (the main
// loop's, the lease renewals', the elections', the own-subtree watch's and
// the systemd connection's) waits through internal/backoff: jittered, so
// that agents failing together in one outage do not all come back in the
// same instant, each loop's policy next to it with the reasons. The files:
//
//	agent.go        Agent: New, Run, Reload, readiness and liveness, address re-detection
//	keeper.go       the main loop keep: the desired state, and the etcd calls (grant, reconcile, revoke) it makes
//	keeperstate.go  keeperState: the main loop's transitions (lease granted/lost, write done/failed/refused, retry) and the reconcile diff
//	lease.go        lease renewals every TTL/3, each a single request on a fresh stream; failed ones retried soon, until the lease's deadline
//	retry.go        the main loop's retry policy: jittered back-off, never longer than half the lease TTL
//	ownwatch.go     a watch on the host's own subtree: deletions it did not make wake the loop
//	presence.go     the one presence decision (unit state -> present) and the desired records
//	systemd.go      the D-Bus watcher: PropertiesChanged signals plus a periodic resync
//	addrs.go        host address detection and the pure sorting into networks
//	config.go       Config: its fields, defaults and checks (Normalize), printed back as YAML
//	configparse.go  LoadConfig: the YAML file and services.d/*.yml, every mistake as file:line
//	hooks.go        the seam for master elections (presence and lease changes)
//	master.go       master elections of master_election services and the on_master/on_standby commands
//	denied.go       refused writes and TLS mistakes, explained with the fix
//	metrics.go      Prometheus metrics and /healthz on a private registry
//
// Everything the agent writes lives under registry.Keys.HostDir(host) and
// shares one lease, so a stopped agent revokes it and a dead one vanishes
// when it expires. cmd/servicereg wraps the Agent with flags, signals and
// sd_notify; `rollcall dev` embeds it with Options.Static services.
package servicereg
