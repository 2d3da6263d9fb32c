// Package devmode is `rollcall dev` (what `make run` runs): the whole system
// of docs/DESIGN.md ("The system on one page", "Binaries") in one process,
// for trying rollcall on one machine without installing anything:
//
//   - an embedded etcd (go.etcd.io/etcd/server/v3/embed), its client URL on
//     127.0.0.1:2379 so that plain etcdctl works, its data in a folder;
//   - CoreDNS with the rollcall plugin, started in-process from a Corefile
//     (the same build as bin/coredns, via internal/corednsbuild), answering
//     for infra.example.com. on 127.0.0.1:1053, with the plugin's HTTP API
//     and status page on 127.0.0.1:8053 (its `http` option);
//   - a servicereg agent registering this host and a demo service `demo` that
//     is always present, plus any units of an agent config (-services-config)
//     while they are active, when systemd is reachable.
//
// Run checks every port before it starts anything, so a taken port is one
// clear error rather than half a system; it stops in reverse order when its
// context ends (DNS, then the agent revoking its lease, then etcd), so the data
// folder is always left consistent.
//
// It is a command library: cmd/rollcall/dev.go turns the command line into a
// Config and calls Run; nothing here reads flags (Config carries the flag
// names its errors cite).
//
// The files:
//
//	run.go       Run, and the system it starts: etcd, the agent and CoreDNS in order, stopped in reverse
//	config.go    Config: what `rollcall dev` runs, with its defaults and checks
//	ports.go     checking every address Run will listen on before anything starts
//	corefile.go  the Corefile it serves and the banner it prints once up
package devmode
