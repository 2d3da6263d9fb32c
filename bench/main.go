package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Config is one benchmark run's settings (the flags).
type Config struct {
	Bin           string // folder holding coredns, servicereg
	ServiceregBin string // the agent binary; default Bin/servicereg
	Out           string // report path, "" for none
	Parts         map[string]bool
	Small         Dataset // throughput data set
	Big           Dataset // scale data set
	Rounds        int
	Duration      time.Duration // per contender per round
	Warmup        time.Duration
	ShapeFor      time.Duration // per run of the by-shape comparison
	Clients       int           // dnsperf -c
	Outstanding   int           // dnsperf -q
	CheckQueries  int           // names checked per server before and after load
	Changes       int           // propagation: etcd writes timed
	AgentChanges  int           // propagation: unit starts timed
	Failovers     int           // failover: repetitions of each kind
	Agents        int           // etcd load: agents started
	LoadInterval  time.Duration
	AgentTTL      time.Duration
	ProfileFor    time.Duration // CPU profile of rollcall, 0 for none
	KeepProfiles  string        // folder to keep pprof files in, "" to drop them
	FixedRate     int           // qps of the fixed-rate latency run
	Pin           Pinning
	GoLoad        bool // use the Go load generator, not dnsperf
	Quick         bool
	CommandLine   string
	Scale         ScaleConfig  // the readers, leases and memory parts
	Health        HealthConfig // the health part
}

// Servicereg is the agent binary's path.
func (c Config) Servicereg() string {
	if c.ServiceregBin != "" {
		return c.ServiceregBin
	}
	return filepath.Join(c.Bin, "servicereg")
}

// historyFile is the hand-kept record of earlier runs' misses and their
// fixes, relative to the repository root `make bench` runs in.
const historyFile = "bench/HISTORY.md"

// allParts are the parts in the order they run.
var allParts = []string{"throughput", "deployed", "scale", "propagation", "agent", "failover", "etcdload", "health", "api", "memory", "readers", "leases", "model"}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		cfg       Config
		parts     string
		services  = fs.Int("services", 1000, "services in the throughput data set")
		instances = fs.Int("instances", 10, "instances per service in the throughput data set")
		bigSvc    = fs.Int("scale-services", 10000, "services in the scale data set")
		bigInst   = fs.Int("scale-instances", 10, "instances per service in the scale data set")
		pin       = fs.Bool("pin", true, "pin CoreDNS to CPU 0 (GOMAXPROCS=1) and dnsperf and this program to CPU 1")
	)
	fs.StringVar(&cfg.Bin, "bin", "bin", "folder with the built binaries (make build)")
	fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "report to write (empty: print to stdout)")
	fs.BoolVar(&cfg.Quick, "quick", false, "smoke mode: tiny data sets, ~1 s runs, few repetitions")
	fs.StringVar(&parts, "parts", "all", "comma-separated parts to run: "+strings.Join(allParts, ","))
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "load duration per contender per round")
	fs.IntVar(&cfg.Rounds, "rounds", 10, "rounds of contenders (A B C D A B C D ...)")
	fs.IntVar(&cfg.Clients, "clients", 10, "dnsperf -c: client sockets")
	fs.IntVar(&cfg.Outstanding, "outstanding", 100, "dnsperf -q: queries in flight")
	fs.IntVar(&cfg.FixedRate, "rate", 2000, "qps of the fixed-rate latency run (every contender must sustain it)")
	fs.IntVar(&cfg.Changes, "changes", 1000, "propagation: etcd writes timed per contender")
	fs.IntVar(&cfg.AgentChanges, "agent-changes", 30, "propagation: unit starts timed")
	fs.IntVar(&cfg.Failovers, "failovers", 5, "failover: repetitions of each kind")
	fs.IntVar(&cfg.Agents, "agents", 10, "etcd load: agents started")
	fs.DurationVar(&cfg.LoadInterval, "load-interval", 20*time.Second, "etcd load: measuring interval")
	fs.DurationVar(&cfg.AgentTTL, "agent-ttl", 3*time.Second, "lease TTL of the candidates in the failover part (the etcd load part uses the agent default, 10s)")
	fs.DurationVar(&cfg.ProfileFor, "profile", 5*time.Second, "CPU-profile each contender for this long under load, and heap-profile rollcall at scale (0: no profiles)")
	fs.StringVar(&cfg.KeepProfiles, "keep-profiles", "", "folder to keep the CPU and heap profiles in")
	fs.BoolVar(&cfg.GoLoad, "go-load", false, "use the Go load generator even when dnsperf is installed")
	scale := scaleFlags(fs)
	health := healthFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Quick {
		// Smoke mode: small enough for `make test`, every part still runs.
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("services", func() { *services = 20 })
		def("instances", func() { *instances = 3 })
		def("scale-services", func() { *bigSvc = 200 })
		def("scale-instances", func() { *bigInst = 5 })
		def("duration", func() { cfg.Duration = time.Second })
		def("rounds", func() { cfg.Rounds = 1 })
		def("rate", func() { cfg.FixedRate = 1000 })
		def("changes", func() { cfg.Changes = 20 })
		def("agent-changes", func() { cfg.AgentChanges = 3 })
		def("failovers", func() { cfg.Failovers = 1 })
		def("agents", func() { cfg.Agents = 3 })
		def("load-interval", func() { cfg.LoadInterval = 3 * time.Second })
		def("profile", func() { cfg.ProfileFor = 0 })
		def("pin", func() { *pin = false })
		scale.quick(def)
		health.quick(def)
	}
	cfg.Warmup = min(cfg.Duration/5, time.Second)
	cfg.ShapeFor = cfg.Duration
	if cfg.Quick {
		cfg.ShapeFor = cfg.Duration / 4
	}
	cfg.CheckQueries = 400
	cfg.Small = Dataset{Services: *services, PerService: *instances}
	cfg.Big = Dataset{Services: *bigSvc, PerService: *bigInst}
	if cfg.Small.Services < 1 || cfg.Small.PerService < 2 || cfg.Big.Services < 1 || cfg.Big.PerService < 2 {
		return cfg, fmt.Errorf("-services and -scale-services must be at least 1, -instances and -scale-instances at least 2")
	}
	if cfg.Rounds < 1 || cfg.Duration < 100*time.Millisecond {
		return cfg, fmt.Errorf("-rounds must be at least 1 and -duration at least 100ms")
	}
	var err error
	if cfg.Scale, err = scale.config(); err != nil {
		return cfg, err
	}
	if cfg.Health, err = health.config(); err != nil {
		return cfg, err
	}
	if cfg.Parts, err = parseParts(parts); err != nil {
		return cfg, err
	}
	if *pin && machineCPUs() >= 2 {
		cfg.Pin = Pinning{ServerCPU: "0", ClientCPU: "1"}
	}
	cfg.Bin, err = filepath.Abs(cfg.Bin)
	return cfg, err
}

// parseParts reads -parts: a comma-separated list of parts, or "all".
func parseParts(list string) (map[string]bool, error) {
	parts := map[string]bool{}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all":
			for _, a := range allParts {
				parts[a] = true
			}
		case contains(allParts, p):
			parts[p] = true
		default:
			return nil, fmt.Errorf("-parts: unknown part %q; the parts are %s", p, strings.Join(allParts, ","))
		}
	}
	return parts, nil
}

// machineCPUs counts the machine's CPUs from /proc/cpuinfo: unlike
// runtime.NumCPU it ignores this process's affinity, which pinSelf narrows.
func machineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "processor") {
			n++
		}
	}
	return max(n, 1)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// pinnedEnv marks a process already moved onto the client CPU.
const pinnedEnv = "ROLLCALL_BENCH_PINNED"

// pinSelf re-executes this program under taskset on the client CPU, so the
// embedded etcd, the agents and dnsperf never run on CoreDNS's CPU.
func pinSelf(cfg Config) error {
	if !cfg.Pin.Enabled() || os.Getenv(pinnedEnv) != "" {
		return nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("pinning needs taskset (util-linux), or run with -pin=false: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"taskset", "-c", cfg.Pin.ClientCPU, self}, os.Args[1:]...)
	env := append(os.Environ(), pinnedEnv+"=1")
	return syscall.Exec(taskset, argv, env)
}

func logf(format string, args ...any) { slog.Info(fmt.Sprintf(format, args...)) }

func main() {
	if httpClientMode() {
		os.Exit(runHTTPClient()) // the health part's yardstick (healthref.go)
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := pinSelf(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	cfg.CommandLine = "go run ./bench " + strings.Join(os.Args[1:], " ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, problems, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if cfg.Out == "" {
		_ = rep.Write(os.Stdout)
	} else {
		f, err := os.Create(cfg.Out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := rep.Write(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		logf("wrote %s", cfg.Out)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "bench: problem:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// partFunc runs one part and returns its section and any correctness
// problems (wrong answers; speed is never a problem). What it starts it
// stops through atEnd; a skipError says it cannot run here.
type partFunc func(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error)

var partFuncs = map[string]partFunc{
	"throughput":  partThroughput,
	"deployed":    partDeployed,
	"scale":       partScale,
	"propagation": partPropagation,
	"agent":       partAgent,
	"failover":    partFailover,
	"etcdload":    partEtcdLoad,
	"health":      partHealth,
	"api":         partAPI,
	"memory":      partMemory,
	"readers":     partReaders,
	"leases":      partLeases,
	"model":       partModel,
}

var partTitles = map[string]string{
	"throughput":  "Throughput and latency",
	"deployed":    "As deployed",
	"scale":       "Scale",
	"propagation": "Propagation: etcd write to DNS answer",
	"agent":       "Propagation: unit start to DNS answer (real agent)",
	"failover":    "Failover",
	"etcdload":    "etcd load caused by agents",
	"health":      "Health checks",
	"api":         "HTTP API beside DNS",
	"memory":      "Per-host memory",
	"readers":     "Readers at scale",
	"leases":      "Agents' leases at scale",
	"model":       "Model: 10,000 hosts",
}

// Run runs the selected parts and returns the report and every correctness
// problem seen. A part that fails still leaves its section, saying why.
func Run(ctx context.Context, cfg Config) (*Report, []string, error) {
	start := time.Now()
	rep := &Report{Title: "rollcall benchmarks"}
	env, err := NewEnv(cfg)
	if err != nil {
		return nil, nil, err
	}
	defer env.Close()
	rep.Preamble = preamble(ctx, cfg, env)
	var problems []string
	for _, name := range allParts {
		if !cfg.Parts[name] {
			continue
		}
		if ctx.Err() != nil {
			if len(rep.Sections) == 0 {
				return nil, problems, ctx.Err()
			}
			break
		}
		sec, probs := runPart(ctx, cfg, env, name)
		problems = append(problems, probs...)
		rep.Sections = append(rep.Sections, sec)
	}
	rep.Preamble = append(rep.Preamble, fmt.Sprintf("Total run time: %v.", time.Since(start).Round(time.Second)))
	sum := &Section{Title: "Summary"}
	for _, s := range rep.Sections {
		for _, l := range s.Summary {
			sum.Notes = append(sum.Notes, "- "+l)
		}
	}
	if len(sum.Notes) > 0 {
		// One list: the renderer separates notes by blank lines.
		sum.Notes = []string{strings.Join(sum.Notes, "\n")}
		rep.Sections = append([]*Section{sum}, rep.Sections...)
	}
	// What earlier runs missed and what was changed: kept by hand next to
	// the harness, as the runs it speaks of are gone.
	if b, err := os.ReadFile(historyFile); err == nil {
		rep.Sections = append(rep.Sections, &Section{Title: "Before and after", Notes: []string{strings.TrimSpace(string(b))}})
	}
	return rep, problems, nil
}

// runPart runs one part, stops what it started, and returns its section
// (saying why when the part failed or could not run here) and its problems.
func runPart(ctx context.Context, cfg Config, env *Env, name string) (*Section, []string) {
	logf("part %s", name)
	t0 := time.Now()
	sec, problems, err := func() (*Section, []string, error) {
		var atEnd cleanups
		defer atEnd.run()
		return partFuncs[name](ctx, cfg, env, &atEnd)
	}()
	if sec == nil {
		sec = &Section{Title: partTitles[name]}
	}
	var skip skipError
	switch {
	case errors.As(err, &skip):
		sec.Note("**Not measured**: %v", err)
	case err != nil:
		sec.Note("**Part failed**: %v", err)
		problems = append(problems, fmt.Sprintf("%s: %v", name, err))
	}
	sec.Note("_(part took %v)_", time.Since(t0).Round(time.Second))
	return sec, problems
}

// preamble describes the machine, the versions and the method.
func preamble(ctx context.Context, cfg Config, env *Env) []string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	dnsperf := "absent (Go load generator used)"
	if haveDNSPerf() && !cfg.GoLoad {
		out, _ := exec.CommandContext(ctx, "dnsperf", "-h").CombinedOutput()
		dnsperf = "dnsperf"
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Version") {
				dnsperf = "dnsperf " + strings.TrimSpace(strings.TrimPrefix(l, "Version"))
			}
		}
	}
	pin := "none (-pin=false or fewer than 2 CPUs)"
	if cfg.Pin.Enabled() {
		pin = fmt.Sprintf("every CoreDNS (bin/coredns) runs alone on CPU %s with GOMAXPROCS=1 (`taskset -c %s`); dnsperf (`-T 1 -c %d -q %d`), "+
			"this program, its embedded etcd and the agents run on CPU %s. Idle contenders stay up but get no queries.",
			cfg.Pin.ServerCPU, cfg.Pin.ServerCPU, cfg.Clients, cfg.Outstanding, cfg.Pin.ClientCPU)
	}
	return []string{
		"Generated by `make bench` (`go run ./bench -bin bin -out BENCHMARKS.md`); do not edit by hand. " +
			"The machine is shared and noisy: compare ratios within one run, not absolute numbers across runs.",
		fmt.Sprintf("- Date: %s\n- Command: `%s`\n- Machine: %d CPUs (nproc), %s, Linux %s\n- Versions: %s, CoreDNS module %s, etcd server %s (embedded), %s\n- Pinning: %s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), cfg.CommandLine, machineCPUs(), cpu, kernel,
			runtime.Version(), modVersion("github.com/coredns/coredns"), modVersion("go.etcd.io/etcd/server/v3"), dnsperf, pin),
	}
}

// modVersion is the version of a module this program was built with.
func modVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range bi.Deps {
		if m.Path == path {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}
