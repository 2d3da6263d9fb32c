// Package servicereg is rollcall's host agent (docs/DESIGN.md, "The agent"):
// it watches the systemd units named in its config and, while a unit is
// active, keeps that service's instance record in etcd on the agent's one
// lease, next to the host's record with its addresses sorted into networks.
// Each record carries the instance's state: the worst of its health checks
// (internal/health runs them), draining when an operator drained it, paced
// by a per-agent rate limit so that a flapping check cannot flood etcd. A
// master_election service campaigns while it is in service (passing or
// warning, not in maintenance).
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
//	lease.go        lease renewals every TTL/3, each a single request on a fresh stream; failed ones retried soon, past the lease's deadline too, until etcd says it is gone
//	retry.go        the main loop's retry policy: jittered back-off, never longer than half the lease TTL
//	ownwatch.go     a watch on the host's own subtree: deletions it did not make wake the loop
//	presence.go     the one presence decision (unit state -> present) and the desired records
//	healthstate.go  an instance's state from its checks and drain, and stateBook: since, and the state-write rate limit
//	maintenance.go  the watch on the host's maintenance records (internal/regwatch) and what is in force when
//	drain.go        Drain and Undrain: the drain in memory, answered once etcd took the write
//	control.go      the control socket (drain, undrain, status): ServeControl, CallControl, the JSON protocol
//	status.go       Status: each service's state, drain, maintenance and checks, served as /status
//	systemd.go      the D-Bus watcher: PropertiesChanged signals plus a periodic resync
//	addrs.go        host address detection and the pure sorting into networks
//	config.go       Config: its fields, defaults and checks (Normalize), printed back as YAML
//	configparse.go  LoadConfig: the YAML file and services.d/*.yml, every mistake as file:line
//	hooks.go        the seam for master elections (in-service and lease changes)
//	master.go       master elections of master_election services and the on_master/on_standby commands
//	denied.go       refused writes and TLS mistakes, explained with the fix
//	metrics.go      Prometheus metrics, /healthz and /status on a private registry
//
// Everything the agent writes lives under registry.Keys.HostDir(host) and
// shares one lease, so a stopped agent revokes it and a dead one vanishes
// when it expires. cmd/servicereg wraps the Agent with flags, signals,
// sd_notify and the control socket; `rollcall dev` embeds it with
// Options.Static services. testdata/healthd is a test service with an
// HTTP, a TCP and a gRPC health endpoint whose readiness a test flips.
package servicereg
