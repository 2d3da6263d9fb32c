package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/registry"
)

const lsHelp = `Usage: rollcall ls [flags] [SERVICE...]

Lists what is registered: every service (or only the SERVICEs named; exit
status 1 if one of them is not registered), and for each instance its host,
shard, state (passing, warning, critical, draining, or maintenance while an
operator holds it out; "served: fail open" when DNS serves a critical
instance because its service has none passing or warning), the addresses
DNS serves for it per network, its ports, its role in the service's
election (master with its term, or standby) and the time left on its lease.
Against "make run" it needs no flags.

-o json prints one object (field names are stable; fields may be added):
  {"prefix": "/rollcall", "revision": 42, "services": [
    {"name": "web", "candidates": 2,
     "master": {"host": "h1", "term": 17, "lease": "694d8a1c2b3e4f01"},
     "instances": [
       {"host": "h1", "shard": "s1",
        "addrs": {"public": ["192.0.2.10"], "vpn0": ["10.100.0.5"]},
        "addrs_from": "host",            (or "instance", or "none")
        "ports": [{"name": "http", "port": 8080, "proto": "tcp"}],
        "lease": "694d8a1c2b3e4f01", "ttl": 8,   (seconds left; -1 expired)
        "role": "master",                (or "standby"; absent when not campaigning)
        "state": "passing", "since": 1700000000, "reason": "...",
        "in_service": true, "maintenance": {...}}],
     "failing_open": false}]}
master is absent when nobody campaigns; shard, lease, ttl and role are
absent when unset. state is what the agent wrote (passing when it wrote
none), since when it began (Unix seconds) and reason why it is critical;
maintenance is the active record holding the instance out (its own or its
host's: host, service, reason, who, until, active); in_service says
whether DNS serves it under the service's names.

Flags:
`

// runLs runs `rollcall ls`.
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ls", lsHelp, stderr)
	ef := etcdFlags{dash: "-", withUser: true, withTimeout: true}
	ef.register(fs)
	output := fs.String("o", string(inspect.FormatTable), "output format: table or json")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	for _, svc := range fs.Args() {
		if err := registry.CheckName("service", svc); err != nil {
			fmt.Fprintf(stderr, "rollcall ls: %v\n", err)
			return exitUsage
		}
	}
	return show(ctx, showing{
		name:     "ls",
		etcd:     &ef,
		output:   *output,
		services: fs.Args(),
		render:   inspect.RenderLs,
	}, stdout, stderr)
}
