package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // the command line is wrong
)

const usage = `rollcall: the operator's CLI for rollcall, an etcd-backed presence registry
served as DNS.

Usage:
  rollcall dev [flags]               etcd, DNS and an agent in one process, for trying
                                     rollcall on one machine (what "make run" runs)
  rollcall ls [flags] [SERVICE...]   what is registered: each service, its instances
                                     (host, shard, addresses per network, ports) and
                                     which instance is master
  rollcall status [flags]            the registry's health: each host and the time left
                                     on its lease, each election's master and term,
                                     counts, and every malformed key skipped
  rollcall elect SERVICE -- CMD...   run CMD while this host is SERVICE's master
  rollcall maint enable HOST [SERVICE] -reason TEXT [-for DURATION]
                                     take a host, or one instance, out of DNS on purpose;
                                     "maint disable HOST [SERVICE]" puts it back, "maint ls"
                                     lists what is in maintenance (admin credentials only)
  rollcall help [COMMAND]            this text, or a command's flags

ls answers "where is service X?"; status answers "is the registry healthy?"
(which hosts are alive and for how long, who is master, which instances are
not passing or in maintenance, is there bad data).
Both read etcd once, at one revision, and print a table, or JSON with -o json.

Run "rollcall help COMMAND" (or "rollcall COMMAND -h") for a command's flags.
`

func main() {
	// A signal cancels ctx: `rollcall dev` and `rollcall elect` then stop
	// what they started and return; a second signal kills the process the
	// usual way, since stop() restores the default handling.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is the shape of every subcommand: it parses args (the words after
// its name), prints to stdout and stderr, and returns the exit code.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// commands are the subcommands by name, each in its own file.
var commands = map[string]command{
	"dev":    runDev,    // dev.go
	"ls":     runLs,     // ls.go
	"status": runStatus, // status.go
	"elect":  runElect,  // elect.go
	"maint":  runMaint,  // maint.go
}

// run executes one command line (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	if cmd, ok := commands[name]; ok {
		return cmd(ctx, rest, stdout, stderr)
	}
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "rollcall: unknown command %q\n\n%s", name, usage)
	return exitUsage
}

// newFlagSet is the flag set of `rollcall NAME`: errors and -h go to stderr,
// -h prints help and then every flag with its default.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rollcall "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; when it returns false the command ends
// with the exit code it gives (0 after -h, 2 after a bad flag, which fs has
// reported).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}
