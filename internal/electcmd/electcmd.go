// Package electcmd is `rollcall elect [flags] SERVICE -- CMD ARGS...`: it
// campaigns for the master of SERVICE (docs/DESIGN.md,
// "Elections and terms") on a lease of its own and runs CMD while this host is master.
// CMD learns its term from ROLLCALL_TERM to fence its own writes. When
// mastership is lost, CMD is stopped (SIGTERM, then SIGKILL after --grace)
// and the command exits non-zero; when CMD exits, the command resigns at once
// so another host takes over without waiting for a TTL. cmd/rollcall calls
// Main; the election itself is package election.
package electcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

// Exit codes of `rollcall elect` itself; otherwise it exits with CMD's code
// (128+N when CMD died of signal N).
const (
	ExitError  = 1   // etcd or another runtime failure before CMD ran
	ExitUsage  = 2   // bad flags or arguments
	ExitLost   = 75  // mastership was lost while CMD ran (EX_TEMPFAIL: try again)
	ExitNoExec = 127 // CMD could not be started
)

// The environment CMD gets, besides rollcall elect's own.
const (
	EnvService = "ROLLCALL_SERVICE"
	EnvHost    = "ROLLCALL_HOST"
	EnvTerm    = "ROLLCALL_TERM"
)

const usage = `usage: rollcall elect [flags] SERVICE -- CMD [ARGS...]

Campaign for the master of SERVICE and run CMD while this host is master.

Candidates of SERVICE (this command on other hosts, or servicereg agents with
master_election) take turns: the first to campaign is master until it resigns
or loses its lease; the next one waits. When elected, CMD starts with these
variables added to the environment:

  ROLLCALL_SERVICE  the service
  ROLLCALL_HOST     this host's name (--host)
  ROLLCALL_TERM     the term: a number that grows with every new master. Fence
                    with it: have what CMD writes to carry the term and reject
                    a term smaller than one already seen.

- CMD exits: rollcall elect resigns at once (the next candidate takes over
  without waiting for the TTL) and exits with CMD's exit code.
- Mastership is lost (the lease expired or was revoked, the election key was
  deleted, or etcd did not confirm the lease in time): CMD gets SIGTERM, then
  SIGKILL after --grace, and rollcall elect exits 75. rollcall elect stops
  believing it is master before etcd can expire its lease; CMD may run up to
  --grace longer, so keep --grace short or fence with ROLLCALL_TERM.
- SIGTERM or SIGINT: CMD gets SIGTERM (SIGKILL after --grace), then rollcall
  elect resigns and exits with CMD's exit code.

CMD runs in a process group of its own with stdin from /dev/null; signals go to
the whole group. Exit codes: CMD's (128+N if it died of signal N), 1 etcd or
other error, 2 bad usage, 75 mastership lost, 127 CMD could not be started.

Example, on every host that may run the nightly report (one runs it):

  rollcall elect --endpoints https://etcd1:2379 --cert c.pem --key k.pem \
      --cacert ca.pem report -- sh -c 'exec /usr/local/bin/report --term "$ROLLCALL_TERM"'

Flags:
`

// options are the parsed command line.
type options struct {
	endpoints   []string
	prefix      string
	cert        string
	key         string
	cacert      string
	host        string
	ttl         time.Duration
	grace       time.Duration
	service     string
	cmd         []string
	keys        registry.Keys
	showHelp    bool
	flagDefault func(io.Writer)
}

// Main runs `rollcall elect` with args (the words after "elect") and returns
// the process exit code. It handles SIGTERM and SIGINT itself; cancelling ctx
// acts the same.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args)
	if o.showHelp {
		fmt.Fprint(stdout, usage)
		o.flagDefault(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rollcall elect: %v\nRun 'rollcall elect --help' for usage.\n", err)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	r := &runner{o: o, stdout: stdout, stderr: stderr}
	return r.run(ctx)
}

// parse reads flags and arguments; every error says what to fix.
func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("rollcall elect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// ROLLCALL_ENDPOINTS replaces the default as it does for ls and status,
	// so one export points every rollcall command at the same cluster.
	defEndpoints := etcdconn.DefaultEndpoint
	if env := os.Getenv("ROLLCALL_ENDPOINTS"); env != "" {
		defEndpoints = env
	}
	endpoints := fs.String("endpoints", defEndpoints, "etcd client URLs, comma-separated (default from $ROLLCALL_ENDPOINTS when set)")
	fs.StringVar(&o.prefix, "prefix", registry.DefaultPrefix, "key prefix of the registry in etcd")
	fs.StringVar(&o.cert, "cert", "", "client certificate (PEM) for mTLS to etcd")
	fs.StringVar(&o.key, "key", "", "client key (PEM) for mTLS to etcd")
	fs.StringVar(&o.cacert, "cacert", "", "CA certificate (PEM) that signed etcd's certificate")
	fs.StringVar(&o.host, "host", shortHostname(), "this host's name, as candidates and DNS show it")
	fs.DurationVar(&o.ttl, "ttl", election.DefaultTTL, "lease TTL, whole seconds: a dead master is replaced after about this long")
	fs.DurationVar(&o.grace, "grace", 10*time.Second, "how long CMD has after SIGTERM before SIGKILL")
	o.flagDefault = func(w io.Writer) {
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.showHelp = true
			return o, nil
		}
		return o, err
	}
	for _, ep := range strings.Split(*endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			o.endpoints = append(o.endpoints, ep)
		}
	}
	if len(o.endpoints) == 0 {
		return o, errors.New("--endpoints is empty: give at least one etcd client URL")
	}
	var err error
	if o.keys, err = registry.NewKeys(o.prefix); err != nil {
		return o, fmt.Errorf("--prefix: %w", err)
	}
	if err := registry.CheckName("host", o.host); err != nil {
		return o, fmt.Errorf("--host: %w", err)
	}
	if o.ttl < time.Second || o.ttl%time.Second != 0 {
		return o, fmt.Errorf("--ttl %v: give whole seconds, at least 1s", o.ttl)
	}
	if o.grace < 0 {
		return o, fmt.Errorf("--grace %v: must not be negative", o.grace)
	}
	if o.service, o.cmd, err = splitArgs(fs.Args()); err != nil {
		return o, err
	}
	return o, nil
}

// splitArgs splits the words after the flags into SERVICE and CMD.
func splitArgs(rest []string) (service string, cmd []string, err error) {
	if len(rest) == 0 {
		return "", nil, errors.New("missing SERVICE and CMD: rollcall elect [flags] SERVICE -- CMD [ARGS...]")
	}
	service = rest[0]
	if err := registry.CheckName("service", service); err != nil {
		return "", nil, err
	}
	switch {
	case len(rest) == 1:
		return "", nil, fmt.Errorf("missing -- CMD after %s: rollcall elect [flags] SERVICE -- CMD [ARGS...]", service)
	case rest[1] != "--" && strings.HasPrefix(rest[1], "-"):
		return "", nil, fmt.Errorf("flag %s after SERVICE: put flags before %s", rest[1], service)
	case rest[1] != "--":
		return "", nil, fmt.Errorf("missing -- between SERVICE and CMD: rollcall elect [flags] %s -- %s", service, strings.Join(rest[1:], " "))
	case len(rest) == 2:
		return "", nil, errors.New("missing CMD after --")
	}
	return service, rest[2:], nil
}

// shortHostname is the host name up to its first dot, in lower case.
func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.ToLower(h)
}

// runner is one run of the command.
type runner struct {
	o              options
	stdout, stderr io.Writer
}

func (r *runner) printf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "rollcall elect: "+format+"\n", args...)
}

func (r *runner) run(ctx context.Context) int {
	o := r.o
	cli, err := etcdconn.New(etcdconn.Config{Endpoints: o.endpoints, Cert: o.cert, Key: o.key, CA: o.cacert})
	if err != nil {
		r.printf("%v", err)
		return ExitError
	}
	defer cli.Close()
	// The election package logs warnings (renewal failures, loss) as they
	// happen; this command reports the rest itself.
	log := slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := election.NewCandidate(cli, o.keys, o.service, o.host, election.WithTTL(o.ttl), election.WithLogger(log))
	if err != nil {
		r.printf("%v", err)
		return ExitUsage
	}
	l, ok := r.campaign(ctx, c)
	if !ok {
		return 0
	}
	code := r.lead(ctx, l)
	rctx, cancel := context.WithTimeout(context.Background(), o.ttl)
	defer cancel()
	if err := l.Resign(rctx); err != nil {
		r.printf("%v (the lease expires within %v)", err, o.ttl)
	}
	return code
}

// campaign campaigns until elected; false when ctx ended first. Errors (etcd
// unreachable, a lease lost while waiting) are reported once each and the
// campaign starts again.
func (r *runner) campaign(ctx context.Context, c *election.Candidate) (*election.Leadership, bool) {
	r.printf("campaigning for master of %s as %s", r.o.service, r.o.host)
	last := ""
	retry := backoff.New(campaignRetry)
	for {
		l, err := c.Campaign(ctx, clientv3.NoLease)
		if err == nil {
			return l, true
		}
		if ctx.Err() != nil {
			r.printf("stopped before becoming master of %s", r.o.service)
			return nil, false
		}
		if msg := err.Error(); msg != last {
			r.printf("%v; retrying", err)
			last = msg
		}
		if retry.Wait(ctx) != nil {
			r.printf("stopped before becoming master of %s", r.o.service)
			return nil, false
		}
	}
}

// campaignRetry paces campaigns after a failed one (etcd unreachable, no
// leader). Jitter keeps the `rollcall elect` of many hosts, which all fail
// in the same etcd outage, from campaigning again in step; at the cap a
// retry comes about a second after a failure, as before.
var campaignRetry = backoff.Policy{Min: 250 * time.Millisecond, Base: 500 * time.Millisecond, Max: 2 * time.Second}

// lead runs CMD while l holds and returns the exit code.
func (r *runner) lead(ctx context.Context, l *election.Leadership) int {
	o := r.o
	r.printf("master of %s as %s, term %d: starting %s", o.service, o.host, l.Term(), o.cmd[0])
	cmd := exec.Command(o.cmd[0], o.cmd[1:]...)
	cmd.Env = append(os.Environ(),
		EnvService+"="+o.service,
		EnvHost+"="+o.host,
		EnvTerm+"="+strconv.FormatInt(l.Term(), 10))
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	// A group of its own: signals reach CMD's children too, and a terminal's
	// Ctrl-C reaches only rollcall elect, which then stops CMD in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Do not wait forever for output pipes held by CMD's orphans.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		r.printf("start %s: %v", o.cmd[0], err)
		return ExitNoExec
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case err := <-exited:
		code := exitCode(err)
		r.printf("%s exited with status %d; resigning master of %s", o.cmd[0], code, o.service)
		return code
	case <-l.Done():
		r.printf("lost master of %s (term %d): %v; stopping %s", o.service, l.Term(), l.Err(), o.cmd[0])
		r.stop(cmd, exited)
		return ExitLost
	case <-ctx.Done():
		r.printf("stopping %s, then resigning master of %s", o.cmd[0], o.service)
		return exitCode(r.stop(cmd, exited))
	}
}

// stop sends SIGTERM to CMD's process group, SIGKILL after the grace period,
// and returns CMD's exit error.
func (r *runner) stop(cmd *exec.Cmd, exited <-chan error) error {
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(r.o.grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		r.printf("%s still running %v after SIGTERM: sending SIGKILL", r.o.cmd[0], r.o.grace)
		syscall.Kill(-pgid, syscall.SIGKILL)
		return <-exited
	}
}

// exitCode turns CMD's exit into a shell-style status.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return ExitError
}
