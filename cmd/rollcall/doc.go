// Command rollcall is the operator's CLI (docs/DESIGN.md, "Binaries"):
//
//	rollcall dev      the whole system in one process (what `make run` runs)
//	rollcall ls       services and their instances
//	rollcall status   hosts and leases, masters and terms, malformed keys
//	rollcall elect    run a command while this host is a service's master
//
// main only dispatches: each command lives in a package of its own
// (internal/devmode, internal/inspect, internal/electcmd) so that it can be
// tested without building the binary. The files:
//
//	main.go     the dispatch by command word, usage and exit codes
//	dev.go      `rollcall dev`: its flags, handed to internal/devmode
//	inspect.go  `rollcall ls` and `rollcall status`: the etcd flags, handed to internal/inspect
package main
