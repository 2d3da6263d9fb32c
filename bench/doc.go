// Command bench is rollcall's benchmark harness (`make bench`): it runs the
// rollcall CoreDNS plugin side by side with CoreDNS's own yardsticks (whoami,
// file, etcd) under dnsperf, measures scale, propagation, failover, the
// load agents put on etcd and what their health checks cost, hundreds of
// simulated DNS readers and thousands of simulated agents on a 3-node etcd
// (with a model of 10,000 hosts in one tier or two), and writes
// BENCHMARKS.md. What is measured follows
// from docs/DESIGN.md, "Serving and freshness": the plugin serves from an
// in-memory index fed by one etcd watch, so it should cost no more than
// whoami and beat file.
//
// Speed is measured only here, never asserted in tests: the machine is
// shared, so contenders run in alternating rounds and the report gives
// medians and ratios. bench_test.go runs a seconds-long smoke version that
// checks every contender answers correctly. The files:
//
//	main.go         flags, CPU pinning, and Run: every part in turn, then the report
//	env.go          Env: the embedded etcd with the data sets, the binaries, a work folder
//	data.go         the generated data sets, in rollcall's layout, SkyDNS's and a zone file
//	contenders.go   the CoreDNS server blocks under test: rollcall, whoami, file, etcd
//	server.go       one bin/coredns process: start, readiness, CPU time, memory, profiles
//	check.go        checking every contender's answers before and after the load
//	load.go         running dnsperf with the query mix and reading its results
//	throughput.go   the throughput part: alternating rounds, paired ratios, targets
//	shapes.go       throughput by name shape, rollcall beside whoami
//	deployed.go     throughput as deployed: errors, prometheus, log, multisocket in front
//	breakdown.go    where a query's CPU time goes, from CPU profiles under load
//	scale.go        the big data set: first sync, memory, throughput beside the small one
//	propagation.go  etcd write -> DNS answer, and systemctl start/stop -> DNS with an agent
//	failover.go     how long `<service>-master` takes to name another host
//	agent.go        bin/servicereg processes for the propagation, failover and etcd load parts
//	etcdload.go     the load agents put on etcd, from etcd's own metrics
//	memory.go       per-host memory in two tiers: a cache-only server beside the central one, with the unit's settings
//	readers.go      the readers part: N simulated DNS readers' lag, and their recovery from a restart and a compaction
//	fleet.go        fleet: the simulated readers (rollcall.Reader), what each applied and when
//	writer.go       the steady write load the readers follow, and the marker writes recoveries wait for
//	leases.go       the leases part: thousands of simulated agents' renewals, etcd's CPU, lapsed leases
//	simagent.go     simAgent: one simulated host, its lease renewed as servicereg renews it
//	model.go        the model: the scale parts' numbers extrapolated to 10,000 hosts, one tier against two
//	cluster.go      procCluster: a 3-node etcd of separate processes (etcdmember/), for CPU apart from the clients
//	scaleflags.go   ScaleConfig: the flags of the readers, leases and memory parts
//	health.go       health checks: an agent's CPU for many checks, etcd writes of flapping checks, check failure -> gone from DNS
//	healthagent.go  the health part's agents (bin/servicereg with HTTP checks) and the HTTP server their checks probe
//	healthflags.go  HealthConfig: the health part's flags
//	healthref.go    the yardstick beside the agent's checks: this program started again as a bare Go HTTP client
//	api.go          the http option beside DNS: API requests/s, blocking-query wake-up, DNS qps under API load
//	stats.go        Histogram: latency percentiles at three significant digits
//	report.go       Report and Section: BENCHMARKS.md as Markdown
//	parallel.go     parallel: n calls, at most so many at once, stopping at the first error
//	cleanup.go      cleanups: what a part started, stopped when it ends; skipError: a part that cannot run here
package main
