// Command bench is rollcall's benchmark harness (`make bench`): it runs the
// rollcall CoreDNS plugin side by side with CoreDNS's own yardsticks (whoami,
// file, etcd) under dnsperf, measures scale, propagation, failover and the
// load agents put on etcd, and writes BENCHMARKS.md. What is measured follows
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
//	stats.go        Histogram: latency percentiles at three significant digits
//	report.go       Report and Section: BENCHMARKS.md as Markdown
//	parallel.go     parallel: n calls, at most so many at once, stopping at the first error
//	cleanup.go      cleanups: what a part started, stopped when it ends; skipError: a part that cannot run here
package main
