package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
)

// showing is what `rollcall ls` or `rollcall status` prints, from its
// parsed command line.
type showing struct {
	name     string     // "ls" or "status", for messages
	etcd     *etcdFlags // parsed, not yet checked
	output   string     // -o
	services []string   // only these (ls SERVICE...); all when empty
	render   func(io.Writer, *inspect.Snapshot, inspect.Format) error
}

// show reads the registry once, at one revision, and renders it: the part
// ls and status share after their own arguments are checked.
func show(ctx context.Context, s showing, stdout, stderr io.Writer) int {
	format, err := inspect.ParseFormat(s.output)
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", s.name, err)
		return exitUsage
	}
	cfg, keys, err := s.etcd.config()
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", s.name, err)
		return exitUsage
	}

	cli, err := etcdconn.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", s.name, err)
		return exitFail
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, s.etcd.timeout)
	defer cancel()
	snap, err := inspect.Load(ctx, cli, keys)
	if err != nil {
		// clientv3 hides why it cannot connect ("context deadline
		// exceeded"); a TLS mismatch is worth naming.
		if diag := etcdconn.Diagnose(context.WithoutCancel(ctx), cfg); diag != nil {
			fmt.Fprintf(stderr, "rollcall %s: %v\n", s.name, diag)
		}
		fmt.Fprintf(stderr, "rollcall %s: %v\n(is etcd running at %s? \"make run\" starts one; -endpoints or $%s choose another)\n",
			s.name, err, strings.Join(cfg.Endpoints, ","), EnvEndpoints)
		return exitFail
	}
	missing := snap.Only(s.services)
	if err := s.render(stdout, snap, format); err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", s.name, err)
		return exitFail
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "rollcall %s: not registered: %s\n", s.name, strings.Join(missing, ", "))
		return exitFail
	}
	return exitOK
}
