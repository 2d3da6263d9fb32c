package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rollcall/rollcall/internal/inspect"
)

const statusHelp = `Usage: rollcall status [flags]

Shows the registry's health: every host with its lease, the time left on it
and its services; every instance not passing (warning, critical, draining
or in maintenance) with since when and why; every maintenance record, with
who and until (an ended one counts as absent); every service election with
its master, term (the master's fencing token) and candidates; totals; and
every key that could not be decoded and was skipped, with the reason.
Against "make run" it needs no flags.

-o json prints one object (field names are stable; fields may be added):
  {"prefix": "/rollcall", "revision": 42,
   "hosts": [{"name": "h1", "record": true, "addrs": {"public": ["192.0.2.10"]},
              "services": ["web"], "lease": "694d8a1c2b3e4f01",
              "ttl": 8, "granted_ttl": 10}],
   "masters": [{"service": "web", "host": "h1", "term": 17,
                "lease": "694d8a1c2b3e4f01", "candidates": 2}],
   "instances": [{"service": "web", "host": "h1", "state": "critical",
                  "since": 1700000000, "reason": "...", "in_service": false,
                  "maintenance": {...}}],      (every instance)
   "maintenance": [{"host": "h2", "service": "web", "reason": "disk swap",
                    "who": "ops@admin1", "until": 1700003600, "active": true}],
   "counts": {"services": 1, "instances": 2, "hosts": 2, "candidates": 2, "skipped": 0,
              "states": {"passing": 1, "critical": 1}, "failing_open": 0},
   "skipped": [{"key": "/rollcall/hosts/x/junk", "reason": "..."}]}
record is false when instances name a host whose host record is missing or
malformed; a master's host is "" when its election value is malformed. A
host in maintenance as a whole has "maintenance" too. state is passing,
warning, critical or draining as the agent wrote it (passing when it wrote
none); in_service is whether DNS serves the instance under its service's
names (passing or warning, not in maintenance); a maintenance record's
service is absent for a whole host, until absent for no end, active false
once until has passed.

Exit status: 0 when the registry was read (even with malformed keys), 1 when
etcd could not be read, 2 for a bad command line.

Flags:
`

// runStatus runs `rollcall status`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusHelp, stderr)
	ef := etcdFlags{dash: "-", withUser: true, withTimeout: true}
	ef.register(fs)
	output := fs.String("o", string(inspect.FormatTable), "output format: table or json")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rollcall status: unexpected argument %q (it takes flags only)\n", fs.Arg(0))
		return exitUsage
	}
	return show(ctx, showing{
		name:   "status",
		etcd:   &ef,
		output: *output,
		render: inspect.RenderStatus,
	}, stdout, stderr)
}
