package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/registry"
)

// EnvEndpoints, when set, replaces the default of --endpoints.
const EnvEndpoints = "ROLLCALL_ENDPOINTS"

const lsHelp = `Usage: rollcall ls [flags] [SERVICE...]

Lists what is registered: every service (or only the SERVICEs named; exit
status 1 if one of them is not registered), and for each instance its host,
shard, the addresses DNS serves for it per network, its ports, its role in
the service's election (master with its term, or standby) and the time left
on its lease. Against "make run" it needs no flags.

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
        "role": "master"}]}]}            (or "standby"; absent when not campaigning)
master is absent when nobody campaigns; shard, lease, ttl and role are
absent when unset.

Flags:
`

const statusHelp = `Usage: rollcall status [flags]

Shows the registry's health: every host with its lease, the time left on it
and its services; every service election with its master, term (the master's
fencing token) and candidates; totals; and every key that could not be
decoded and was skipped, with the reason. Against "make run" it needs no flags.

-o json prints one object (field names are stable; fields may be added):
  {"prefix": "/rollcall", "revision": 42,
   "hosts": [{"name": "h1", "record": true, "addrs": {"public": ["192.0.2.10"]},
              "services": ["web"], "lease": "694d8a1c2b3e4f01",
              "ttl": 8, "granted_ttl": 10}],
   "masters": [{"service": "web", "host": "h1", "term": 17,
                "lease": "694d8a1c2b3e4f01", "candidates": 2}],
   "counts": {"services": 1, "instances": 2, "hosts": 2, "candidates": 2, "skipped": 0},
   "skipped": [{"key": "/rollcall/hosts/x/junk", "reason": "..."}]}
record is false when instances name a host whose host record is missing or
malformed; a master's host is "" when its election value is malformed.

Exit status: 0 when the registry was read (even with malformed keys), 1 when
etcd could not be read, 2 for a bad command line.

Flags:
`

// etcdFlags are the flags every command that reads etcd shares.
type etcdFlags struct {
	endpoints string
	prefix    string
	cert      string
	key       string
	cacert    string
	user      string
	timeout   time.Duration
}

func (f *etcdFlags) register(fs *flag.FlagSet) {
	def := os.Getenv(EnvEndpoints)
	if def == "" {
		def = etcdconn.DefaultEndpoint
	}
	fs.StringVar(&f.endpoints, "endpoints", def, "etcd client URLs, comma-separated (default from $"+EnvEndpoints+" when set)")
	fs.StringVar(&f.prefix, "prefix", registry.DefaultPrefix, "key prefix of the registry")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM) for mTLS to etcd")
	fs.StringVar(&f.key, "key", "", "client key (PEM) for mTLS to etcd")
	fs.StringVar(&f.cacert, "cacert", "", "CA certificate (PEM) that signed etcd's server certificate")
	fs.StringVar(&f.user, "user", "", "etcd user as NAME:PASSWORD, when etcd has auth enabled without client certificates")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up reading etcd after this long")
}

func (f *etcdFlags) config() (etcdconn.Config, registry.Keys, error) {
	var cfg etcdconn.Config
	for _, ep := range strings.Split(f.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			cfg.Endpoints = append(cfg.Endpoints, ep)
		}
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, registry.Keys{}, errors.New("-endpoints is empty: give etcd client URLs, e.g. " + etcdconn.DefaultEndpoint)
	}
	cfg.Cert, cfg.Key, cfg.CA = f.cert, f.key, f.cacert
	if f.user != "" {
		name, pw, ok := strings.Cut(f.user, ":")
		if !ok || name == "" {
			return cfg, registry.Keys{}, errors.New("-user must be NAME:PASSWORD")
		}
		cfg.Username, cfg.Password = name, pw
	}
	keys, err := registry.NewKeys(f.prefix)
	if err != nil {
		return cfg, registry.Keys{}, fmt.Errorf("-prefix: %w", err)
	}
	return cfg, keys, nil
}

// runInspect runs `rollcall ls` or `rollcall status`.
func runInspect(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollcall "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := lsHelp
	if name == "status" {
		help = statusHelp
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	var ef etcdFlags
	ef.register(fs)
	output := fs.String("o", string(inspect.FormatTable), "output format: table or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if name == "status" && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rollcall %s: unexpected argument %q (it takes flags only)\n", name, fs.Arg(0))
		return exitUsage
	}
	for _, svc := range fs.Args() {
		if err := registry.CheckName("service", svc); err != nil {
			fmt.Fprintf(stderr, "rollcall %s: %v\n", name, err)
			return exitUsage
		}
	}
	format, err := inspect.ParseFormat(*output)
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", name, err)
		return exitUsage
	}
	cfg, keys, err := ef.config()
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", name, err)
		return exitUsage
	}

	cli, err := etcdconn.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", name, err)
		return exitFail
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, ef.timeout)
	defer cancel()
	snap, err := inspect.Load(ctx, cli, keys)
	if err != nil {
		// clientv3 hides why it cannot connect ("context deadline
		// exceeded"); a TLS mismatch is worth naming.
		if diag := etcdconn.Diagnose(context.WithoutCancel(ctx), cfg); diag != nil {
			fmt.Fprintf(stderr, "rollcall %s: %v\n", name, diag)
		}
		fmt.Fprintf(stderr, "rollcall %s: %v\n(is etcd running at %s? \"make run\" starts one; -endpoints or $%s choose another)\n",
			name, err, strings.Join(cfg.Endpoints, ","), EnvEndpoints)
		return exitFail
	}
	render := inspect.RenderLs
	if name == "status" {
		render = inspect.RenderStatus
	}
	missing := snap.Only(fs.Args())
	if err := render(stdout, snap, format); err != nil {
		fmt.Fprintf(stderr, "rollcall %s: %v\n", name, err)
		return exitFail
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "rollcall %s: not registered: %s\n", name, strings.Join(missing, ", "))
		return exitFail
	}
	return exitOK
}
