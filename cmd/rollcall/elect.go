package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/internal/elect"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

const electHelp = `usage: rollcall elect [flags] SERVICE -- CMD [ARGS...]

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

// runElect runs `rollcall elect`; internal/elect does the campaigning and
// runs CMD. Its usage text spells flags --name, and unlike the other
// commands it prints its help on stdout and a bad command line as one line
// on stderr.
func runElect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	line, err := parseElect(args)
	if line.help {
		fmt.Fprint(stdout, electHelp)
		line.fs.SetOutput(stdout)
		line.fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "rollcall elect: %v\nRun 'rollcall elect --help' for usage.\n", err)
		return elect.ExitUsage
	}
	// SIGTERM and SIGINT stop CMD in order, however many arrive: main
	// restores the default handling after the first, this keeps it.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cli, err := etcdconn.New(line.etcd)
	if err != nil {
		fmt.Fprintf(stderr, "rollcall elect: %v\n", err)
		return elect.ExitError
	}
	defer cli.Close()
	o := line.opts
	o.Client, o.Stdout, o.Stderr = cli, stdout, stderr
	return elect.Run(ctx, o)
}

// electLine is a parsed `rollcall elect` command line.
type electLine struct {
	fs   *flag.FlagSet // for the help's list of flags
	help bool          // -h or --help
	etcd etcdconn.Config
	opts elect.Options // without Client, Stdout and Stderr
}

// parseElect reads the flags and the words after them; every error says
// what to fix.
func parseElect(args []string) (electLine, error) {
	fs := flag.NewFlagSet("rollcall elect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	line := electLine{fs: fs}
	ef := etcdFlags{dash: "--"}
	ef.register(fs)
	o := &line.opts
	fs.StringVar(&o.Host, "host", shortHostname(), "this host's name, as candidates and DNS show it")
	fs.DurationVar(&o.TTL, "ttl", election.DefaultTTL, "lease TTL, whole seconds: a dead master is replaced after about this long")
	fs.DurationVar(&o.Grace, "grace", elect.DefaultGrace, "how long CMD has after SIGTERM before SIGKILL")
	if err := fs.Parse(args); err != nil {
		line.help = errors.Is(err, flag.ErrHelp)
		return line, err
	}
	var err error
	if line.etcd, o.Keys, err = ef.config(); err != nil {
		return line, err
	}
	if err := registry.CheckName("host", o.Host); err != nil {
		return line, fmt.Errorf("--host: %w", err)
	}
	if o.TTL < time.Second || o.TTL%time.Second != 0 {
		return line, fmt.Errorf("--ttl %v: give whole seconds, at least 1s", o.TTL)
	}
	if o.Grace < 0 {
		return line, fmt.Errorf("--grace %v: must not be negative", o.Grace)
	}
	o.Service, o.Cmd, err = splitElectArgs(fs.Args())
	return line, err
}

// splitElectArgs splits the words after the flags into SERVICE and CMD.
func splitElectArgs(rest []string) (service string, cmd []string, err error) {
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

// shortHostname is the host name up to its first dot, in lower case: the
// default of --host.
func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.ToLower(h)
}
