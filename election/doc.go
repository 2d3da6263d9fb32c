// Package election elects one master per service on etcd (docs/DESIGN.md,
// "Elections and terms"; keys P/elections/<service>/<lease-hex>). It wraps
// go.etcd.io/etcd/client/v3/concurrency: candidates write their host name under
// the service's election prefix on a lease, and the key with the lowest create
// revision wins. That create revision is the master's term, a fencing token that
// only grows.
//
// What this package adds to concurrency.Election:
//
//   - A Leadership that ends by itself: its Context is cancelled and its Done
//     channel closes when the leader key is deleted, the lease expires or is
//     revoked, or etcd has not confirmed the lease for longer than the step-down
//     bound (see DefaultMargin and README.md), so work done "as master" stops
//     before another host can be elected.
//   - A lost leadership is never resumed: every Campaign writes a new key, so a
//     new leadership always has a larger term than any before it.
//   - Candidacies share the caller's lease (the agent keeps one lease per host
//     for everything) or use a session of their own (`rollcall elect`).
//   - Observe and CurrentLeader read who the master is, for the CLI and tests.
//
// The agent (servicereg) and `rollcall elect` (internal/elect) are its
// users. The files:
//
//	candidate.go   Candidate and its options; Campaign: write a new key, wait for the turn
//	wait.go        waiting for the keys ahead to go, with a re-read every 5s
//	leadership.go  Leadership: term, Guard, Resign, and the goroutines that end it on loss
//	timing.go      the step-down rule: DefaultMargin and when to renew and step down
//	run.go         Candidate.Run: campaign, lead, resign, again, for as long as the lease lives
//	observe.go     CurrentLeader and Observe: who the master is, for the CLI and tests
package election
