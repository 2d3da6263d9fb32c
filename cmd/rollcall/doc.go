// Command rollcall is the operator's CLI (docs/DESIGN.md, "Binaries"):
//
//	rollcall dev      the whole system in one process (what `make run` runs)
//	rollcall ls       services and their instances
//	rollcall status   hosts and leases, masters and terms, malformed keys
//	rollcall elect    run a command while this host is a service's master
//	rollcall maint    take a host or an instance out of DNS on purpose, and back
//
// Every subcommand has the same shape: a file of its own here holding its
// usage text, its flags and `func run<Name>(ctx, args, stdout, stderr) int`,
// which parses the command line, checks it, and hands what the command does
// to a command library in internal/ (internal/devmode, internal/inspect,
// internal/elect), which reads no flags. The commands that talk to an etcd
// cluster take the same etcd flags, registered and checked by one type,
// etcdFlags, whose -endpoints defaults to $ROLLCALL_ENDPOINTS. Go's flag
// package takes every flag as -name or --name. Exit codes: 0 success, 1 the
// command failed, 2 a bad command line (`rollcall elect` adds its own, see
// its help).
//
// The files:
//
//	main.go       the dispatch by command word, the usage, exit codes, the flag set every command starts from
//	etcdflags.go  etcdFlags: -endpoints (and $ROLLCALL_ENDPOINTS), -prefix, TLS, -user, -timeout
//	dev.go        `rollcall dev`: its flags, handed to internal/devmode
//	ls.go         `rollcall ls`: its flags and SERVICE arguments
//	status.go     `rollcall status`: its flags
//	show.go       what ls and status share: one read of etcd through internal/inspect, rendered
//	elect.go      `rollcall elect`: its flags, SERVICE -- CMD, and signals, handed to internal/elect
//	maint.go      `rollcall maint enable|disable|ls`: the maintenance record of a host or instance, and refusals explained
package main
