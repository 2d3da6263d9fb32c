// Package health runs an agent's health checks and derives each service's
// state from them (docs/DESIGN.md, "Health"). servicereg gives a Monitor the
// checks of each service it watches (Set, Remove), runs it (Run), and asks
// it for a service's state and reason (State) when it writes the instance
// record; OnChange tells it when to ask again. The checks' own output stays
// here, for the agent's /status (Status): etcd gets state changes only.
//
// The rules a Monitor keeps:
//
//   - Every check starts critical. Rise non-critical results in a row bring
//     it up; while up, its state is its latest result's (passing or
//     warning); fall critical results in a row take it down. A service's
//     state is the worst over its checks, and a critical service carries a
//     one-line reason naming the check that failed.
//   - A check's first run is at a random point of its first interval, so
//     that an agent starting with many checks, or many agents starting
//     together, do not probe in step; every later run is an interval +/- 5 %
//     after the one before. A run still going when the next is due makes
//     that next one skipped, not queued.
//   - At most Options.MaxConcurrent checks run at once per agent.
//   - No check resolves a name: targets are IP literals (Spec.Validate), so
//     a check never depends on rollcall's own DNS, which it feeds.
//
// The files:
//
//	spec.go      Spec and Kind: one configured check, its defaults, checks and printed form
//	monitor.go   Monitor and Options: services' checks, Set/Remove/State/Status, Run
//	check.go     one running check: its schedule loop and its rise/fall state
//	status.go    Result, CheckStatus, ServiceStatus: what /status shows; the reason text
//	schedule.go  the pure scheduling functions: first-run offset and jittered interval
//	probe.go     the probes: http, tcp, grpc and exec, each one run within its timeout
//	metrics.go   the Prometheus metrics of checks, when a Registerer is given
package health
