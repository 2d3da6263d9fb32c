// Command servicereg is rollcall's host agent: it registers this host's
// active systemd units in etcd, each with the state its health checks give
// it (see package servicereg and docs/DESIGN.md, "The agent"). Run bare, it
// is the agent: flags, signals, sd_notify, the metrics listener and the
// control socket wired around servicereg.Agent. Run with a subcommand word
// (drain, undrain, status) it is a client of the running agent, talking to
// it over the control socket (servicereg.CallControl). Exit codes: 0
// success, 1 failure, 2 a bad command line.
//
// The files:
//
//	main.go     the agent: flags, usage, signals (SIGTERM, SIGHUP), sd_notify, the metrics listener, the control socket; the dispatch to subcommands
//	control.go  `servicereg drain` and `undrain`: the flags that find the socket, interleaved flags, drain -wait
//	status.go   `servicereg status`: the agent's Status as tables, or its JSON
package main
