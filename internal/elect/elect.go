// Package elect is what `rollcall elect` does (docs/DESIGN.md, "Elections
// and terms"): it campaigns for the master of a service on a lease of its own
// and runs a command, CMD, while this host is master. CMD learns its term from
// ROLLCALL_TERM to fence its own writes. When mastership is lost, CMD is
// stopped (SIGTERM, then SIGKILL after the grace period) and Run returns
// ExitLost; when CMD exits, Run resigns at once so another host takes over
// without waiting for a TTL. The election itself is package election.
//
// It is a command library: cmd/rollcall parses the command line (its flags,
// usage text and signals) into Options and calls Run; nothing here reads
// flags or takes a setting from the environment.
package elect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/internal/backoff"
	"github.com/rollcall/rollcall/registry"
)

// Exit codes of `rollcall elect` itself; otherwise Run returns CMD's code
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

// DefaultGrace is how long CMD has after SIGTERM before SIGKILL, unless
// Options.Grace says otherwise.
const DefaultGrace = 10 * time.Second

// Options are one run of `rollcall elect`. The command line has checked the
// names and durations; Run still refuses what would make no election.
type Options struct {
	Client  *clientv3.Client // etcd; Run neither connects nor closes it
	Keys    registry.Keys
	Service string        // the service whose master this host campaigns to be
	Host    string        // this host's name, as candidates and DNS show it
	TTL     time.Duration // the candidacy's lease TTL, whole seconds
	Grace   time.Duration // how long CMD has after SIGTERM before SIGKILL
	Cmd     []string      // CMD and its arguments
	// Stdout and Stderr are CMD's; Stderr also gets Run's own reports, each
	// line starting "rollcall elect: ".
	Stdout, Stderr io.Writer
}

// Run campaigns until elected, runs CMD while this host is master, resigns,
// and returns the exit code: CMD's, or one of the Exit constants. Cancelling
// ctx stops CMD as SIGTERM does (cmd/rollcall cancels it on SIGTERM and
// SIGINT); cancelled before election, Run returns 0.
func Run(ctx context.Context, o Options) int {
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	r := &runner{o: o}
	if len(o.Cmd) == 0 {
		r.printf("missing CMD")
		return ExitUsage
	}
	// The election package logs warnings (renewal failures, loss) as they
	// happen; Run reports the rest itself.
	log := slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := election.NewCandidate(o.Client, o.Keys, o.Service, o.Host, election.WithTTL(o.TTL), election.WithLogger(log))
	if err != nil {
		r.printf("%v", err)
		return ExitUsage
	}
	l, ok := r.campaign(ctx, c)
	if !ok {
		return 0
	}
	code := r.lead(ctx, l)
	rctx, cancel := context.WithTimeout(context.Background(), o.TTL)
	defer cancel()
	if err := l.Resign(rctx); err != nil {
		r.printf("%v (the lease expires within %v)", err, o.TTL)
	}
	return code
}

// runner is one run: its options, for the steps below.
type runner struct {
	o Options
}

func (r *runner) printf(format string, args ...any) {
	fmt.Fprintf(r.o.Stderr, "rollcall elect: "+format+"\n", args...)
}

// campaign campaigns until elected; false when ctx ended first. Errors (etcd
// unreachable, a lease lost while waiting) are reported once each and the
// campaign starts again.
func (r *runner) campaign(ctx context.Context, c *election.Candidate) (*election.Leadership, bool) {
	r.printf("campaigning for master of %s as %s", r.o.Service, r.o.Host)
	last := ""
	retry := backoff.New(campaignRetry)
	for {
		l, err := c.Campaign(ctx, clientv3.NoLease)
		if err == nil {
			return l, true
		}
		if ctx.Err() != nil {
			r.printf("stopped before becoming master of %s", r.o.Service)
			return nil, false
		}
		if msg := err.Error(); msg != last {
			r.printf("%v; retrying", err)
			last = msg
		}
		if retry.Wait(ctx) != nil {
			r.printf("stopped before becoming master of %s", r.o.Service)
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
	r.printf("master of %s as %s, term %d: starting %s", o.Service, o.Host, l.Term(), o.Cmd[0])
	cmd := exec.Command(o.Cmd[0], o.Cmd[1:]...)
	cmd.Env = append(os.Environ(),
		EnvService+"="+o.Service,
		EnvHost+"="+o.Host,
		EnvTerm+"="+strconv.FormatInt(l.Term(), 10))
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	// A group of its own: signals reach CMD's children too, and a terminal's
	// Ctrl-C reaches only rollcall elect, which then stops CMD in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Do not wait forever for output pipes held by CMD's orphans.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		r.printf("start %s: %v", o.Cmd[0], err)
		return ExitNoExec
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case err := <-exited:
		code := exitCode(err)
		r.printf("%s exited with status %d; resigning master of %s", o.Cmd[0], code, o.Service)
		return code
	case <-l.Done():
		r.printf("lost master of %s (term %d): %v; stopping %s", o.Service, l.Term(), l.Err(), o.Cmd[0])
		r.stop(cmd, exited)
		return ExitLost
	case <-ctx.Done():
		r.printf("stopping %s, then resigning master of %s", o.Cmd[0], o.Service)
		return exitCode(r.stop(cmd, exited))
	}
}

// stop sends SIGTERM to CMD's process group, SIGKILL after the grace period,
// and returns CMD's exit error.
func (r *runner) stop(cmd *exec.Cmd, exited <-chan error) error {
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(r.o.Grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		r.printf("%s still running %v after SIGTERM: sending SIGKILL", r.o.Cmd[0], r.o.Grace)
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
