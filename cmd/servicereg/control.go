package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rollcall/rollcall/servicereg"
)

// subcommands are the words that make servicereg a client of the running
// agent instead of the agent.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"drain":   runDrain,
	"undrain": runUndrain,
	"status":  runStatus,
}

const drainHelp = `Usage: servicereg drain SERVICE [-wait] [-config FILE] [-socket PATH] [-timeout D]

Takes this host's instance of SERVICE out of DNS: the running agent writes
its record as draining, which DNS never serves, and answers once etcd has
the write. With -wait, drain then waits until resolvers have forgotten the
instance: dns_ttl (the agent config's DNS answer TTL, default 5s) plus 1s
after etcd took the change, and prints when that was.

A drain lives in the agent's memory: it lasts until undrain, until the agent
sees the unit stop (the next start is served again), or until the agent
restarts. To keep an instance out across restarts, use rollcall maint.
A SERVICE whose unit is not active has no record: the drain is accepted and
not remembered, and -wait still waits, in case the record just went.

The graceful stop of a unit (the + runs it as root, whatever User= is):
  [Service]
  ExecStop=+/usr/local/bin/servicereg drain web -wait
Put it before any other ExecStop: systemd runs them in order, then signals
the program, which answers until then. Give TimeoutStopSec room for it.

Exit status: 0 done, 1 the agent could not be reached or refused (an unknown
service, etcd not taking the write within -timeout), 2 a bad command line.

Flags:
`

const undrainHelp = `Usage: servicereg undrain SERVICE [-config FILE] [-socket PATH] [-timeout D]

Ends a drain of this host's instance of SERVICE: its record goes back to the
state its checks give it (passing when it has none), and DNS serves it again
once etcd has the write, which the command waits for.

Exit status: 0 done, 1 the agent could not be reached or refused, 2 a bad
command line.

Flags:
`

// clientFlags are the flags every subcommand takes to find the agent.
type clientFlags struct {
	config, socket string
	timeout        time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", servicereg.DefaultConfigPath, "the agent config, read for its control: path")
	fs.StringVar(&c.socket, "socket", "", "the agent's control socket (default: the config's control:, else "+servicereg.DefaultControl+")")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the agent (and, for drain and undrain, for etcd to take the change)")
}

// socketPath is -socket, else the config's control: path.
func (c *clientFlags) socketPath() (string, error) {
	if c.socket != "" {
		return c.socket, nil
	}
	cfg, err := servicereg.LoadConfig(c.config)
	if err != nil {
		return "", fmt.Errorf("read the config for its control socket (or give -socket PATH): %w", err)
	}
	if cfg.Control == "" {
		return servicereg.DefaultControl, nil
	}
	return cfg.Control, nil
}

// newFlagSet returns a subcommand's flag set, printing help on -h.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("servicereg "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterleaved parses flags before and after the arguments, as in
// `servicereg drain web -wait`, and returns the arguments; ok false: the
// command ends with code (0 after -h, 2 after a bad flag, reported).
func parseInterleaved(fs *flag.FlagSet, args []string) (rest []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, 0, true
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), 0, true
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// oneService takes the one SERVICE argument.
func oneService(name string, args []string, stderr io.Writer) (string, bool) {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "servicereg %s: name one service (got %d arguments); see servicereg %s -h\n", name, len(args), name)
		return "", false
	}
	return args[0], true
}

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("drain", drainHelp, stderr)
	var cf clientFlags
	cf.register(fs)
	wait := fs.Bool("wait", false, "return once resolvers have forgotten the instance (dns_ttl + 1s after etcd took the drain)")
	rest, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	service, ok := oneService("drain", rest, stderr)
	if !ok {
		return 2
	}
	res, code := callDrain(ctx, &cf, servicereg.OpDrain, service, stderr)
	if res == nil {
		return code
	}
	by := res.ForgetBy()
	switch {
	case !res.Registered:
		fmt.Fprintf(stdout, "%s is not registered on this host (its unit is not active, or waits for min_active): nothing to drain; etcd holds no record of it since %s, resolvers forget it by %s\n",
			service, clock(res.WrittenAt), clock(by))
	case res.Changed:
		fmt.Fprintf(stdout, "%s drained at %s; resolvers forget it by %s\n", service, clock(res.WrittenAt), clock(by))
	default:
		fmt.Fprintf(stdout, "%s was drained already (confirmed at %s); resolvers forget it by %s\n", service, clock(res.WrittenAt), clock(by))
	}
	if !*wait {
		return 0
	}
	if err := sleepUntil(ctx, by); err != nil {
		fmt.Fprintf(stderr, "servicereg drain: stopped waiting: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: resolvers have forgotten it (%s)\n", service, clock(time.Now()))
	return 0
}

func runUndrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("undrain", undrainHelp, stderr)
	var cf clientFlags
	cf.register(fs)
	rest, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	service, ok := oneService("undrain", rest, stderr)
	if !ok {
		return 2
	}
	res, code := callDrain(ctx, &cf, servicereg.OpUndrain, service, stderr)
	if res == nil {
		return code
	}
	switch {
	case !res.Changed:
		fmt.Fprintf(stdout, "%s was not drained\n", service)
	case res.Registered:
		fmt.Fprintf(stdout, "%s undrained at %s: its record is %s again\n", service, clock(res.WrittenAt), res.State)
	default:
		fmt.Fprintf(stdout, "%s undrained at %s (not registered: its unit is not active)\n", service, clock(res.WrittenAt))
	}
	return 0
}

// callDrain sends a drain or undrain to the agent; nil with the exit code
// when it failed (reported).
func callDrain(ctx context.Context, cf *clientFlags, op, service string, stderr io.Writer) (*servicereg.DrainResult, int) {
	path, err := cf.socketPath()
	if err != nil {
		fmt.Fprintf(stderr, "servicereg %s: %v\n", op, err)
		return nil, 1
	}
	cctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	resp, err := servicereg.CallControl(cctx, path, servicereg.ControlRequest{Op: op, Service: service})
	if err != nil {
		fmt.Fprintf(stderr, "servicereg %s: %v\n", op, err)
		return nil, 1
	}
	if resp.Drain == nil {
		fmt.Fprintf(stderr, "servicereg %s: the agent at %s sent no result\n", op, path)
		return nil, 1
	}
	return resp.Drain, 0
}

// sleepUntil waits until t, or until ctx ends (a signal).
func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// clock prints a time of day for a person: local time to the second.
func clock(t time.Time) string { return t.Local().Format("15:04:05") }
