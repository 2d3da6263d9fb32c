package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/rollcall/rollcall/servicereg"
)

const usage = `Usage:
  servicereg [-config FILE] [-check] [-metrics ADDR] [-log-level LEVEL] [-log-format FORMAT]
  servicereg drain SERVICE [-wait] [-config FILE] [-socket PATH] [-timeout D]
  servicereg undrain SERVICE [-config FILE] [-socket PATH] [-timeout D]
  servicereg status [-json] [-config FILE] [-socket PATH] [-timeout D]

servicereg watches the systemd units named in its config and, while a unit is
active, keeps that service registered in etcd on the agent's lease, with the
state its health checks give it (passing, warning, critical; draining when
drained).

Subcommands talk to the running agent over its control socket (the config's
control:, default %[2]s; root only);
each takes -h for its own help.
  drain SERVICE     take this host's instance of SERVICE out of DNS: its record
                    turns draining and is never served. With -wait, return
                    once resolvers have forgotten it: dns_ttl (the DNS answer
                    TTL) plus 1s after etcd took the change. A drain lasts
                    until undrain, the unit stops, or the agent restarts.
  undrain SERVICE   end the drain: the instance's checks decide again
  status            every service: active, registered, state and since,
                    drain, maintenance, checks with their last results
                    (-json: the JSON of the agent's /status)

A graceful stop: the unit's ExecStop drains first, so resolvers forget the
instance while it still answers, then systemd stops the program. The + runs
the drain as root whatever the unit's User= is:
  [Service]
  ExecStop=+/usr/local/bin/servicereg drain web -wait

Flags of the agent:
  -config FILE       the agent config (default %[1]s); every
                     services.d/*.yml beside it adds services (each file a YAML
                     list of services)
  -check             load and check the config, print it with every default
                     filled in (YAML), exit 0 when it is valid and 1 when not
  -metrics ADDR      serve Prometheus /metrics, /healthz and /status (JSON) on
                     ADDR (default 127.0.0.1:9353; empty to turn off)
  -log-level LEVEL   debug, info, warn or error (default info)
  -log-format FORMAT text or json (default text)
  -help              this text

Signals: SIGTERM and SIGINT revoke the lease (this host's names vanish at once)
and exit 0; SIGHUP reloads the config and applies the difference, keeping the
running config when the new one is invalid.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line's flags.
type options struct {
	cfgPath, metricsAddr, level, format string
	check                               bool
}

// parseArgs reads the command line; done is set, with the exit code, when
// the command ends here (help, or a usage error already reported).
func parseArgs(args []string, stderr io.Writer) (o options, code int, done bool) {
	fs := flag.NewFlagSet("servicereg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usage, servicereg.DefaultConfigPath, servicereg.DefaultControl) }
	fs.StringVar(&o.cfgPath, "config", servicereg.DefaultConfigPath, "agent config file")
	fs.BoolVar(&o.check, "check", false, "check the config, print it with defaults and exit")
	fs.StringVar(&o.metricsAddr, "metrics", "127.0.0.1:9353", "address of /metrics and /healthz; empty turns it off")
	fs.StringVar(&o.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.format, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, 0, true
		}
		return o, 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "servicereg: unexpected argument %q; the subcommands are drain, undrain and status; see servicereg -help\n", fs.Arg(0))
		return o, 2, true
	}
	return o, 0, false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return sub(ctx, args[1:], stdout, stderr)
		}
	}
	o, code, done := parseArgs(args, stderr)
	if done {
		return code
	}
	log, err := newLogger(stderr, o.level, o.format)
	if err != nil {
		fmt.Fprintf(stderr, "servicereg: %v\n", err)
		return 2
	}
	cfg, err := servicereg.LoadConfig(o.cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "servicereg: config not valid, not starting:\n%v\n", err)
		return 1
	}
	if o.check {
		return printConfig(cfg, o.cfgPath, stdout, stderr)
	}
	agent, err := servicereg.New(cfg, servicereg.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "servicereg: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.metricsAddr != "" {
		stop, err := serveMetrics(agent, o.metricsAddr, log)
		if err != nil {
			fmt.Fprintf(stderr, "servicereg: %v\n", err)
			return 1
		}
		defer stop()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go handleSignals(ctx, cancel, sigs, agent, o.cfgPath, log)
	go notifySystemd(ctx, agent, log)
	// The control socket (drain, undrain, status) lives as long as the
	// agent runs, and is removed before the process exits.
	var control sync.WaitGroup
	control.Go(func() { agent.ServeControl(ctx) })
	defer control.Wait()
	defer cancel()

	if err := agent.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

// printConfig is -check: the config as the agent will run it, defaults
// filled in.
func printConfig(cfg *servicereg.Config, path string, stdout, stderr io.Writer) int {
	out, err := cfg.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "servicereg: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# effective config of %s\n%s", path, out)
	return 0
}

// serveMetrics serves the agent's /metrics, /healthz and /status on addr
// until stop.
func serveMetrics(agent *servicereg.Agent, addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w (set -metrics to a free address, or -metrics '' to turn it off)", err)
	}
	srv := &http.Server{Handler: agent.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving metrics and health", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// handleSignals stops the agent on SIGTERM or SIGINT (cancel) and reloads
// its config on SIGHUP, until ctx ends.
func handleSignals(ctx context.Context, cancel context.CancelFunc, sigs <-chan os.Signal, agent *servicereg.Agent, cfgPath string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-sigs:
			if s != syscall.SIGHUP {
				log.Info("stopping", "signal", s.String())
				cancel()
				return
			}
			reload(agent, cfgPath, log)
		}
	}
}

func reload(agent *servicereg.Agent, path string, log *slog.Logger) {
	cfg, err := servicereg.LoadConfig(path)
	if err == nil {
		err = agent.Reload(cfg)
	}
	if err != nil {
		log.Error("SIGHUP: new config refused, keeping the running one", "path", path, "err", err)
	}
}

// notifySystemd tells systemd (Type=notify) READY=1 once the first
// registration is written, and feeds the watchdog while the agent's main loop
// answers. Outside systemd both are no-ops.
func notifySystemd(ctx context.Context, agent *servicereg.Agent, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-agent.Ready():
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY=1 failed", "err", err)
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			actx, cancel := context.WithTimeout(ctx, interval/3)
			alive := agent.Alive(actx)
			cancel()
			if alive {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: use text or json", format)
}
