// Package servicereg is rollcall's host agent (shared/DESIGN.md, "Agent"): it
// watches the systemd units named in its config and, while a unit is active,
// keeps that service's instance record in etcd on the agent's one lease, next to
// the host's record with its addresses sorted into networks.
//
// The main loop is Agent.Run (agent.go). Around it:
//
//	config.go, configparse.go  the YAML config, its defaults and its checks (file:line errors)
//	addrs.go                   host address detection and the pure sorting into networks
//	presence.go                the one presence decision (unit state -> present) and the desired records
//	systemd.go                 the D-Bus watcher: PropertiesChanged signals plus a periodic resync
//	keeper.go                  the lease and the reconcile loop that makes etcd match the desired records
//	ownwatch.go                a watch on the host's own subtree: deletions it did not make wake the loop
//	hooks.go                   the seam for master elections (presence and lease changes)
//	metrics.go                 Prometheus metrics and /healthz on a private registry
//
// Everything the agent writes lives under registry.Keys.HostDir(host) and shares
// one lease, so a stopped agent revokes it and a dead one vanishes when it
// expires. cmd/servicereg wraps the Agent with flags, signals and sd_notify;
// `rollcall dev` embeds it with Options.Static services.
package servicereg
