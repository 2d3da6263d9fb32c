package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rollcall/rollcall/internal/electcmd"
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
  rollcall help [COMMAND]            this text, or a command's flags

ls answers "where is service X?"; status answers "is the registry healthy?"
(which hosts are alive and for how long, who is master, is there bad data).
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

// run executes one command line (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "ls":
		return runInspect(ctx, "ls", rest, stdout, stderr)
	case "status":
		return runInspect(ctx, "status", rest, stdout, stderr)
	case "elect":
		return electcmd.Main(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "rollcall: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
