// Package fault runs rollcall under faults (issue #7): etcd members hung
// (raft stopped at once, client connections left open and silent, the
// hardest crash for a client to notice) and restarted under registration
// churn, the whole cluster down for longer than the agents' leases, CoreDNS
// restarted while the registry changes, and an elected master cut off from
// etcd by a blackhole. Everything is real and separate, as
// in production (docs/DESIGN.md, "The system on one page"): a 3-member embedded etcd cluster on
// loopback, servicereg agents as processes with their own host names against
// one private systemd user manager, and bin/coredns with the rollcall plugin
// queried over UDP and TCP. Assertions are about outcomes (every query
// answered, the registry and DNS converge to the units that run, hooks in
// the right order), never about how fast they came.
//
// The package's only code is Proxy (proxy.go), a TCP proxy a test can cut to
// partition one client from etcd.
package fault
