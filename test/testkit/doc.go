// Package testkit starts the real parts rollcall's tests run against: embedded
// etcd (one node or a cluster), CoreDNS from a Corefile string, a systemd user
// manager, and the project's binaries. Every test that needs a server gets it
// here, so no test spells that set-up twice. Everything listens on loopback and
// is stopped by t.Cleanup. For a program that is not a test (the benchmark,
// bench/), StartEtcd, StartCluster, StartSystemd and StartCoreDNS have New
// forms that return the error and leave the stopping (Close) to the caller,
// and FreePort has TryFreePort; each Start function is the New one, failing
// the test on its error and closing at the test's end. The files:
//
//	etcd.go           StartEtcd and StartCluster (NewEtcd, NewCluster): embedded etcd, one member or n
//	kv.go             Put, Delete, Exists, Count: etcd reads and writes that fail the test on an error
//	prefix.go         LastAddr: the last address of a prefix, for tests of prefix containment
//	restart.go        stopping and restarting cluster members (fault tests)
//	auth.go           StartAuthEtcd: etcd with client certificates and auth on, as in production
//	tls.go            NewTLS: a CA and certificates made for one test
//	coredns.go        StartCoreDNS (NewCoreDNS) in this process, stopped with its plugins' OnShutdown, and Query/Exchange with options (EDNS0, ECS)
//	coredns_ports.go  StartCoreDNSPorts: CoreDNS on free ports chosen for it, retried when taken
//	systemd.go        StartSystemd (NewSystemd): a private systemd user manager, units written for it, UnitName
//	bin.go            RepoRoot, and Binary/Cmd: the project's binaries, built once
//	process.go        Process: a started child process, stopped with a grace period
//	buffer.go         Buffer: a process's output, safe to read while it is written
//	ports.go          FreePort (TryFreePort): a free loopback port
//	wait.go           Eventually (EventuallySaw): poll a condition until a deadline, naming what it last saw
//	inflight.go       StartInFlightServer: an HTTP server that counts the requests it serves at once
//	leak.go           the goroutines a leak check ignores after embedded etcd
package testkit
