package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rollcall/rollcall/internal/devmode"
	"github.com/rollcall/rollcall/registry"
)

const devHelp = `Usage: rollcall dev [flags]

Runs the whole of rollcall on this machine, in one process, until Ctrl-C:
  - etcd (embedded), client URL http://127.0.0.1:2379, data in -data-dir
    ("make clean" removes the default one), its log in DATA-DIR/etcd.log;
  - DNS for infra.example.com. on 127.0.0.1:1053 (CoreDNS with the rollcall
    plugin, as bin/coredns), with the plugin's status page and JSON API at
    http://127.0.0.1:8053/ (-http-addr);
  - an agent registering this host and a service "demo" that is always
    present, so "dig @127.0.0.1 -p 1053 demo.infra.example.com" answers at once;
    with -services-config FILE (servicereg.yml format), also the services of
    FILE while their systemd units are active.
At start it prints the commands to try. Ctrl-C (or SIGTERM) stops everything
in order (DNS, the agent revoking its lease, etcd) and exits 0; a second
Ctrl-C kills it at once.

Every port is checked first: if one is taken, rollcall dev says which, and
which flag moves it, and exits 1 without starting anything.

Flags:
`

// runDev runs `rollcall dev`.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dev", devHelp, stderr)
	var c devmode.Config
	fs.StringVar(&c.DataDir, "data-dir", devmode.DefaultDataDir, "folder for etcd's data and log")
	etcdPort := fs.Int("etcd-port", 0, "etcd client port on 127.0.0.1 (default 2379; shorthand for -etcd-client-url)")
	fs.StringVar(&c.ClientURL, "etcd-client-url", "", "etcd client URL, http://IP:PORT (default "+devmode.DefaultClientURL+")")
	peerPort := fs.Int("etcd-peer-port", 0, "etcd peer port on 127.0.0.1 (default 2380; shorthand for -etcd-peer-url)")
	fs.StringVar(&c.PeerURL, "etcd-peer-url", "", "etcd peer URL, http://IP:PORT (default "+devmode.DefaultPeerURL+")")
	fs.StringVar(&c.DNSAddr, "dns-addr", devmode.DefaultDNSAddr, "DNS server address, IP:PORT, UDP and TCP")
	fs.StringVar(&c.HTTPAddr, "http-addr", devmode.DefaultHTTPAddr, "status page and JSON API address, IP:PORT, or "+devmode.HTTPOff)
	fs.StringVar(&c.Zone, "zone", devmode.DefaultZone, "DNS zone served")
	fs.StringVar(&c.Prefix, "prefix", registry.DefaultPrefix, "etcd key prefix of the registry")
	fs.StringVar(&c.Host, "host", "", "this host's name in the registry (default: the short host name)")
	fs.DurationVar(&c.TTL, "ttl", devmode.DefaultTTL, "the agent's lease TTL: how long a crashed agent's names outlive it")
	fs.StringVar(&c.ServicesConfig, "services-config", "", "agent config (servicereg.yml format) whose services are registered while their systemd units are active")
	fs.BoolVar(&c.LogQueries, "log-queries", false, "log every DNS query")
	verbose := fs.Bool("v", false, "debug logging")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rollcall dev: unexpected argument %q (it takes flags only)\n", fs.Arg(0))
		return exitUsage
	}
	if *etcdPort != 0 {
		if c.ClientURL != "" {
			fmt.Fprintln(stderr, "rollcall dev: give -etcd-port or -etcd-client-url, not both")
			return exitUsage
		}
		c.ClientURL = "http://127.0.0.1:" + strconv.Itoa(*etcdPort)
	}
	if *peerPort != 0 {
		if c.PeerURL != "" {
			fmt.Fprintln(stderr, "rollcall dev: give -etcd-peer-port or -etcd-peer-url, not both")
			return exitUsage
		}
		c.PeerURL = "http://127.0.0.1:" + strconv.Itoa(*peerPort)
	}
	c.ClientFlag = "-etcd-port PORT (or -etcd-client-url URL)"
	c.PeerFlag = "-etcd-peer-port PORT (or -etcd-peer-url URL)"
	c.DNSFlag = "-dns-addr IP:PORT"
	c.HTTPFlag = "-http-addr IP:PORT (or off)"
	c.DataDirFlag = "-data-dir DIR"
	c.Self = selfCommand()
	c.Out = stdout
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := devmode.Run(ctx, c); err != nil {
		fmt.Fprintf(stderr, "rollcall dev: %v\n", err)
		return exitFail
	}
	return exitOK
}

// selfCommand is how the user ran this binary, for the commands printed at
// start: relative to the working folder when it is below it
// ("bin/rollcall" under "make run").
func selfCommand() string {
	exe := os.Args[0]
	if !strings.ContainsRune(exe, filepath.Separator) {
		return exe // found through $PATH
	}
	abs, err := filepath.Abs(exe)
	if err != nil {
		return exe
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return abs
}
